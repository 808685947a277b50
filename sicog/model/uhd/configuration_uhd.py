"""Configuration of the LLaVA-UHD model (`model_type: sicog_uhd`). Ships as remote code."""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig


class SicogUhdConfig(PretrainedConfig):
    """A vision tower config, a causal-LM config and the slicing / resampler settings.

    `image_token_id`: the placeholder of one visual feature; `row_token_id` / `slice_token_id`:
    the dedicated separator tokens of the layout (docs/uhd.md). `num_queries` must be a square.
    `vision_feature_select`: "patch" gives the resampler each slice's patch features; "cls_patch"
    gives it the class token followed by the first h*w - 1 patches (what the authors' code passes
    under that setting). `resampler_box_rounding`: "none" pools the resampler's cells with exact
    edges; "bfloat16" rounds the edges as the authors' resampler does (their checkpoints).
    """

    model_type = "sicog_uhd"
    sub_configs = {"vision_config": AutoConfig, "text_config": AutoConfig}

    def __init__(self, vision_config=None, text_config=None, image_token_id: int = 0, row_token_id: int = 0,
                 slice_token_id: int = 0, num_queries: int = 144, vision_feature_layer: int = -2,
                 max_slices: int = 7, scale_resolution: int = 336, resampler_head_dim: int = 128,
                 vision_feature_select: str = "patch", resampler_box_rounding: str = "none", **kwargs):
        self.vision_config = self._sub_config(vision_config, "clip_vision_model")
        self.text_config = self._sub_config(text_config, "qwen2")
        self.image_token_id = image_token_id
        self.row_token_id = row_token_id
        self.slice_token_id = slice_token_id
        side = int(round(num_queries ** 0.5))
        if side * side != num_queries:
            raise ValueError(f"num_queries must be a square number, got {num_queries}")
        self.num_queries = num_queries
        self.vision_feature_layer = vision_feature_layer
        self.max_slices = max_slices
        self.scale_resolution = scale_resolution
        self.resampler_head_dim = resampler_head_dim
        for key, value, choices in (("vision_feature_select", vision_feature_select, ("patch", "cls_patch")),
                                    ("resampler_box_rounding", resampler_box_rounding, ("none", "bfloat16"))):
            if value not in choices:
                raise ValueError(f"{key} must be one of {choices}, got {value!r}")
        self.vision_feature_select = vision_feature_select
        self.resampler_box_rounding = resampler_box_rounding
        # the LM decides whether its output layer shares the input embedding
        kwargs.setdefault("tie_word_embeddings", bool(getattr(self.text_config, "tie_word_embeddings", False)))
        super().__init__(**kwargs)

    @staticmethod
    def _sub_config(value, default_type: str):
        from transformers import CONFIG_MAPPING

        if value is None:
            return CONFIG_MAPPING[default_type]()
        if isinstance(value, dict):
            value = dict(value)
            return CONFIG_MAPPING[value.pop("model_type", default_type)](**value)
        return value

    @property
    def query_side(self) -> int:
        return int(round(self.num_queries ** 0.5))

    @property
    def resampler_heads(self) -> int:
        """One head per `resampler_head_dim` (128) of the LM width, as the authors' resampler."""
        return max(self.text_config.hidden_size // self.resampler_head_dim, 1)
