"""Requests to the annotator: the OpenAI SDK for HTTP, tenacity for retries, aiolimiter for rates.

The SDK's own retries are off (`max_retries=0`) so that one policy (sicog.utils.retry, shared with
`sicog sample --backend openai`) decides, for every failure:

- retried: 408, 409, 429 and 5xx answers, timeouts (`--request-timeout` is the deadline of the
  whole request, sicog.utils.http.within: a server dripping bytes cannot hold it longer), connection errors, a body that is not a chat
  completion (malformed JSON, no choices), and an answer that is not a Chain-of-Description
  (`prompt.InvalidAnswer`);
- not retried: any other 4xx (the request itself is wrong: retrying cannot help); the same one
  for --stop-after-identical-4xx items in a row stops the run (`RefusalStreak`);
- the wait before retry k is drawn from [0, backoff_initial * 2^k] (full jitter, capped at
  backoff_max), unless the server said how long in Retry-After / retry-after-ms (then that, capped).

Every try, retries included, first takes one request and its estimated tokens from the
per-minute limiters. Token usage is summed over every try that got an answer (an answer that
fails the check is still paid for). The API key is registered with sicog.utils.secrets, so an
error that quotes it is redacted like any log line.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import openai
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from sicog.stages.annotation.config import AnnotateConfig
from sicog.stages.annotation.prompt import InvalidAnswer, build_messages, parse_answer
from sicog.utils.http import DeadlineExceeded, within
from sicog.utils.retry import backoff_wait, parse_retry_after, retryable_status
from sicog.utils.retry import describe_failure as describe
from sicog.utils.secrets import redact, register_secret, register_url_secret

logger = logging.getLogger(__name__)

#: statuses that say the run, not the item, is wrong (key, permissions, model name): stop at once
FATAL_STATUS = {401, 403, 404}


class MalformedResponse(ValueError):
    """The server's body is not a chat completion with a text answer (retried)."""


@dataclass
class Usage:
    """Tokens the API reported (its `usage` field), summed over tries."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    answered_requests: int = 0  # tries that got a chat completion back (the ones that are billed)

    def add(self, other: "Usage") -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.answered_requests += other.answered_requests

    def as_dict(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "answered_requests": self.answered_requests}


@dataclass
class Outcome:
    """What became of one item: the CoD text and description, or the error of its last try."""

    cod: str | None = None
    description: str | None = None
    error: str | None = None
    attempts: int = 0
    usage: Usage = field(default_factory=Usage)
    status: int | None = None  # the HTTP status of the last try's error, when it was an HTTP answer


def is_transient(exc: BaseException) -> bool:
    """Whether another try may succeed (see the module docstring)."""
    if isinstance(exc, openai.APIStatusError):
        return retryable_status(exc.status_code)
    return isinstance(exc, (openai.APIConnectionError, DeadlineExceeded, MalformedResponse, InvalidAnswer,
                            json.JSONDecodeError))


def is_fatal(exc: BaseException) -> bool:
    """A 401/403/404: every other item would fail the same way."""
    return isinstance(exc, openai.APIStatusError) and exc.status_code in FATAL_STATUS


def is_refusal(outcome: Outcome) -> bool:
    """The item ended in a 4xx that no retry can change (not 408/409/429, not 401/403/404)."""
    status = outcome.status
    return status is not None and 400 <= status < 500 and not retryable_status(status) and status not in FATAL_STATUS


class RefusalStreak:
    """The same refusal (`is_refusal`, same message) for `limit` items in a row, in the order they
    finish, means the run itself is wrong (a text-only model, a --max-tokens the server rejects):
    `add` says when to stop. A success or another failure starts the count again; an item that
    sent no request (its image is missing) does not count. limit 0: never."""

    def __init__(self, limit: int):
        self.limit, self.error, self.count = limit, None, 0

    def add(self, outcome: Outcome) -> bool:
        if outcome.attempts == 0:
            return False
        if not is_refusal(outcome):
            self.error, self.count = None, 0
            return False
        self.count = self.count + 1 if outcome.error == self.error else 1
        self.error = outcome.error
        return bool(self.limit) and self.count >= self.limit


def retry_after_seconds(exc: BaseException | None) -> float | None:
    """The wait a 429/503 asks for (retry-after-ms or Retry-After in seconds), None when it names none."""
    return parse_retry_after(getattr(getattr(exc, "response", None), "headers", None))


class CodClient:
    """Asks one endpoint for Chain-of-Description answers (one instance per run)."""

    def __init__(self, cfg: AnnotateConfig, api_key: str | None):
        register_secret(api_key)
        register_url_secret(cfg.base_url)
        # "EMPTY": servers run without a key (vLLM, SGLang) accept any bearer value; passing it
        # explicitly also keeps the SDK from falling back to $OPENAI_API_KEY behind our back
        self._client = openai.AsyncOpenAI(base_url=cfg.base_url, api_key=api_key or "EMPTY", max_retries=0,
                                          timeout=cfg.request_timeout)
        self.cfg = cfg
        self._requests = AsyncLimiter(cfg.requests_per_minute, 60) if cfg.requests_per_minute else None
        self._tokens = AsyncLimiter(cfg.tokens_per_minute, 60) if cfg.tokens_per_minute else None
        self._wait = backoff_wait(cfg.backoff_initial, cfg.backoff_max, retry_after_seconds)

    async def close(self) -> None:
        await self._client.close()

    async def _try_once(self, messages: list[dict], est_tokens: int, outcome: Outcome) -> tuple[str, str]:
        if self._requests is not None:
            await self._requests.acquire()
        if self._tokens is not None:
            await self._tokens.acquire(min(est_tokens, self.cfg.tokens_per_minute))
        outcome.attempts += 1
        answer = await within(self._client.chat.completions.create(  # the SDK's timeout is per read
            model=self.cfg.model, messages=messages, temperature=self.cfg.temperature,
            max_tokens=self.cfg.max_tokens), self.cfg.request_timeout)
        if isinstance(answer, (str, bytes)) or not getattr(answer, "choices", None):
            raise MalformedResponse("the server's answer is not a chat completion with choices")
        usage = answer.usage
        outcome.usage.add(Usage(int(getattr(usage, "prompt_tokens", 0) or 0),
                                int(getattr(usage, "completion_tokens", 0) or 0), 1))
        content = getattr(getattr(answer.choices[0], "message", None), "content", None)
        if isinstance(content, list):  # some servers answer in parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return parse_answer(redact(content) if isinstance(content, str) else None)  # it may echo the key

    async def annotate(self, item_id: str, question: str, caption: str, image_url: str,
                       est_tokens: int) -> Outcome:
        """The item's outcome after at most max_retries + 1 tries; a 401/403/404 is raised."""
        outcome = Outcome()
        messages = build_messages(question, caption, image_url)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception()
            logger.debug("%s: try %d failed (%s); next in %.2fs", item_id, state.attempt_number,
                         describe(exc), state.upcoming_sleep)

        retrying = AsyncRetrying(stop=stop_after_attempt(self.cfg.max_retries + 1), wait=self._wait,
                                 retry=retry_if_exception(is_transient), before_sleep=before_sleep, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    outcome.cod, outcome.description = await self._try_once(messages, est_tokens, outcome)
        except Exception as exc:  # noqa: BLE001 - every failure ends in the failures file, named
            if is_fatal(exc):
                raise
            outcome.cod = outcome.description = None
            outcome.error = describe(exc)
            outcome.status = exc.status_code if isinstance(exc, openai.APIStatusError) else None
        return outcome
