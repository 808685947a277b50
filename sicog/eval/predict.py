"""Predict callables for the evaluators: a checkpoint answering with greedy decoding.

A predictor maps a list of (prompt, image) pairs to one reply per pair (see
`sicog.eval.mcq.Predictor`); the evaluators never touch a model directly, so tests plug in
oracles and constant answerers instead.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from sicog.utils.io import SicogError

log = logging.getLogger(__name__)


def check_weight_files(model_path: str | Path, flag: str = "--model") -> None:
    """Every `*.safetensors` of a checkpoint folder has a readable header (a truncated or garbled
    file fails here, naming it, before any work); a path that is no folder is left to the loader."""
    folder = Path(model_path)
    if not folder.is_dir():
        return
    from sicog.model.weights import safetensors_error

    for f in sorted(folder.glob("*.safetensors")):
        if err := safetensors_error(f):
            raise SicogError(f"{flag} {folder}: corrupt weights file {f} ({err}); "
                             "expected a complete safetensors file (copy or save the checkpoint again)")


def load_model(model_path: str | Path, flag: str = "--model", **kwargs):
    """`load_checkpoint(model_path, **kwargs)` whose failures are SicogErrors naming the folder."""
    from sicog.model.checkpoint import load_checkpoint

    check_weight_files(model_path, flag)
    try:
        return load_checkpoint(model_path, **kwargs)
    except SicogError:
        raise
    except Exception as e:  # a broken checkpoint surfaces as many types (OSError, ValueError, KeyError ...)
        raise SicogError(f"{flag} {model_path}: cannot load the checkpoint ({type(e).__name__}: {e})") from None


class CheckpointPredictor:
    """Greedy replies of a loaded (model, processor) pair, through `generate_texts`."""

    def __init__(self, model, processor, *, batch_size: int = 32, max_new_tokens: int = 64):
        self.model = model
        self.processor = processor
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens

    def __call__(self, pairs: Sequence[tuple[str, object]]) -> list[str]:
        from sicog.model.generation import generate_texts

        outs = generate_texts(self.model, self.processor, [p for p, _ in pairs], [im for _, im in pairs],
                              n=1, temperature=0.0, max_new_tokens=self.max_new_tokens,
                              batch_size=self.batch_size, progress=False)
        return [o[0] for o in outs]

    def with_max_new_tokens(self, max_new_tokens: int) -> CheckpointPredictor:
        """The same model with another reply length (captions need longer replies than letters)."""
        return CheckpointPredictor(self.model, self.processor, batch_size=self.batch_size,
                                   max_new_tokens=max_new_tokens)


def checkpoint_predictor(model_path: str | Path, *, batch_size: int = 32, max_new_tokens: int = 64,
                         device: str | None = None, dtype: str | None = None) -> CheckpointPredictor:
    """Load a checkpoint once and return a greedy predictor over it.

    `device` defaults to this rank's GPU when CUDA is available, else CPU (`pick_device`);
    `dtype` is a torch dtype name ("bfloat16", "float32"…) or None for the checkpoint's own.
    """
    import torch

    from sicog.utils.dist import pick_device

    device = pick_device(device or "auto")
    torch_dtype = getattr(torch, dtype) if dtype else None
    model, processor = load_model(model_path, dtype=torch_dtype, device=device)
    model.eval()
    log.info("loaded %s on %s", model_path, device)
    return CheckpointPredictor(model, processor, batch_size=batch_size, max_new_tokens=max_new_tokens)
