"""LLaVA-UHD (`model.arch: uhd`): adaptive slicing, spatial resampler, an HF-native model.

The `*_uhd.py` modules are self-contained (no sicog imports) because they are copied into every
`uhd` checkpoint as remote code; sicog-side helpers (building, saving) live beside them.
"""

from sicog.model.uhd.slicing_uhd import SlicePlan, count_tokens, layout_tokens, plan_slices

__all__ = ["SlicePlan", "count_tokens", "layout_tokens", "plan_slices"]
