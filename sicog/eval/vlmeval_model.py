"""`SicogLLaVA`: a sicog checkpoint as a VLMEvalKit model (`vlmeval.vlm.base.BaseModel`).

VLMEvalKit's stock classes that can load a plain `LlavaForConditionalGeneration` folder
(`LLaVA_Next`, only when the path contains "interleave") move the model to CUDA in float16 and
lay out multiple-choice prompts their own way. `SicogLLaVA` instead:
  * loads the folder with stock transformers classes on any device (CUDA when available);
  * renders prompts with the checkpoint's own chat template through
    `sicog.model.generation.generate_texts` (greedy), exactly as `sicog evaluate` does;
  * asks a row with options with `sicog.eval.mcq.row_prompt` (the prompt of `sicog evaluate`),
    and a row without options with its bare question (as VLMEvalKit's custom open-ended
    datasets do), whatever type VLMEvalKit guesses from the dataset's name;
  * hands the model the TSV's own image bytes: VLMEvalKit's `dump_image` re-encodes every image
    as JPEG (lossy) under `$LMUData/images/<dataset>/<index>.jpg` and reuses such a file even
    when the TSV has changed since. Our files are named by a hash of their bytes, so they are
    exact and never stale.
The class is defined on first use (`model_class()`): importing VLMEvalKit is slow and optional.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

CLASS_NAME = "SicogLLaVA"
#: where the exact image files go unless `image_dir` is given
DEFAULT_IMAGE_DIR = Path(tempfile.gettempdir()) / "sicog-vlmeval-images"


def message_to_pair(message: list[dict]) -> tuple[str, str | None]:
    """(user text, first image path) of a VLMEvalKit message (a list of {type, value} dicts).

    Texts are joined with newlines; sicog models take one image, so further images are dropped
    with a warning.
    """
    texts = [m["value"] for m in message if m["type"] == "text"]
    images = [m["value"] for m in message if m["type"] == "image"]
    if len(images) > 1:
        log.warning("%d images in one message; sicog models take one, the first is used", len(images))
    return "\n".join(texts), (images[0] if images else None)


def image_file(b64: str, image_dir: str | Path = DEFAULT_IMAGE_DIR) -> Path:
    """The image bytes of a base64 cell, as a file named by their SHA-256 (written once, atomically)."""
    from PIL import Image

    data = base64.b64decode("".join(str(b64).split()))
    with Image.open(io.BytesIO(data)) as im:  # VLMEvalKit tells an image from text by the file name's suffix
        suffix = {"JPEG": "jpg"}.get(im.format, str(im.format).lower())
    path = Path(image_dir) / f"{hashlib.sha256(data).hexdigest()}.{suffix}"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    return path


def line_images(line, image_dir: str | Path = DEFAULT_IMAGE_DIR) -> list[str] | None:
    """Exact image files of a dataset row's base64 `image` cell (one or a list); None when the row
    has no `image` cell (then VLMEvalKit's own paths are used)."""
    if "image" not in line or not isinstance(line["image"], (str, list)):
        return None
    cells = line["image"] if isinstance(line["image"], list) else [line["image"]]
    return [str(image_file(c, image_dir)) for c in cells]


def line_prompt(line, prompt_style: str = "direct") -> str:
    """A row with options: `sicog evaluate`'s multiple-choice prompt; without: its question."""
    from sicog.eval.mcq import cell_text, row_options, row_prompt

    if len(row_options(line)) >= 2:
        return row_prompt(line, prompt_style)
    return cell_text(line["question"])


def model_class():
    """The VLMEvalKit model class (defined on first use: importing VLMEvalKit is slow)."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    from vlmeval.dataset import DATASET_TYPE
    from vlmeval.vlm.base import BaseModel

    class SicogLLaVA(BaseModel):
        """A sicog checkpoint (a stock LLaVA-HF folder, or an `arch: uhd` folder) as a VLMEvalKit model."""

        INSTALL_REQ = False
        INTERLEAVE = False  # one image per question; VLMEvalKit may give more, the first is used

        def __init__(self, model_path: str, max_new_tokens: int | None = None, prompt_style: str = "direct",
                     device: str | None = None, dtype: str | None = None,
                     image_dir: str | None = None, **kwargs):
            super().__init__()
            import torch

            from sicog.eval.config import DEFAULT_MAX_NEW_TOKENS
            from sicog.model.checkpoint import load_llava_folder
            from sicog.model.uhd.build import is_uhd_folder, load_uhd_folder
            from sicog.utils.dist import pick_device

            if kwargs:
                log.warning("%s: ignoring unknown arguments %s", CLASS_NAME, sorted(kwargs))
            if prompt_style not in DEFAULT_MAX_NEW_TOKENS:
                raise ValueError(f"{CLASS_NAME}: prompt_style must be one of {', '.join(DEFAULT_MAX_NEW_TOKENS)}, "
                                 f"got {prompt_style!r}")
            if not (Path(model_path) / "config.json").is_file():
                raise FileNotFoundError(f"{CLASS_NAME}: {model_path} is not a checkpoint folder (no config.json)")
            self.device = pick_device(device or "auto")
            load = load_uhd_folder if is_uhd_folder(model_path) else load_llava_folder
            self.model, self.processor = load(model_path, dtype=getattr(torch, dtype) if dtype else None)
            self.model.to(self.device).eval()
            # as `sicog evaluate`: a chain of thought needs room to reach its final answer
            self.max_new_tokens = int(max_new_tokens or DEFAULT_MAX_NEW_TOKENS[prompt_style])
            self.prompt_style = prompt_style
            self.image_dir = Path(image_dir) if image_dir else DEFAULT_IMAGE_DIR

        def use_custom_prompt(self, dataset):
            # "MCQ" is also VLMEvalKit's guess for any custom TSV; `line_prompt` looks at the row
            return dataset is not None and DATASET_TYPE(dataset) == "MCQ"

        def build_prompt(self, line, dataset=None):
            paths = line_images(line, self.image_dir)
            if paths is None:
                paths = self.dump_image(line, dataset)
                paths = paths if isinstance(paths, list) else [paths]
            return [dict(type="image", value=str(p)) for p in paths] + \
                [dict(type="text", value=line_prompt(line, self.prompt_style))]

        def generate_inner(self, message, dataset=None):
            from sicog.data.images import load_image
            from sicog.model.generation import generate_texts

            text, image_path = message_to_pair(message)
            image = None
            if image_path is not None:
                image = load_image(image_path, "VLMEvalKit message")
            out = generate_texts(self.model, self.processor, [text], [image], n=1, temperature=0.0,
                                 max_new_tokens=self.max_new_tokens, batch_size=1, progress=False)
            return out[0][0]

    SicogLLaVA.__name__ = SicogLLaVA.__qualname__ = CLASS_NAME
    _CLASS = SicogLLaVA
    return _CLASS


_CLASS = None
