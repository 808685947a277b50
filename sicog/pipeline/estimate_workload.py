"""What one training step of `--estimate` processes (sicog.pipeline.estimate): its samples, tokens
(images counted as their LM tokens for the arch), causal query-key pairs and tower passes, and the
activations one micro-batch keeps for the backward (docs/estimate.md states the assumptions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sicog.config import ModelConfig
from sicog.model.size import ModelSize
from sicog.pipeline import estimate_data as ed

ACTIVATION_BYTES_PER_LAYER = 34  # bytes per token per hidden unit of one transformer layer, bf16, flash attention
LOGIT_BYTES = 2 + 4  # bf16 logits and their fp32 copy for the loss, per vocabulary entry of every token


def activation_bytes(size: ModelSize, micro_tokens: float, micro_images: float, parts: list[str],
                     checkpointing: bool) -> float:
    """Activations kept for the backward of one micro-batch (docs/estimate.md): per layer 34 bytes per
    token per hidden unit, or with activation checkpointing only each layer's bf16 input plus one layer
    recomputed; the logits in bf16 and fp32. The tower counts only when it trains."""
    def stack(tokens: float, hidden: int, layers: int) -> float:
        if checkpointing:
            return tokens * hidden * (2 * layers + ACTIVATION_BYTES_PER_LAYER)
        return tokens * hidden * ACTIVATION_BYTES_PER_LAYER * layers

    total = stack(micro_tokens, size.hidden, size.layers) + micro_tokens * size.vocab * LOGIT_BYTES
    if "vision_tower" in parts:
        total += stack(micro_images * size.vision_tokens, size.vision_hidden, size.vision_layers)
    return total


def image_tokens(size: ModelSize, model: ModelConfig, data: ed.DataSize) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `data`: the LM tokens of its images for the model's arch, and the tower passes."""
    if model.arch != "uhd":
        return data.images * size.image_tokens(), data.images.copy()
    tokens, passes = [], []
    for k, n in enumerate(data.images):
        sizes = (data.sizes[k] if data.sizes is not None else None) or [None] * int(n)
        tokens.append(sum(size.image_tokens("uhd", model.uhd, s) for s in sizes))
        passes.append(sum(size.tower_passes("uhd", model.uhd, s) for s in sizes))
    return np.array(tokens, float), np.array(passes, float)


@dataclass
class Workload:
    """What a training step processes: samples, tokens (image tokens included), causal query-key
    pairs and vision tower passes."""

    samples: float
    tokens: float
    pairs: float
    passes: float

    def flops(self, size: ModelSize) -> float:
        f = size.train
        return f.lm_per_token * self.tokens + f.lm_per_pair * self.pairs + f.per_image * self.passes


def training_workload(size: ModelSize, model: ModelConfig, sources: list[tuple[ed.DataSize, float]],
                      samples: float, max_length: int) -> Workload:
    """`samples` drawn from `sources` ((size, weight) each) in proportion to their weights; every sample
    cut at `max_length` tokens."""
    tokens = pairs = passes = 0.0
    total_w = sum(w for _, w in sources) or 1.0
    for d, w in sources:
        q = samples * w / total_w
        img_tokens, img_passes = image_tokens(size, model, d)
        length = np.minimum(d.text + img_tokens, max_length)
        tokens += q * d.mean(length)
        pairs += q * d.mean(length * (length + 1) / 2)
        passes += q * d.mean(img_passes)
    return Workload(samples, tokens, pairs, passes)
