"""A minimal stand-in for VLMEvalKit, written into a folder for `sys.path`: the parts of its
contract the sicog glue relies on (checked against nvidia-vlmeval 26.3), so the glue is tested
without VLMEvalKit installed.

- `vlmeval.vlm.base.BaseModel`: `set_dump_image(fn)`, `dump_image(line, dataset)`,
  `generate(message, dataset)` -> `generate_inner`;
- `vlmeval.dataset.DATASET_TYPE(name)`: "MCQ" for any name it does not know;
- `vlmeval.config.supported_VLM`: name -> model factory;
- `run.py`: logs a failed model x dataset combination on the "RUN" logger and carries on (exit
  status 0); an unknown dataset (no `$LMUData/NAME.tsv`) is such a failure, and so is a judge
  other than exact_matching without an OpenAI key. It writes its argv to WORK_DIR/argv.json.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

FILES = {
    "vlmeval/__init__.py": "from . import config, dataset, vlm  # as VLMEvalKit's: everything at once\n",
    "vlmeval/config.py": "supported_VLM = {}\n",
    "vlmeval/dataset/__init__.py": """
        import torchvision.transforms as T  # as VLMEvalKit's video datasets do at import time
        from torchvision.transforms.functional import InterpolationMode

        RESIZE = T.Resize(224, interpolation=InterpolationMode.BICUBIC)


        def DATASET_TYPE(dataset, *, default="MCQ"):
            return "VQA" if "openended" in dataset.lower() else default
        """,
    "vlmeval/vlm/__init__.py": "from .base import BaseModel\n",
    "vlmeval/vlm/base.py": """
        class BaseModel:
            INTERLEAVE = False

            def __init__(self):
                self.dump_image_func = None

            def set_dump_image(self, dump_image_func):
                self.dump_image_func = dump_image_func

            def dump_image(self, line, dataset):
                return self.dump_image_func(line)

            def generate(self, message, dataset=None):
                return self.generate_inner(message, dataset)
        """,
    "vlmeval/run.py": """
        import argparse
        import json
        import logging
        import os
        import sys
        from pathlib import Path

        from vlmeval.config import supported_VLM


        def main():
            logger = logging.getLogger("RUN")
            p = argparse.ArgumentParser()
            p.add_argument("--model", nargs="+", required=True)
            p.add_argument("--data", nargs="+", required=True)
            p.add_argument("--judge", default=None)
            p.add_argument("--work-dir", default=".")
            args = p.parse_args()
            Path(args.work_dir).mkdir(parents=True, exist_ok=True)
            Path(args.work_dir, "argv.json").write_text(json.dumps(sys.argv[1:]))
            for m in args.model:
                for d in args.data:
                    try:
                        if not Path(os.environ.get("LMUData", "."), d + ".tsv").is_file():
                            logger.error(f"Dataset {d} is not valid, will be skipped. ")
                            continue
                        assert m in supported_VLM, f"unknown model {m}"
                        if args.judge != "exact_matching":
                            key = os.environ.get("OPENAI_API_KEY", "")
                            assert key.startswith("sk-"), f"Illegal openai_key {key}. "
                    except Exception as e:
                        logger.exception(f"Model {m} x Dataset {d} combination failed: {e}, skipping this combination.")


        if __name__ == "__main__":
            main()
        """,
}


def write_fake_vlmeval(root: Path) -> Path:
    """Write the stand-in package under `root` (the folder to put on sys.path)."""
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root
