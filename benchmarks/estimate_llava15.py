"""The `sicog run --estimate` model against a published training time: LLaVA-1.5-7B on 8 A100s.

haotian-liu/LLaVA's README gives about 3.5 h for the 7B model's pretraining (feature alignment, 558K
samples, projector only, ZeRO-2) and about 10 h for its visual instruction tuning (665K samples,
projector + LM, vision frozen, ZeRO-3), both on 8x A100. This script estimates the same two runs with
the estimator's own pieces (sicog.model.size, sicog.pipeline.estimate) at the given MFU and prints
estimate, published time and their ratio; docs/estimate.md records a run and every assumption.

    python benchmarks/estimate_llava15.py [--mfu 0.4] [--sft-text-tokens 230]
"""

from __future__ import annotations

import argparse

from transformers import CLIPVisionConfig, LlamaConfig

from sicog.config import ModelConfig
from sicog.model.size import model_size, model_state_bytes
from sicog.pipeline.estimate import GPUS
from sicog.pipeline.estimate_data import DataSize
from sicog.pipeline.estimate_workload import activation_bytes, training_workload

PUBLISHED_HOURS = {"pretrain": 3.5, "finetune": 10.0}  # haotian-liu/LLaVA README, 8x A100
GPUS_USED = 8


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mfu", type=float, default=0.4, help="model FLOPs utilisation assumed (default 0.4)")
    p.add_argument("--pretrain-text-tokens", type=float, default=20.0,
                   help="mean text tokens of a LLaVA-558K sample (BLIP caption + image placeholder turn; default 20)")
    p.add_argument("--sft-text-tokens", type=float, default=230.0,
                   help="mean text tokens of a LLaVA-665K sample, Vicuna framing included (default 230)")
    args = p.parse_args()
    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              image_size=336, patch_size=14)  # CLIP-ViT-L/14-336
    vicuna = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                         num_key_value_heads=32, vocab_size=32000, tie_word_embeddings=False)  # Vicuna-7B v1.5
    peak = GPUS["a100-80gb"][0]
    runs = {  # (trainable parts, samples, data, ZeRO stage, per-device batch, max length)
        "pretrain": (["projector"], 558_128, DataSize.stated(558_128, args.pretrain_text_tokens, 15, 1, "LLaVA-558K"),
                     2, 32, 2048),
        "finetune": (["projector", "language_model"], 665_298,
                     DataSize.stated(665_298, args.sft_text_tokens, 120, 0.94, "LLaVA-665K"), 3, 16, 2048),
    }
    print(f"LLaVA-1.5-7B on {GPUS_USED}x A100 ({peak / 1e12:.0f} TFLOP/s bf16), MFU {args.mfu}")
    for name, (parts, samples, data, zero, per_device, max_length) in runs.items():
        size = model_size(vision, vicuna, parts)
        work = training_workload(size, ModelConfig(), [(data, 1.0)], samples, max_length)
        flops = work.flops(size)
        wall = flops / (peak * args.mfu) / 3600 / GPUS_USED
        states = model_state_bytes(size.params, size.trainable, zero, GPUS_USED, size.largest_module) / 2**30
        act = activation_bytes(size, per_device * work.tokens / samples, per_device * work.passes / samples, parts,
                               True) / 2**30
        published = PUBLISHED_HOURS[name]
        print(f"{name:9} {work.tokens / 1e6:7.1f}M tokens  {flops:.3g} FLOPs  estimate {wall:5.2f} h  "
              f"published {published:4.1f} h  ratio estimate/published {wall / published:.2f}  "
              f"ZeRO-{zero} states {states:.1f} GB/GPU + activations {act:.1f} GB")


if __name__ == "__main__":
    main()
