"""Training FLOPs of a LLaVA batch from the model's own shapes: vision tower, projector and
language model, matmuls and attention, counted per real token (padding does no useful work).

Per matmul of a `Linear` (in x out) over n tokens the forward costs 2·in·out·n. The backward
costs the same again for the gradient of its input, needed when anything at or before the part
trains (a frozen LM still carries gradients back to a trainable projector), and again for
the gradient of its weight, when that weight trains (so LoRA adds only its own small matmuls).
Attention (no weights) costs 4·heads·head_dim per query-key pair forward (QK^T and AV),
twice that backward: a causal sample of L tokens has L(L+1)/2 pairs, an image's vision
tokens attend to all T² pairs. Vision layers after LLaVA's feature layer run forward only
(their output gets no gradient), and the first matmul of a trainable part with nothing
trainable before it needs no input gradient. Recomputation under activation checkpointing is not counted:
these are model FLOPs, the numerator of MFU, not hardware FLOPs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

PARTS = ("vision", "projector", "language")  # in data-flow order


def _part(name: str) -> str | None:
    if "vision_tower" in name:
        return "vision"
    if "multi_modal_projector" in name:
        return "projector"
    if "language_model" in name or name.split(".")[-1] == "lm_head" or ".lm_head" in name:
        return "language"
    return None


_VISION_LAYER = re.compile(r"\.layers\.(\d+)\.")


def _vision_layers_used(cfg) -> int:
    """Vision layers whose output reaches the projector: LLaVA reads hidden state
    `vision_feature_layer` (-2: the last layer runs, but nothing reads its output)."""
    n = cfg.vision_config.num_hidden_layers
    chosen = getattr(cfg, "vision_feature_layer", -1)
    chosen = chosen if isinstance(chosen, (list, tuple)) else [chosen]
    return max(k if k >= 0 else n + 1 + k for k in chosen)


@dataclass
class TrainingFlops:
    """FLOPs coefficients of one model: `batch_flops(sequence_lengths, n_images)` gives the
    forward + backward FLOPs of a training micro-batch."""

    lm_per_token: float  # matmuls, every LM position (lm_head included: logits are computed everywhere)
    lm_per_pair: float  # causal attention, per query-key pair
    per_image: float  # vision tower (patch conv, matmuls, attention) + projector, one image

    @classmethod
    def of(cls, model: nn.Module) -> TrainingFlops:
        cfg = model.config
        tc, vc = cfg.text_config, cfg.vision_config
        used_layers = _vision_layers_used(cfg)
        trains = {p: False for p in PARTS}
        for name, param in model.named_parameters():
            if param.requires_grad and (part := _part(name)):
                trains[part] = True
        # attention passes gradients back when its part or anything before it trains
        carries = {p: any(trains[q] for q in PARTS[: i + 1]) for i, p in enumerate(PARTS)}
        linear = {p: 0.0 for p in PARTS}
        patch_conv = 0.0
        upstream = False  # some parameter before this module (in forward order) trains
        for name, mod in model.named_modules():
            part = _part(name)
            if part is None:
                continue
            layer = _VISION_LAYER.search(name) if part == "vision" else None
            unused = layer is not None and int(layer.group(1)) >= used_layers  # its output is never read
            if isinstance(mod, nn.Linear):
                weight = bool(mod.weight is not None and mod.weight.requires_grad)
                mult = 1 if unused else 1 + upstream + weight
                linear[part] += 2.0 * mod.in_features * mod.out_features * mult
            elif isinstance(mod, nn.Conv2d):  # CLIP's patch embedding, once per patch; pixels need no gradient
                kh, kw = mod.kernel_size
                patch_conv += 2.0 * mod.in_channels * kh * kw * mod.out_channels * (1 + mod.weight.requires_grad)
            if not unused and any(p.requires_grad for p in mod.parameters(recurse=False)):
                upstream = True
        head_dim = getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads
        lm_pair = 4.0 * tc.num_attention_heads * head_dim * tc.num_hidden_layers * (1 + 2 * carries["language"])
        patches = (vc.image_size // vc.patch_size) ** 2
        vision_tokens = patches + 1  # CLS
        features = patches if getattr(cfg, "vision_feature_select_strategy", "default") == "default" \
            else vision_tokens
        attn = 4.0 * vc.hidden_size * vision_tokens ** 2
        vision_attn = attn * (used_layers * (1 + 2 * carries["vision"]) + vc.num_hidden_layers - used_layers)
        per_image = (patch_conv * patches + linear["vision"] * vision_tokens + vision_attn
                     + linear["projector"] * features)
        return cls(lm_per_token=linear["language"], lm_per_pair=lm_pair, per_image=per_image)

    def batch_flops(self, sequence_lengths: list[int], n_images: int) -> float:
        """Forward + backward FLOPs of a micro-batch: samples of these token lengths (no padding),
        `n_images` images."""
        tokens = sum(sequence_lengths)
        pairs = sum(n * (n + 1) // 2 for n in sequence_lengths)
        return self.lm_per_token * tokens + self.lm_per_pair * pairs + self.per_image * n_images

