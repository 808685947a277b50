"""The shared retry policy: which statuses retry, Retry-After read and capped, full-jitter bounds."""

from __future__ import annotations

from tenacity import RetryCallState, Retrying

from sicog.utils.retry import backoff_wait, parse_retry_after, retryable_status


def _state(attempt: int, exc: BaseException | None) -> RetryCallState:
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    if exc is not None:
        state.set_exception((type(exc), exc, None))
    return state


def test_statuses_worth_another_try():
    assert all(retryable_status(c) for c in (408, 409, 429, 500, 502, 503, 504, 529))
    assert not any(retryable_status(c) for c in (400, 401, 403, 404, 413, 422))


def test_retry_after_in_seconds_or_milliseconds():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # an HTTP date, past
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after(None) is None and parse_retry_after({}) is None


def test_the_wait_is_the_servers_capped_else_jittered_exponential():
    class Busy(Exception):
        retry_after = 120.0

    wait = backoff_wait(1.0, 30.0, lambda e: getattr(e, "retry_after", None))
    assert wait(_state(1, Busy())) == 30.0  # asked for 120 s, capped
    waits = [wait(_state(4, ValueError())) for _ in range(200)]
    assert all(0 <= w <= 16.0 for w in waits) and len(set(waits)) > 1  # drawn from [0, 2^4]
