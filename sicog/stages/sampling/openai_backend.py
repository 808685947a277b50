"""The HTTP backend: any OpenAI-compatible chat-completions server (vLLM, SGLang, ...).

One request per item asks for `n` choices; images travel as base64 PNG data URLs in the OpenAI
multimodal message format. A thread pool keeps at most `--concurrency` requests in flight;
429, 5xx, connection errors and requests past their deadline (`--request-timeout`, the whole
request: sicog.utils.http) are retried with exponential backoff (and jitter, honouring
Retry-After: the one policy of sicog.utils.retry, run by tenacity). An image is read (and uploaded) only once its path is found inside --image-folder
(`items.load_image`, unless --allow-images-outside-folder). The API key is read from the
environment variable named by `--api-key-env` and only ever placed in the Authorization header:
it is never logged nor written anywhere.
A server that returns fewer than n choices is asked again for the rest.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from http.client import HTTPException
from typing import Callable

from PIL import Image
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from sicog.model.generation import batch_seed
from sicog.stages.sampling.items import ImageLoadError, SampleItem, load_image
from sicog.utils import http
from sicog.utils.io import SicogError
from sicog.utils.retry import backoff_wait, parse_retry_after, retryable_status
from sicog.utils.secrets import redact, register_secret, register_url_secret

logger = logging.getLogger(__name__)

MAX_BACKOFF = 60.0


class RequestError(SicogError):
    """The server refused a request for good (a 4xx other than 408/409/429, or retries ran out)."""


class _Transient(Exception):
    """A failure another try may fix (sicog.utils.retry), with the wait the server asked for."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def chat_url(api_base: str) -> str:
    """`http://host:8000/v1` -> `http://host:8000/v1/chat/completions` (a full URL is kept)."""
    base = api_base.rstrip("/")
    return base if base.endswith("/chat/completions") else base + "/chat/completions"


