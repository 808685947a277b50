"""A small OpenAI-compatible chat-completions server for tests: the real tiny model behind HTTP.

It speaks the subset vLLM / SGLang serve: POST /v1/chat/completions with `messages` (string or
[image_url data URL, text] content), `n`, `temperature`, `top_p`, `max_tokens`, `seed`. For the
tests it can also fail the first attempts of requests (429 / 503), cap the number of choices it
returns, and require a bearer key.
"""

from __future__ import annotations

import base64
import io

from PIL import Image

from sicog.model.generation import generate_texts
from tests.stages._loopback import LoopbackServer


class ChatServer(LoopbackServer):
    """Serve (model, processor) on 127.0.0.1:<free port> (a context manager)."""

    def __init__(self, model, processor, api_key: str | None = None, fail_first: int = 0,
                 max_choices: int | None = None):
        self.model, self.processor = model, processor
        self.api_key, self.fail_first, self.max_choices = api_key, fail_first, max_choices
        self.requests: list[dict] = []  # what arrived (decoded), for assertions
        self.auth_headers: list[str | None] = []
        self.failures = 0
        self._seen: dict[str, int] = {}
        super().__init__()
        self.base = self.base_url

    def respond(self, path: str, body: dict, auth: str | None) -> tuple[int, dict, dict | None]:
        if path != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {path}"}}, None
        with self.lock:
            self.auth_headers.append(auth)
        if self.api_key and auth != f"Bearer {self.api_key}":
            # like some real endpoints, the error echoes what it received
            return 401, {"error": {"message": f"invalid api key: {auth}"}}, None
        code, answer = self.answer(body)
        return code, answer, {"Retry-After": "0"} if code == 429 else None

    def answer(self, body: dict) -> tuple[int, dict]:
        prompt, image = None, None
        content = body["messages"][-1]["content"]
        if isinstance(content, str):
            prompt = content
        else:
            for part in content:
                if part["type"] == "text":
                    prompt = part["text"]
                elif part["type"] == "image_url":
                    url = part["image_url"]["url"]
                    assert url.startswith("data:image/png;base64,")
                    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
        key = f"{prompt}|{body.get('seed')}|{image.tobytes().hex()[:64] if image else ''}"
        with self.lock:
            self.requests.append({"prompt": prompt, "image_size": image.size if image else None,
                                  "n": body["n"], "seed": body.get("seed")})
            attempt = self._seen.get(key, 0)
            self._seen[key] = attempt + 1
            if attempt < self.fail_first:
                self.failures += 1
                return (429 if attempt % 2 == 0 else 503), {"error": {"message": "busy, retry"}}
            n = body["n"] if self.max_choices is None else min(body["n"], self.max_choices)
            texts = generate_texts(self.model, self.processor, [prompt], [image], n=n,
                                   temperature=body.get("temperature", 1.0), top_p=body.get("top_p", 1.0),
                                   max_new_tokens=body["max_tokens"], seed=body.get("seed", 0),
                                   progress=False)[0]
        choices = [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "length"}
                   for i, t in enumerate(texts)]
        return 200, {"id": "cmpl-test", "object": "chat.completion", "model": body["model"],
                     "choices": choices,
                     "usage": {"completion_tokens": n * body["max_tokens"], "prompt_tokens": 0}}
