"""Optional GPU kernels: flash-attention 2 and Liger. Each is used only where it can run; when
it cannot, the caller falls back to stock transformers (SDPA attention, eager PyTorch ops) and
logs the reason returned here, so a slow run always says why it is slow."""

from __future__ import annotations

import importlib.util
import logging

import torch

log = logging.getLogger(__name__)


def flash_attention_problem() -> str | None:
    """Why flash_attention_2 cannot be used here (None when it can)."""
    if not torch.cuda.is_available():
        return "no CUDA device"
    if importlib.util.find_spec("flash_attn") is None:
        return "the flash-attn package is not installed (pip install 'sicog[gpu]' or flash-attn)"
    if torch.cuda.get_device_capability()[0] < 8:
        return f"{torch.cuda.get_device_name()} is older than Ampere (compute capability < 8)"
    return None


def liger_problem() -> str | None:
    """Why Liger kernels cannot be applied here (None when they can)."""
    if not torch.cuda.is_available():
        return "no CUDA device (Liger's kernels are Triton GPU kernels)"
    if importlib.util.find_spec("liger_kernel") is None:
        return "the liger-kernel package is not installed (pip install liger-kernel)"
    return None


def use_liger(requested: bool) -> bool:
    """`training.liger_kernels` resolved: True only when requested and usable; a fallback is logged."""
    if not requested:
        return False
    why = liger_problem()
    if why:
        log.warning("training.liger_kernels: true, but falling back to stock transformers: %s", why)
        return False
    log.info("training.liger_kernels: fused linear cross-entropy, RMSNorm, RoPE and SwiGLU kernels on")
    return True
