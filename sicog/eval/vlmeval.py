"""VLMEvalKit model wrapper for sicog checkpoints, and a launcher for VLMEvalKit's run.py.

VLMEvalKit's stock classes that can load a plain `LlavaForConditionalGeneration` folder
(`LLaVA_Next`, only when the path contains "interleave") move the model to CUDA in float16 and
lay out multiple-choice prompts their own way. `SicogLLaVA` instead:
  * loads the folder with stock transformers classes on any device (CUDA when available);
  * renders prompts with the checkpoint's own chat template through
    `sicog.model.generation.generate_texts` (greedy), exactly as `sicog evaluate` does;
  * for multiple-choice datasets, asks the question with `sicog.eval.mcq.row_prompt`, so that
    VLMEvalKit's and sicog's numbers are computed on the same prompts.

VLMEvalKit builds models from its own registry, so the launcher registers the class before
handing over to VLMEvalKit's `run.py` (every argument after `--` goes to run.py):

    python -m sicog.eval.vlmeval --model CKPT --name sicog_ckpt -- --data MMStar --work-dir runs/vlmeval

It also makes `"class": "SicogLLaVA"` usable in a run.py `--config` JSON.
"""

from __future__ import annotations

import argparse
import logging
import runpy
import sys
from functools import partial
from pathlib import Path

log = logging.getLogger(__name__)

CLASS_NAME = "SicogLLaVA"


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


def model_class():
    """The VLMEvalKit model class (defined on first use: importing VLMEvalKit is slow)."""
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    from vlmeval.dataset import DATASET_TYPE
    from vlmeval.vlm.base import BaseModel

    class SicogLLaVA(BaseModel):
        """A sicog checkpoint (stock LLaVA-HF folder) as a VLMEvalKit model."""

        INSTALL_REQ = False
        INTERLEAVE = True

        def __init__(self, model_path: str, max_new_tokens: int = 32, prompt_style: str = "direct",
                     device: str | None = None, dtype: str | None = None, batch_size: int = 1, **kwargs):
            super().__init__()
            import torch
            from transformers import AutoProcessor, LlavaForConditionalGeneration

            from sicog.utils.dist import pick_device

            if kwargs:
                log.warning("%s: ignoring unknown arguments %s", CLASS_NAME, sorted(kwargs))
            self.device = pick_device(device or "auto")
            torch_dtype = getattr(torch, dtype) if dtype else "auto"
            self.model = LlavaForConditionalGeneration.from_pretrained(model_path, dtype=torch_dtype)
            self.model.to(self.device).eval()
            self.processor = AutoProcessor.from_pretrained(model_path)
            self.max_new_tokens = int(max_new_tokens)
            self.prompt_style = prompt_style
            self.batch_size = batch_size

        def use_custom_prompt(self, dataset):
            return dataset is not None and DATASET_TYPE(dataset) == "MCQ"

        def build_prompt(self, line, dataset=None):
            from sicog.eval.mcq import row_prompt

            paths = self.dump_image(line, dataset)
            paths = paths if isinstance(paths, list) else [paths]
            return [dict(type="image", value=p) for p in paths] + \
                [dict(type="text", value=row_prompt(line, self.prompt_style))]

        def generate_inner(self, message, dataset=None):
            from PIL import Image

            from sicog.model.generation import generate_texts

            text, image_path = message_to_pair(message)
            image = None
            if image_path is not None:
                with Image.open(image_path) as im:
                    image = im.convert("RGB")
            out = generate_texts(self.model, self.processor, [text], [image], n=1, temperature=0.0,
                                 max_new_tokens=self.max_new_tokens, batch_size=self.batch_size,
                                 progress=False)
            return out[0][0]

    SicogLLaVA.__name__ = SicogLLaVA.__qualname__ = CLASS_NAME
    _CLASS = SicogLLaVA
    return _CLASS


_CLASS = None


def register(name: str | None = None, model_path: str | None = None, **kwargs) -> type:
    """Make the class known to VLMEvalKit: as `vlmeval.vlm.SicogLLaVA` (for --config files) and,
    with `name` and `model_path`, as the model `name` of `vlmeval.config.supported_VLM`."""
    import vlmeval.config
    import vlmeval.vlm

    cls = model_class()
    setattr(vlmeval.vlm, CLASS_NAME, cls)
    if name is not None:
        if model_path is None:
            raise ValueError("register: a model name needs a model_path")
        vlmeval.config.supported_VLM[name] = partial(cls, model_path=str(Path(model_path).resolve()), **kwargs)
    return cls


def find_run_py(vlmevalkit_dir: str | None = None) -> Path:
    """VLMEvalKit's run.py: in --vlmevalkit-dir, or beside an editable install's `vlmeval` package."""
    if vlmevalkit_dir:
        path = Path(vlmevalkit_dir) / "run.py"
    else:
        import vlmeval

        path = Path(vlmeval.__file__).resolve().parent.parent / "run.py"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: install VLMEvalKit from a clone (pip install -e VLMEvalKit) or pass "
            "--vlmevalkit-dir")
    return path


def main(argv: list[str] | None = None) -> int:
    """`python -m sicog.eval.vlmeval --model CKPT [--name N] -- <run.py arguments>`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(prog="python -m sicog.eval.vlmeval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, metavar="CKPT",
                   help="checkpoint folder to register as --name (omit when a --config JSON names it)")
    p.add_argument("--name", default="sicog_llava",
                   help="model name given to run.py's --model (default sicog_llava)")
    p.add_argument("--max-new-tokens", type=int, default=32, help="new tokens per reply (default 32)")
    p.add_argument("--prompt-style", choices=("direct", "cot"), default="direct",
                   help="multiple-choice prompt: direct (option letter) or cot (step by step)")
    p.add_argument("--device", default=None, help="torch device (default: this rank's GPU when CUDA is available, else cpu)")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"),
                   help="weights dtype (default: the checkpoint's own)")
    p.add_argument("--vlmevalkit-dir", default=None,
                   help="VLMEvalKit clone holding run.py (default: found from the installed vlmeval)")
    args = p.parse_args(argv)
    register(args.name if args.model else None, args.model, max_new_tokens=args.max_new_tokens,
             prompt_style=args.prompt_style, device=args.device, dtype=args.dtype)
    run_py = find_run_py(args.vlmevalkit_dir)
    if args.model and "--model" not in rest and "--config" not in rest:
        rest = ["--model", args.name, *rest]
    sys.argv = [str(run_py), *rest]
    runpy.run_path(str(run_py), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
