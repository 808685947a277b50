"""The settings of `sicog evaluate`, declared once: `sicog evaluate [CONFIG.yaml] [flags]`.

The flags are generated from `EvaluateConfig` (sicog.config_flags); a YAML file holds the same
settings under the field names (`prompt_style: cot`), and flags given on the command line
override it. In YAML, quote the words on / off (`captions: 'off'`): unquoted, YAML reads them
as booleans.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sicog.config_flags import setting
from sicog.eval.mcq import EVAL_PROMPT_STYLES
from sicog.utils.io import SicogError

MCQ_SCORINGS = ("generate", "likelihood")
CAPTIONS = ("auto", "on", "off")
CAPTION_PROMPTS = ("caption", "cod")
DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_MAX_NEW_TOKENS = {"direct": 32, "cot": 512, "open_cot": 512}


def parse_mcq_scoring(value: str) -> list[str]:
    """'likelihood,generate' -> ['likelihood', 'generate'] (the first is the headline)."""
    ways = [w.strip() for w in str(value).split(",") if w.strip()]
    bad = [w for w in ways if w not in MCQ_SCORINGS]
    if not ways or bad or len(set(ways)) != len(ways):
        raise SicogError(f"--mcq-scoring: expected one or both of {', '.join(MCQ_SCORINGS)} (comma-separated, "
                         f"no repeats), got {value!r}")
    return ways


@dataclass
class EvaluateConfig:
    """Settings of one evaluation (model and benchmark are required)."""

    model: str | None = setting(None, "checkpoint folder (a LLaVA-HF folder written by sicog train)",
                                required=True, metavar="CKPT")
    benchmark: str | None = setting(None, "a VLMEvalKit-style multiple-choice TSV, or world:DIR for the "
                                          "benchmark of a world written by `sicog world --out DIR` "
                                          "(DIR/manifest.json)", required=True, metavar="FILE.tsv|world:DIR")
    out: str | None = setting(None, "output folder (default: outputs/eval/<checkpoint name>/<benchmark name>)",
                              metavar="DIR")
    batch_size: int = setting(16, "prompts generated together (default 16)", metavar="N", min=1)
    max_new_tokens: int | None = setting(None, "new tokens per multiple-choice reply (default 32 for direct, "
                                               "512 for cot and open_cot)", metavar="N", min=1)
    prompt_style: str = setting("direct", "direct: ask for the option's letter (VLMEvalKit's LLaVA instruction); "
                                          "cot: ask for a step-by-step answer and read its 'The answer is X.'; "
                                          "open_cot: the same without listing the options, the answer matched to "
                                          "the option texts (models that cannot pick letters) (default direct)",
                                choices=EVAL_PROMPT_STYLES)
    mcq_scoring: str = setting("generate", "how multiple choice is scored: generate = ask for the option's letter "
                                           "and read the reply (VLMEvalKit); likelihood = ask the open question and "
                                           "pick the option text the model finds most probable (SEED-Bench style; "
                                           "for tiny models that know answers but cannot yet map them to letters). "
                                           "A comma list scores both ways; the first is the headline 'mcq' of "
                                           "summary.json (default generate)", metavar="WAY[,WAY]")
    shuffled_image_control: bool = setting(False, "also score the headline way with every item's image swapped for "
                                                  "another item's, on the headline's own questions: the accuracy from "
                                                  "the question alone; the gap to the real accuracy is what the model "
                                                  "reads from the image (summary: mcq_shuffled_images)")
    limit: int | None = setting(None, "evaluate only the first N items (and N caption images)", metavar="N", min=1)
    generate_limit: int | None = setting(None, "score the generate way on only the first N items (of --limit): "
                                               "generating a reply, a step-by-step one above all, costs far more "
                                               "per item than scoring option likelihoods (default: every item)",
                                         metavar="N", min=1)
    caption_limit: int | None = setting(None, "describe only the first N caption images (default: --limit, else "
                                              "all): captions cost far more per item than multiple choice",
                                        metavar="N", min=1)
    captions: str = setting("auto", "caption evaluation: auto = when the benchmark has caption ground truth (a "
                                    "world with benchmark_captions, or --captions-file); on = require it; off = "
                                    "skip (in YAML quote on/off)", choices=CAPTIONS)
    captions_file: str | None = setting(None, "caption ground truth ({id, image, scene} per line, image paths "
                                              "relative to the file's folder); default: the world's "
                                              "benchmark_captions", metavar="FILE.jsonl")
    caption_prompt: str = setting("caption", "caption: ask for a detailed description; cod: ask for a step-by-step "
                                             "(CoD) description, whose Step 5 paragraph is scored (default caption)",
                                  choices=CAPTION_PROMPTS)
    caption_max_new_tokens: int = setting(256, "new tokens per generated description (default 256; CoD needs more)",
                                          metavar="N", min=1)
    benchmarks: dict[str, Any] | None = setting(
        None, "more benchmarks of any type by their VLMEvalKit names (MMBench_DEV_EN, POPE, MME, DocVQA_VAL, "
              "ChartQA_TEST, OCRBench, MMVet, MathVista_MINI, ...): name -> TSV, world:DIR or {tsv, kind, limit}; "
              "each asked as VLMEvalKit asks it and scored as VLMEvalKit scores it, in OUT/benchmarks/<name> "
              "(sicog.eval.benchmark_list; YAML only)", cli=False)
    judge: dict[str, Any] | None = setting(
        None, "the LLM judge of MM-Vet and MathVista: {base_url, model, api_key_env, max_retries, "
              "request_timeout, backoff_initial, backoff_max, workers} (YAML only)", cli=False)
    open_max_new_tokens: int = setting(128, "new tokens per reply to an open question of `benchmarks` (yes/no, VQA, "
                                            "OCR, MM-Vet, MathVista; default 128)", metavar="N", min=1)
    device: str | None = setting(None, "torch device (default: cuda when available, else cpu)")
    dtype: str | None = setting(None, "weights dtype (default: the checkpoint's own)", choices=DTYPES)
    allow_images_outside_folder: bool = setting(False, "let the caption ground truth name images outside its "
                                                       "folder (absolute paths, '..', symlinks to elsewhere)")
    overwrite: bool = setting(False, "replace a finished evaluation of other settings in --out (only the files "
                                     "its summary.json lists); without it other settings are refused (one of the "
                                     "same settings is kept either way: nothing to do)")
    progress: bool = setting(True, "no progress bars", invert="--no-progress")

    def validate(self) -> None:
        """Errors that need no data, beyond each setting's choices and range (sicog.config_flags.check_config)."""
        parse_mcq_scoring(self.mcq_scoring)
        if self.benchmarks is not None and not isinstance(self.benchmarks, dict):
            raise SicogError("key benchmarks: expected a mapping of benchmark name -> TSV or world:DIR")
        if self.judge is not None:
            from sicog.eval.benchmark_list import judge_settings

            judge_settings(self.judge)

    def scorings(self) -> list[str]:
        """The multiple-choice scorings, headline first."""
        return parse_mcq_scoring(self.mcq_scoring)

    def reply_tokens(self) -> int:
        """New tokens per multiple-choice reply: --max-new-tokens, else the prompt style's default."""
        return self.max_new_tokens or DEFAULT_MAX_NEW_TOKENS[self.prompt_style]
