"""An lmms-eval task for any VLMEvalKit-style multiple-choice TSV (the world's benchmark included).

lmms-eval reads its benchmarks from Hugging Face datasets; this module lets it read one of our
TSV files instead, with the same prompt (`sicog.data.formats.mcq_prompt`) and the same answer
extraction (`sicog.eval.answers.extract_choice`) as `sicog evaluate`, so the two tools' numbers
are comparable. Write a task folder, then point lmms-eval at it:

    python -m sicog.eval.lmms_task --benchmark world:runs/world --out runs/lmms_task
    python -m lmms_eval --model llava_hf --model_args pretrained=CKPT,device=cuda \\
        --tasks sicog_mcq --include_path runs/lmms_task --batch_size 1 --output_path runs/lmms_out

The folder holds `<name>.yaml` (the TSV's absolute path is written into it) and a `utils.py`
that imports the functions below, so sicog must be importable where lmms-eval runs
(`pip install --no-deps -e /path/to/sicog` is enough: these functions need only Pillow).
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

from sicog.eval.answers import extract_choice
from sicog.eval.mcq import row_options, row_prompt


def doc_options(doc) -> dict[str, str]:
    """The options of a row that exist, in letter order (empty/NaN cells dropped, as VLMEvalKit does)."""
    return row_options(doc)


def doc_to_visual(doc: dict):
    """The row's image (base64 in the `image` column) as a one-element list of RGB images."""
    from sicog.data.images import open_image

    data = base64.b64decode("".join(str(doc["image"]).split()))
    return [open_image(data, f"lmms-eval row {doc.get('index', '?')!r}")]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The prompt `sicog evaluate` uses; `lmms_eval_specific_kwargs["style"]` is direct or cot."""
    return row_prompt(doc, (lmms_eval_specific_kwargs or {}).get("style", "direct"))


def process_results(doc: dict, results: list[str]) -> dict:
    """1.0 when the reply's extracted letter is the answer, else 0.0 (unanswered counts as wrong)."""
    letter = extract_choice(results[0] if results else "", doc_options(doc))
    return {"accuracy": float(letter is not None and letter == str(doc["answer"]).strip())}


TASK_YAML = """\
# lmms-eval task written by `python -m sicog.eval.lmms_task` for {tsv}
task: {name}
dataset_path: csv
dataset_kwargs:
  data_files:
    test: {tsv}
  sep: "\\t"
  na_filter: false
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: answer
process_results: !function utils.process_results
generation_kwargs:
  max_new_tokens: {max_new_tokens}
  temperature: 0
  do_sample: false
lmms_eval_specific_kwargs:
  default:
    style: {style}
metric_list:
  - metric: accuracy
    aggregation: mean
    higher_is_better: true
metadata:
  - version: 0.0
"""

UTILS_PY = """\
# Written by `python -m sicog.eval.lmms_task`: the task's functions live in sicog.
from sicog.eval.lmms_task import doc_to_text, doc_to_visual, process_results  # noqa: F401
"""


def write_task(tsv: str | Path, out_dir: str | Path, name: str = "sicog_mcq", style: str = "direct",
               max_new_tokens: int = 32) -> Path:
    """Write `<out_dir>/<name>.yaml` and `<out_dir>/utils.py`; returns the YAML path."""
    from sicog.utils.io import atomic_write

    if style not in ("direct", "cot"):
        raise ValueError(f"style must be direct or cot, got {style!r}")
    out = Path(out_dir)
    yaml_path = out / f"{name}.yaml"
    with atomic_write(yaml_path) as fh:
        fh.write(TASK_YAML.format(tsv=Path(tsv).resolve(), name=name, style=style,
                                  max_new_tokens=max_new_tokens))
    with atomic_write(out / "utils.py") as fh:
        fh.write(UTILS_PY)
    return yaml_path


def main(argv: list[str] | None = None) -> int:
    """`python -m sicog.eval.lmms_task`: write an lmms-eval task folder for a benchmark."""
    from sicog.eval.cli import resolve_benchmark
    from sicog.eval.mcq import read_mcq_tsv
    from sicog.utils.io import SicogError

    p = argparse.ArgumentParser(prog="python -m sicog.eval.lmms_task", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", required=True, metavar="FILE.tsv|world:DIR",
                   help="a VLMEvalKit-style multiple-choice TSV, or world:DIR")
    p.add_argument("--out", required=True, metavar="DIR", help="task folder to write (--include_path of lmms-eval)")
    p.add_argument("--name", default="sicog_mcq", help="task name for --tasks (default sicog_mcq)")
    p.add_argument("--prompt-style", choices=("direct", "cot"), default="direct",
                   help="direct: ask for the option's letter; cot: ask for a step-by-step answer")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="new tokens per reply (default 32 for direct, 512 for cot)")
    args = p.parse_args(argv)
    try:
        tsv = resolve_benchmark(args.benchmark).tsv
        read_mcq_tsv(tsv)  # fail here, not inside lmms-eval, on a bad file
    except SicogError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    max_new = args.max_new_tokens or (32 if args.prompt_style == "direct" else 512)
    path = write_task(tsv, args.out, args.name, args.prompt_style, max_new)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
