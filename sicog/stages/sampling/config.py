"""The settings of `sicog sample`, declared once: `sicog sample [CONFIG.yaml] [flags]`.

The flags are generated from `SampleConfig` (sicog.config_flags); a YAML file holds the same
settings under the field names (`num_beams: 2`), and flags given on the command line override it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sicog.config_flags import setting
from sicog.stages.sampling.items import MODES
from sicog.utils.io import SicogError

BACKENDS = ("hf", "openai")
ON_ERROR = ("raise", "skip")
# hf backend weights dtype; auto: bfloat16 on a GPU that supports it, else float32 (hf_backend.pick_dtype)
DTYPES = ("auto", "float32", "bfloat16", "float16", "fp32", "bf16", "fp16")


@dataclass
class SampleConfig:
    """Settings of one `sicog sample` run (model, data, out and mode are required)."""

    model: str | None = setting(None, "checkpoint folder (hf backend) or the served model name (openai "
                                      "backend)", required=True)
    data: str | None = setting(None, "input records, LLaVA .json or .jsonl", required=True)
    image_folder: str | None = setting(None, "folder the records' image paths are relative to")
    out: str | None = setting(None, "output candidates .jsonl (written atomically)", required=True)
    mode: str | None = setting(None, "cod: CoD caption prompt; caption: direct detailed caption; cot: the "
                                     "record's question, step by step; direct: the record's question, short "
                                     "answer; conv: the record's own human turn", required=True, choices=MODES)
    # --num-candidates is the same flag: under torchrun, Python 3.11's argparse rejects "--n" as an
    # ambiguous prefix of torchrun's own --nnodes/--nproc-per-node before it reaches sicog.
    n: int = setting(6, "candidates per item (paper: 6); spell it --num-candidates under torchrun",
                     min=1, flags=("--n", "--num-candidates"))
    temperature: float = setting(0.7, "sampling temperature; 0 = greedy", min=0)
    top_p: float = setting(0.9, "nucleus sampling threshold", min=0, max=1, min_exclusive=True)
    top_k: int = setting(0, "top-k cut (0: off, as in the paper)", min=0)
    num_beams: int = setting(1, "beams (1: sampling / greedy)", min=1)
    max_new_tokens: int = setting(1200, "generation budget per candidate", min=1)
    batch_size: int = setting(32, "prompts per generate call (hf backend; each gives N sequences)", min=1)
    corruption: str | None = setting(None, "comma-separated image corruptions: gaussian_blur, color_jitter, "
                                           "mirror_rotate, mask (aliases: blur, jitter, rotate), and 'none' for "
                                           "the clean image")
    seed: int = setting(0, "run seed (sampling and corruptions)")
    backend: str = setting("hf", "hf: in-process transformers; openai: an OpenAI-compatible server (vLLM, SGLang)",
                           choices=BACKENDS)
    api_base: str | None = setting(None, "openai backend: base URL, e.g. http://host:8000/v1")
    api_key_env: str = setting("OPENAI_API_KEY", "openai backend: NAME of the environment variable holding the "
                                                 "API key (the key itself is never passed on the command line "
                                                 "nor logged)")
    concurrency: int = setting(8, "openai backend: requests in flight", min=1)
    max_retries: int = setting(6, "openai backend: retries on 429 / 5xx / connection errors (exponential backoff)",
                               min=0)
    retry_delay: float = setting(1.0, "openai backend: backoff scale in seconds (the wait before retry k is drawn from "
                                      "[0, scale * 2^k], capped at 60; a Retry-After header wins)", min=0)
    request_timeout: float = setting(600.0, "openai backend: deadline of each request in seconds (connect, send and "
                                            "the whole answer)", min=0, min_exclusive=True)
    on_error: str = setting("raise", "a missing/unreadable image (or one outside --image-folder): raise, or skip "
                                     "it, counted in the summary", choices=ON_ERROR)
    allow_images_outside_folder: bool = setting(False, "let records name images outside --image-folder (absolute "
                                                       "paths, '..', symlinks to elsewhere); off: such a record is "
                                                       "an error naming file:line (or a counted skip)")
    overwrite: bool = setting(False, "replace what --out holds of other settings (a finished output, unfinished "
                                     "parts) and sample again; without it other settings are refused (an output "
                                     "of the same settings is kept either way: nothing to do)")
    device: str = setting("auto", "hf backend: auto (GPU LOCAL_RANK if any, else cpu), cpu, cuda:0")
    dtype: str = setting("auto", "hf backend: auto (bfloat16 on a GPU that supports it, else float32), float32, "
                                 "bfloat16, float16 (or fp32, bf16, fp16)", choices=DTYPES)
    wait_timeout: float = setting(7 * 24 * 3600.0, "rank 0 without a process group: seconds to wait for the "
                                                   "other ranks' parts", min=0, min_exclusive=True, cli=False)
    progress: bool = setting(True, "no progress bar", invert="--no-progress")

    def validate(self) -> None:
        """Rules across settings (each setting's own range: sicog.config.check_config)."""
        if self.backend == "openai" and not self.api_base:
            raise SicogError("--backend openai needs --api-base URL (e.g. http://localhost:8000/v1)")
        if self.backend == "openai" and self.num_beams > 1:
            raise SicogError("--backend openai: beam search is not part of the chat-completions API; "
                             "use --num-beams 1")

    def determining(self, data_fingerprint: str) -> dict:
        """The settings that decide what the candidates are (a resumed run must match them)."""
        keys = ("model", "mode", "n", "temperature", "top_p", "top_k", "num_beams", "max_new_tokens",
                "corruption", "seed", "backend")
        d = {k: getattr(self, k) for k in keys}
        d["data"] = data_fingerprint
        d["image_folder"] = str(Path(self.image_folder).resolve()) if self.image_folder else None
        d["allow_images_outside_folder"] = self.allow_images_outside_folder
        return d

    def meta(self) -> dict:
        """`meta` of every output record: what produced its candidates."""
        return {"model": self.model, "temperature": self.temperature, "top_p": self.top_p,
                "top_k": self.top_k, "num_beams": self.num_beams,
                "max_new_tokens": self.max_new_tokens, "seed": self.seed, "backend": self.backend}
