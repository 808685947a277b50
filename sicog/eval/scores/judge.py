"""The LLM judge of the GPT-judged benchmarks (MM-Vet, MathVista): any OpenAI-compatible
chat-completions endpoint, with sicog's retry policy, and a per-item cache so that a rerun asks
only what it has not asked.

- Requests go through the OpenAI SDK (its own retries off), one user message holding the judge
  prompt, the benchmark's `max_tokens` and the temperature the benchmark's protocol asks for.
- Transport failures (408/409/429/5xx, timeouts, connection errors, an answer without text) are
  retried `max_retries` times with sicog.utils.retry's wait (the server's Retry-After, else full
  jitter). What is still failing then is answered with VLMEvalKit's failure text
  ("Failed to obtain answer via API."), which the benchmarks treat as a failed try, as VLMEvalKit
  does; 401/403/404 stop the run (every item would fail the same way).
- The cache (`JudgeCache`) is a JSONL file: one line per judged item with the benchmark, the
  item's index, a hash of everything that decided the verdict (judge model, the item's prompt)
  and the verdict. A line whose hash differs (another reply, another judge) is not reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import openai
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from sicog.utils.io import SicogError, iter_jsonl
from sicog.utils.retry import backoff_wait, describe_failure, parse_retry_after, retryable_status
from sicog.utils.secrets import register_secret

log = logging.getLogger(__name__)

#: VLMEvalKit's reply text for a request that failed after its retries
FAIL_MSG = "Failed to obtain answer via API."
FATAL_STATUS = {401, 403, 404}


@dataclass
class JudgeSettings:
    """Where and how to ask the judge (the `judge:` block of an evaluation config)."""

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    max_retries: int = 5
    request_timeout: float = 120.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    workers: int = 4


class EmptyAnswer(ValueError):
    """The server's body has no text answer (retried)."""


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIStatusError):
        return retryable_status(exc.status_code)
    return isinstance(exc, (openai.APIConnectionError, EmptyAnswer))


class Judge:
    """Asks one endpoint; `ask(prompt, temperature, max_tokens)` → the answer text or FAIL_MSG."""

    def __init__(self, settings: JudgeSettings):
        key = os.environ.get(settings.api_key_env) if settings.api_key_env else None
        register_secret(key)
        self.settings = settings
        self._client = openai.OpenAI(base_url=settings.base_url, api_key=key or "EMPTY", max_retries=0,
                                     timeout=settings.request_timeout)
        self._wait = backoff_wait(settings.backoff_initial, settings.backoff_max,
                                  lambda e: parse_retry_after(getattr(getattr(e, "response", None), "headers", None)))
        self.requests = 0
        self.failures = 0
        self._lock = threading.Lock()

    def _once(self, prompt: str, temperature: float, max_tokens: int) -> str:
        with self._lock:
            self.requests += 1
        answer = self._client.chat.completions.create(
            model=self.settings.model, messages=[{"role": "user", "content": prompt}],
            temperature=temperature, max_tokens=max_tokens)
        choices = getattr(answer, "choices", None)
        content = getattr(getattr(choices[0], "message", None), "content", None) if choices else None
        if not isinstance(content, str):
            raise EmptyAnswer("the judge's answer has no text")
        return content.strip()

    def ask(self, prompt: str, temperature: float = 0.0, max_tokens: int = 1024) -> str:
        retrying = Retrying(stop=stop_after_attempt(self.settings.max_retries + 1), wait=self._wait,
                            retry=retry_if_exception(_transient), reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    return self._once(prompt, temperature, max_tokens)
        except openai.APIStatusError as exc:
            if exc.status_code in FATAL_STATUS:
                raise SicogError(f"judge {self.settings.base_url} ({self.settings.model}): {describe_failure(exc, 300)}") from None
            reason = describe_failure(exc, 300)
        except Exception as exc:  # noqa: BLE001 - a failed request is a failed try of the item
            reason = describe_failure(exc, 300)
        with self._lock:
            self.failures += 1
        log.warning("judge request failed after %d tries: %s", self.settings.max_retries + 1, reason)
        return FAIL_MSG


def verdict_key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


class JudgeCache:
    """Verdicts per (benchmark, index), kept while their key (judge + prompt hash) holds."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self._entries: dict[tuple[str, str], dict] = {}
        self._lock = threading.Lock()
        if self.path is not None and self.path.exists():
            for _, entry in iter_jsonl(self.path, torn_tail_ok=True):
                self._entries[(entry["benchmark"], str(entry["index"]))] = entry

    def get(self, benchmark: str, index: str, key: str) -> dict | None:
        entry = self._entries.get((benchmark, index))
        return entry["verdict"] if entry is not None and entry["key"] == key else None

    def put(self, benchmark: str, index: str, key: str, verdict: dict) -> None:
        entry = {"benchmark": benchmark, "index": index, "key": key, "verdict": verdict}
        with self._lock:
            self._entries[(benchmark, index)] = entry
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())


def need_judge(judge: Judge | None, benchmark: str) -> Judge:
    if judge is None:
        raise SicogError(f"{benchmark}: this item needs the LLM judge and no judge is set (the judge settings "
                         "of the evaluation, or --judge-base-url)")
    return judge


def judge_all(rows, one, benchmark: str, judge: Judge | None, cache: JudgeCache, key_of, workers: int,
              progress: bool = True) -> dict[str, dict]:
    """Verdicts of every row: from the cache where its key holds, else `one(judge, row)` in
    `workers` threads (each stored as soon as it is known)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    verdicts, todo = {}, []
    for r in rows:
        cached = cache.get(benchmark, r.index, key_of(r))
        if cached is not None:
            verdicts[r.index] = cached
        else:
            todo.append(r)

    def work(r):
        v = one(judge, r)
        cache.put(benchmark, r.index, key_of(r), v)
        return r.index, v

    if todo:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for index, v in tqdm(pool.map(work, todo), total=len(todo), desc=f"judge {benchmark}",
                                 disable=not progress):
                verdicts[index] = v
    return verdicts
