"""Settings of the models themselves (sizes of the tiny preset, LoRA, `arch: uhd`), part of a stage's
`model:` / `training:` YAML sections (sicog.config re-exports them with the rest of the schema)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sicog.utils.fields import ConfigError, setting


@dataclass
class TinyModelConfig:
    """Sizes of the random-init `tiny` preset (CLIP vision tower + Qwen2 LM)."""

    image_size: int = setting(64, min=1)
    patch_size: int = setting(16, min=1)
    vision_hidden_size: int = setting(64, min=1)
    vision_layers: int = setting(2, min=1)
    vision_heads: int = setting(2, min=1)
    hidden_size: int = setting(96, min=1)
    num_layers: int = setting(3, min=1)
    num_heads: int = setting(3, min=1)  # head size 32, which vLLM's CPU attention runs (sicog.model.serving)
    num_kv_heads: int = setting(1, min=1)
    intermediate_size: int = setting(256, min=1)
    max_position_embeddings: int = setting(1024, min=1)
    vocab_size: int = setting(1024, "target size of the BPE tokenizer trained offline", min=1)
    tokenizer_corpus: list[str] = field(default_factory=list)  # extra text files for the tokenizer

    def cross_check(self) -> None:
        """The image is cut into whole patches (run at load and by sicog.config.check_config)."""
        if self.image_size % self.patch_size:
            raise ConfigError(f"must be a multiple of patch_size ({self.patch_size}), got {self.image_size}",
                              key="image_size")


@dataclass
class LoraSettings:
    """LoRA on the language model (PEFT); merged into the weights on save."""

    enabled: bool = False
    r: int = setting(16, min=1)
    alpha: int = setting(32, min=0, min_exclusive=True)
    dropout: float = setting(0.05, min=0, max=1, max_exclusive=True)
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class UhdSettings:
    """`arch: uhd` (LLaVA-UHD v1): slicing, resampler and preprocessing; docs/uhd.md."""

    max_slices: int = setting(7, "the paper's setting; the slice resolution is the tower's image size", min=1)
    num_queries: int | None = setting(None, min=1)  # resampler tokens per slice, a square (default 144; tiny: 16)
    never_split: bool = False  # overview only, no slices (the authors' stage-1 `single` mode)
    # training only: the share of images (drawn per record from the seed) resized to the area of six
    # slices before slicing when their plan is not six slices (the authors: 0.1 in every uhd stage)
    grid_resize_prob: float = setting(0.1, min=0, max=1)
    max_pixels: int = setting(50_000_000, "larger images are refused with an error naming the size", min=1)
    # when answering, resize the longer side to this before slicing (the authors: 1024 at 336 px
    # slices); None = the slice resolution x 1024/336; 0 = slice the image at its own size
    inference_longest_side: int | None = setting(None, min=0)
    # building from parts: the LM embedding rows <uhd_row> and <uhd_slice> start from (the authors'
    # separators are Qwen rows 13 and 29892, their LLaMA newline and comma ids); [] = fresh rows
    separator_init_ids: list[int] = setting(min=0, default_factory=lambda: [13, 29892])
    # the resampler's cell edges: "bfloat16" rounds them as the authors' resampler does, "none" keeps
    # them exact (converted checkpoints carry `sicog convert llava-uhd --box-rounding`)
    box_rounding: str = setting("bfloat16", choices=("bfloat16", "none"))
    # training only: images whose file name contains one of these are resized to `long_side_resize`
    # on their longer side before slicing, never drawn for the six-slice resize (the authors' rule
    # for TextVQA); [] or 0 switches it off
    long_side_resize_patterns: list[str] = field(default_factory=lambda: ["TextVQA", "textvqa"])
    long_side_resize: int = setting(1024, min=0)

    def cross_check(self) -> None:
        """Shapes a range cannot say (run at load and by sicog.config.check_config)."""
        if self.num_queries is not None and round(self.num_queries ** 0.5) ** 2 != self.num_queries:
            raise ConfigError(f"must be a square number (144 = 12x12), got {self.num_queries}", key="num_queries")
        if len(self.separator_init_ids) not in (0, 2):
            raise ConfigError(f"two ids (row separator, slice separator) or [], got {self.separator_init_ids}",
                              key="separator_init_ids")
