"""The `estimate:` section of a pipeline YAML: what `sicog run --dry-run --estimate` cannot read
from files that do not exist yet (docs/estimate.md).

A data file present at estimate time is measured; one absent (the paper's data before it is
downloaded) is sized by `estimate.data.<data key>`. The files the loop writes itself (candidates,
curated data) are derived from their inputs with `generated_tokens` and `curation_keep`. Model
folders absent at estimate time are sized by `estimate.models` (their config.json fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sicog.utils.fields import setting


@dataclass
class StatedData:
    """The size of a data file that is absent at estimate time."""

    items: int = setting(0, min=0)  # records
    text_tokens: float = setting(0.0, min=0)  # mean text tokens per record: every turn (image placeholders excluded)
    reply_tokens: float = setting(0.0, min=0)  # mean tokens of the assistant replies per record (part of text_tokens)
    images: float = setting(1.0, min=0)  # mean images per record


@dataclass
class GeneratedTokens:
    """Mean new tokens per sampled candidate; null: the mean reply of the task's warm-up annotations in
    the task's step format (measured from data.annotated_captions / annotated_reasoning)."""

    captions: float | None = setting(None, min=0, min_exclusive=True)
    reasoning: float | None = setting(None, min=0, min_exclusive=True)


@dataclass
class AnnotationSize:
    """The API annotation of the CoD warm-up set (`sicog annotate cod`, run before the loop)."""

    # CoD items written by the API; null: the records of data.annotated_captions whose reply is a CoD
    items: int | None = setting(None, min=0)
    # mean tokens of the source caption sent with each image; null: measured as the CoD's Step-5 description
    source_caption_tokens: float | None = setting(None, min=0)
    # GPT-4o tokens of an image that cannot be read at estimate time (a 768 px square: 4 tiles x 170 + 85)
    image_tokens: int = setting(765, min=0)


@dataclass
class EstimateSpec:
    """`estimate:` (see the module docstring); only `sicog run --estimate` reads it."""

    data: dict[str, StatedData] = field(default_factory=dict)  # data key (alignment, instructions …) -> size
    # vision_tower / language_model -> the config.json fields of a model folder absent at estimate time
    models: dict[str, dict[str, Any]] = setting(choices=("vision_tower", "language_model"), default_factory=dict)
    generated_tokens: GeneratedTokens = field(default_factory=GeneratedTokens)
    # share of sampled items whose best candidate passes curation (the paper: ~213K of ~282K)
    curation_keep: float = setting(0.755, min=0, max=1)
    annotation: AnnotationSize = field(default_factory=AnnotationSize)