def image_data_url(img: Image.Image) -> str:
    """A PNG data URL (lossless, so a corrupted image arrives exactly as made)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def build_messages(prompt: str, img: Image.Image | None) -> list[dict]:
    """One user message: the image part first (as our chat template puts `<image>` first), then the text."""
    if img is None:
        return [{"role": "user", "content": prompt}]
    return [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": image_data_url(img)}},
        {"type": "text", "text": prompt},
    ]}]


class ChatClient:
    """POSTs chat-completion requests with retries; thread-safe (no shared mutable state)."""

    def __init__(self, api_base: str, api_key: str | None, timeout: float = 600.0,
                 max_retries: int = 6, retry_delay: float = 1.0):
        self.url = chat_url(api_base)
        register_url_secret(api_base)
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            register_secret(api_key)  # an endpoint that echoes it back must not get it into a log or file
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.timeout, self.max_retries, self.retry_delay = timeout, max_retries, retry_delay

    def post(self, payload: dict) -> dict:
        """The decoded JSON answer; retries transient failures, raises RequestError otherwise."""
        body = json.dumps(payload).encode("utf-8")

        def once() -> dict:
            try:
                resp = http.post(self.url, body, self._headers, self.timeout)
            except http.DeadlineExceeded as e:
                raise _Transient(str(e)) from None
            except (OSError, HTTPException, ValueError) as e:
                raise _Transient(f"cannot reach {self.url}: {type(e).__name__}: {e}") from None
            if resp.status >= 400:
                detail = redact(resp.body[:300].decode("utf-8", "replace"))
                message = f"HTTP {resp.status} from {self.url}: {detail}"
                if not retryable_status(resp.status):
                    raise RequestError(message)
                raise _Transient(message, parse_retry_after(resp.headers))
            try:
                return json.loads(resp.body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise _Transient(f"invalid JSON from {self.url}: {e}") from None

        def before_sleep(state: RetryCallState) -> None:
            logger.warning("%s; retry %d/%d in %.2fs", state.outcome.exception(), state.attempt_number,
                           self.max_retries, state.upcoming_sleep)

        retrying = Retrying(stop=stop_after_attempt(self.max_retries + 1), retry=retry_if_exception_type(_Transient),
                            wait=backoff_wait(self.retry_delay, MAX_BACKOFF, lambda e: getattr(e, "retry_after", None)),
                            before_sleep=before_sleep, reraise=True)
        try:
            return retrying(once)
        except _Transient as e:
            raise RequestError(f"giving up after {self.max_retries + 1} attempts: {e}") from None


def _request_candidates(client: ChatClient, cfg, item: SampleItem,
                        img: Image.Image | None) -> tuple[list[str], int]:
    """cfg.n texts for one item (asking again when the server returns fewer choices)."""
    messages = build_messages(item.prompt, img)
    texts: list[str] = []
    tokens = 0
    for round_ in range(cfg.n):  # each round yields >= 1 choice, so n rounds always suffice
        payload = {"model": cfg.model, "messages": messages, "n": cfg.n - len(texts),
                   "max_tokens": cfg.max_new_tokens, "temperature": cfg.temperature,
                   "top_p": cfg.top_p, "seed": batch_seed(cfg.seed, item.key) + round_}
        if cfg.top_k > 0:
            payload["top_k"] = cfg.top_k  # vLLM / SGLang extension
        answer = client.post(payload)
        choices = answer.get("choices") or []
        for ch in sorted(choices, key=lambda c: c.get("index", 0)):
            content = (ch.get("message") or {}).get("content")
            if isinstance(content, list):  # some servers answer in parts
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            texts.append(redact((content or "").strip()))  # a server may echo the key it was sent
        tokens += int((answer.get("usage") or {}).get("completion_tokens") or 0)
        if not choices:
            raise RequestError(f"{client.url}: answer without choices for item {item.id!r}")
        if len(texts) >= cfg.n:
            return texts[:cfg.n], tokens
    raise RequestError(f"{client.url}: could not get {cfg.n} choices for item {item.id!r}")


def run_openai(cfg, items: list[SampleItem], done: set[str],
               emit: Callable[[SampleItem, list[str]], None],
               skip: Callable[[SampleItem, str], None], progress) -> None:
    """Sample every item not in `done` through the server at cfg.api_base (see module docstring)."""
    api_key = os.environ.get(cfg.api_key_env) or None
    if api_key is None:
        logger.info("no API key in $%s: sending requests without authorization", cfg.api_key_env)
    client = ChatClient(cfg.api_base, api_key, timeout=cfg.request_timeout,
                        max_retries=cfg.max_retries, retry_delay=cfg.retry_delay)
    todo = [it for it in items if it.id not in done]
    logger.info("openai backend at %s: %d items, %d requests in flight at most", client.url,
                len(todo), cfg.concurrency)

    def work(item: SampleItem):
        try:
            img = load_image(item, cfg.image_folder, cfg.seed, cfg.allow_images_outside_folder)
        except ImageLoadError as e:
            if cfg.on_error != "skip":
                raise
            return item, None, str(e)
        cands, tokens = _request_candidates(client, cfg, item, img)
        return item, (cands, tokens), None

    progress.start()
    pending = iter(todo)
    in_flight: set[Future] = set()
    with ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix="sample-http") as pool:
        try:
            while True:
                # Keep the pool bounded so 100K items never sit in memory as queued futures.
                while len(in_flight) < 2 * cfg.concurrency:
                    item = next(pending, None)
                    if item is None:
                        break
                    in_flight.add(pool.submit(work, item))
                if not in_flight:
                    break
                finished, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                for fut in finished:
                    item, result, reason = fut.result()
                    if result is None:
                        skip(item, redact(reason))
                        continue
                    cands, tokens = result
                    emit(item, cands)
                    progress(len(cands), tokens)
        except BaseException:
            for fut in in_flight:
                fut.cancel()
            raise
