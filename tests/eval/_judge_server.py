"""A loopback OpenAI-compatible judge for tests and the agreement benchmark: its answer is a
fixed function of the prompt text and the temperature, so two clients that send the same prompts
get the same verdicts, and a client that words a prompt differently gets other ones.

- MM-Vet grader prompts: a score 0.0-1.0 drawn from the prompt's hash; for some prompts the
  answer at temperature 0 is not a number, or out of range, so the retry protocol matters.
- MathVista extraction prompts: an "extracted answer" drawn from the reply in the prompt (the
  number or letter in it, or a decoy; never empty: VLMEvalKit retries an empty answer with
  multi-second sleeps).
- `fail_first`: the first N tries of every prompt answer 503 (then 429), to exercise retries.
"""

from __future__ import annotations

import hashlib
import re

from tests.stages._loopback import LoopbackServer


def _hash(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:12], 16)


def judge_answer(prompt: str, temperature: float) -> str:
    h = _hash(prompt)
    if "Compare the ground truth and prediction" in prompt:
        if temperature == 0 and h % 7 == 0:
            return "The prediction is mostly right."
        if temperature == 0 and h % 11 == 0:
            return "1.5"
        return f"{(h // 7) % 11 / 10:.1f}"
    if "Extracted answer:" in prompt:
        reply = prompt.rsplit("Model respone: ", 1)[-1].rsplit("Extracted answer:", 1)[0]
        numbers = re.findall(r"-?\d+(?:\.\d+)?", reply)
        options = ["(B) 8/11", "C", numbers[0] if numbers else "none", numbers[-1] if numbers else "7",
                   "[2007, 2008]", reply.strip()[:20]]
        return options[h % len(options)]
    return "Unknown"


class JudgeServer(LoopbackServer):
    """A context manager; `base_url` ends in /v1. `requests` counts chat requests."""

    def __init__(self, fail_first: int = 0):
        self.fail_first = fail_first
        self.requests = 0
        self._tries: dict[str, int] = {}
        self.prompts: list[str] = []
        super().__init__()

    def respond(self, path: str, body: dict, auth: str | None):
        if not path.endswith("/chat/completions"):
            return 404, {"error": {"message": f"no route {path}"}}, None
        content = body["messages"][-1]["content"]
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        temperature = float(body.get("temperature", 0) or 0)
        key = f"{temperature}|{content}"
        with self.lock:
            self.requests += 1
            self.prompts.append(content)
            tries = self._tries.get(key, 0)
            self._tries[key] = tries + 1
        if tries < self.fail_first:
            return (503 if tries % 2 == 0 else 429), {"error": {"message": "busy"}}, {"Retry-After": "0"}
        text = judge_answer(content, temperature)
        return 200, {"id": "judge", "object": "chat.completion", "model": body.get("model", "judge"),
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}, None
