"""Where the judge prompts of the GPT-judged benchmarks come from.

They are the benchmark authors' text (MM-Vet's grader prompt with its few-shot table, MathVista's
answer-extraction prompt with its worked examples), and a judge answers differently to any other
wording. sicog neither ships nor rewrites them: it asks the installed VLMEvalKit's own prompt
builders for them (`pip install 'sicog[vlmeval]'`), or reads them from a JSON file named by
`$SICOG_JUDGE_PROMPTS` with the keys `mmvet_prefix` and `mathvista_prefix`. Such a file is written
in any environment that has VLMEvalKit by `python -m sicog.eval.scores.judge_prompts OUT.json`.

A prefix is what the builder puts before the item's own text: MM-Vet appends "\\n" and the table
line `question | answer | prediction | `; MathVista appends the question, "\\n", "Model respone: ",
the reply and "Extracted answer:" (VLMEvalKit's spelling, kept).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

from sicog.utils.io import SicogError

ENV = "SICOG_JUDGE_PROMPTS"
KEYS = ("mmvet_prefix", "mathvista_prefix")
_Q, _A, _P = "\u0001question\u0001", "\u0001answer\u0001", "\u0001prediction\u0001"  # markers no prompt holds


def mmvet_tail(question: str, answer: str, prediction: str) -> str:
    return "\n" + " | ".join([question, answer, prediction, ""])


def mathvista_tail(question: str, prediction: str) -> str:
    return question + "\n" + "Model respone: " + prediction + "Extracted answer:"


def _prefix(prompt: str, tail: str, what: str) -> str:
    if not prompt.endswith(tail):
        raise SicogError(f"VLMEvalKit's {what} prompt no longer ends with the item's own text; sicog cannot "
                         "take its prefix (set $SICOG_JUDGE_PROMPTS to a file of prompts instead)")
    return prompt[: len(prompt) - len(tail)]


def from_vlmevalkit() -> dict[str, str]:
    """The prefixes, from the installed VLMEvalKit's own prompt builders."""
    from sicog.eval.vlmeval_import import import_vlmeval

    import_vlmeval()
    from vlmeval.dataset.utils.mathvista import build_mathvista_gpt4_prompt
    from vlmeval.dataset.utils.mmvet import build_mmvet_gpt4_prompt

    mmvet = build_mmvet_gpt4_prompt({"question": _Q, "answer": _A, "prediction": _P})
    mathvista = build_mathvista_gpt4_prompt({"question": _Q, "prediction": _P})
    return {"mmvet_prefix": _prefix(mmvet, mmvet_tail(_Q, _A, _P), "MM-Vet grader"),
            "mathvista_prefix": _prefix(mathvista, mathvista_tail(_Q, _P), "MathVista extraction")}


def _from_file(path: str) -> dict[str, str]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SicogError(f"${ENV}: {path}: cannot read the judge prompts: {e}") from None
    if not isinstance(data, dict):
        raise SicogError(f"${ENV}: {path}: expected a JSON object with keys {', '.join(KEYS)}")
    bad = [k for k in KEYS if not isinstance(data.get(k), str) or not data[k].strip()]
    if bad:
        raise SicogError(f"${ENV}: {path}: key {bad[0]} is missing or not a non-empty string")
    return {k: data[k] for k in KEYS}


@functools.lru_cache(maxsize=4)
def _load(path: str | None) -> dict[str, str]:
    if path:
        return _from_file(path)
    try:
        return from_vlmevalkit()
    except ImportError:
        raise SicogError("MM-Vet and MathVista are judged with their authors' prompts, which sicog reads from "
                         "VLMEvalKit: install it (pip install 'sicog[vlmeval]', docs/evaluation.md), or set "
                         f"${ENV} to a JSON file written by `python -m sicog.eval.scores.judge_prompts OUT.json` "
                         "where VLMEvalKit is installed") from None


def judge_prompts() -> dict[str, str]:
    """{"mmvet_prefix", "mathvista_prefix"}: from $SICOG_JUDGE_PROMPTS when set, else from VLMEvalKit."""
    return _load(os.environ.get(ENV) or None)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m sicog.eval.scores.judge_prompts OUT.json   (where VLMEvalKit is installed)",
              file=sys.stderr)
        return 2
    out = Path(args[0])
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(from_vlmevalkit(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
