"""The one retry policy of sicog's HTTP clients (`sicog annotate` and `sicog sample --backend
openai`), built on tenacity.

- Which answers are worth another try: 408, 409, 429 and every 5xx (`retryable_status`);
  timeouts, connection errors and malformed bodies are the callers' to classify the same way.
- How long to wait (`backoff_wait`): what the server asked for in `retry-after-ms` or
  `Retry-After` (seconds or an HTTP date; capped at `maximum`), else a random wait in [0, initial * 2^k] before
  retry k, capped at `maximum` ("full jitter": many clients that failed together do not retry
  together).
"""

from __future__ import annotations

import datetime
import email.utils
from typing import Any, Callable, Mapping

from tenacity import RetryCallState, wait_random_exponential

RETRY_STATUS = frozenset({408, 409, 429})


def retryable_status(code: int) -> bool:
    """Whether an HTTP status may succeed on another try (the others are the request's fault)."""
    return code in RETRY_STATUS or code >= 500


def parse_retry_after(headers: Mapping[str, Any] | Any | None) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date); None when absent or unreadable."""
    if not headers:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except (TypeError, ValueError):
            pass
        if divisor == 1.0:  # Retry-After may also be an HTTP date (RFC 9110 10.2.3)
            try:
                when = email.utils.parsedate_to_datetime(str(value))
            except (TypeError, ValueError, IndexError):
                continue  # neither: the exponential wait applies
            if when.tzinfo is None:
                when = when.replace(tzinfo=datetime.timezone.utc)
            return max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds())
    return None


def backoff_wait(initial: float, maximum: float,
                 retry_after: Callable[[BaseException | None], float | None]) -> Callable[[RetryCallState], float]:
    """A tenacity `wait`: the server's Retry-After (through `retry_after(exception)`), else full jitter."""
    exponential = wait_random_exponential(multiplier=initial, max=maximum)

    def wait(state: RetryCallState) -> float:
        asked = retry_after(state.outcome.exception() if state.outcome else None)
        return min(asked, maximum) if asked is not None else exponential(state)

    return wait


def describe_failure(exc: BaseException, limit: int = 500) -> str:
    """One line naming an OpenAI-compatible request's failure (HTTP status and message, timeout,
    connection error, or the exception), redacted: a server may echo the key it was given."""
    import openai

    from sicog.utils.http import DeadlineExceeded
    from sicog.utils.secrets import redact

    if isinstance(exc, openai.APIStatusError):
        text = f"HTTP {exc.status_code}: {exc.message}"
    elif isinstance(exc, (openai.APITimeoutError, DeadlineExceeded)):
        text = "timeout"
    elif isinstance(exc, openai.APIConnectionError):
        text = f"connection error: {exc.__cause__ or exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return redact(" ".join(text.split()))[:limit]
