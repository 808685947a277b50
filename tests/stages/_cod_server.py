"""A loopback OpenAI-compatible server that plays a vision annotator, with injectable faults.

POST /v1/chat/completions answers a valid Chain-of-Description naming the item (read from the
request's "Earlier description: caption of <id>" text), after `delay` seconds. `faults` maps an
item id to the answers of its successive tries, e.g. ["429", "500", "ok"]; the last entry repeats.
Kinds: ok, 429 (with Retry-After: `retry_after`), 500, 400, timeout (sleeps `hang` seconds
before answering), malformed (a body that is not JSON), stepless (an answer without step
headers), inline (`cod_answer`'s steps written on their header lines, as real models often do),
bare (the five headers with nothing under steps 1-4: not a CoD), echo-key (a 400 whose message quotes the Authorization header, as some servers do).
`log` holds (item id, kind) of every request, in arrival order.
"""

from __future__ import annotations

import json
import re
import time

from sicog.data.formats import COD_STEP_HEADERS, format_cod
from tests.stages._loopback import LoopbackServer

_ITEM = re.compile(r"Earlier description: caption of (\S+)")


def cod_answer(item_id: str) -> str:
    """The server's valid answer for an item (tests compare outputs against it)."""
    return format_cod([f"Salient {item_id}.", f"Details {item_id}.", f"Relations {item_id}.",
                       f"Margins {item_id}.", f"Description of {item_id}."])


def inline_answer(item_id: str) -> str:
    """`cod_answer`'s five steps the way GPT-4o / Qwen2-VL behind vLLM often lay them out: the text
    on the header line, after a bold header, after the full title, or on the line below a short title."""
    return "\n".join([f"Step 1: Salient {item_id}.", f"**Step 2:** Details {item_id}.",
                      f"{COD_STEP_HEADERS[2]} Relations {item_id}.", f"Step 4: Examine marginal content\n"
                      f"Margins {item_id}.", f"Step 5: Description of {item_id}."])


BARE_ANSWER = "Step 1:\n\nStep 2:\n\nStep 3:\n\nStep 4:\n\nStep 5:\nx"


class CodServer(LoopbackServer):
    """The annotator on 127.0.0.1:<free port> (a context manager)."""

    def __init__(self, delay: float = 0.0, faults: dict[str, list[str]] | None = None,
                 retry_after: str = "0.01", hang: float = 2.0, api_key: str | None = None):
        self.delay, self.faults, self.retry_after, self.hang = delay, dict(faults or {}), retry_after, hang
        self.api_key = api_key
        self.log: list[tuple[str, str]] = []
        self.bodies: list[dict] = []
        self.auth: list[str | None] = []  # the Authorization header of every request
        super().__init__()

    def requests_for(self, item_id: str) -> int:
        with self.lock:
            return sum(1 for i, _ in self.log if i == item_id)

    def respond(self, path: str, body: dict, auth: str | None) -> tuple[int, bytes, dict]:
        text = next(p["text"] for p in body["messages"][-1]["content"] if p["type"] == "text")
        item = _ITEM.search(text).group(1)
        with self.lock:
            self.bodies.append(body)
            self.auth.append(auth)
            tries = sum(1 for i, _ in self.log if i == item)
            plan = self.faults.get(item, ["ok"])
            kind = plan[min(tries, len(plan) - 1)]
            if self.api_key and auth != f"Bearer {self.api_key}":
                kind = "401"
            self.log.append((item, kind))
        time.sleep(self.delay)
        error = {"error": {"message": "injected", "type": "server_error"}}
        if kind == "401":
            return 401, json.dumps({"error": {"message": "invalid key"}}).encode(), {}
        if kind == "429":
            return 429, json.dumps(error).encode(), {"Retry-After": self.retry_after}
        if kind in ("500", "400"):
            return int(kind), json.dumps(error).encode(), {}
        if kind == "echo-key":
            return 400, json.dumps({"error": {"message": f"bad request from {auth}"}}).encode(), {}
        if kind == "timeout":
            time.sleep(self.hang)
        if kind == "malformed":
            return 200, b'{"choices": [{"message": ', {}
        content = {"stepless": "I looked at the image and it is nice.", "inline": inline_answer(item),
                   "bare": BARE_ANSWER}.get(kind) or cod_answer(item)
        answer = {"id": "cmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                  "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": content}}],
                  "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}}
        return 200, json.dumps(answer).encode(), {}
