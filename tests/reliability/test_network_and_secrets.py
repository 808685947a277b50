"""Network reads and secrets: `--request-timeout` is the deadline of the whole request (a server
dripping a byte a second cannot hold `annotate` or `sample --backend openai` longer); Retry-After
in both forms; any configured key (whatever its length) and a password in a URL never reach a
file, a log or an error, even when the server echoes them inside an answer.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from sicog.utils.retry import parse_retry_after
from tests.stages._annotation import annotate_argv, write_caption_records
from tests.stages._cod_server import CodServer, cod_answer

from ._harness import run_sicog


class DripServer:
    """Answers every request with headers, then one byte a second of a body it never finishes."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.base_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.stop = threading.Event()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(60)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length")), 0)
            while len(body) < length:
                body += conn.recv(65536)
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n")
                while not self.stop.is_set():
                    conn.sendall(b" ")
                    time.sleep(1.0)
            except OSError:
                return

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.sock.close()


def _sample_argv(tmp: Path, base: str, *extra: str) -> list[str]:
    data, folder = write_caption_records(tmp, 2)
    return ["sample", "--backend", "openai", "--api-base", base, "--model", "tiny", "--data", str(data),
            "--image-folder", str(folder), "--out", str(tmp / "out.jsonl"), "--mode", "cot", "--n", "1",
            "--max-new-tokens", "4", "--retry-delay", "0.01", "--no-progress", *extra]


# name: (argv builder(tmp, base), the most seconds it may take (start-up included; without the
# deadline the 4000-byte body takes over an hour), what stderr must show)
DRIP_CASES = {
    "annotate": (lambda tmp, base: annotate_argv(*write_caption_records(tmp, 2), tmp / "out", base, "--max-retries",
                                                 "0", "--request-timeout", "2"), 40, r"failed"),
    "sample_openai": (lambda tmp, base: _sample_argv(tmp, base, "--max-retries", "0", "--request-timeout", "2"), 40,
                      r"no complete answer from .* within 2 s"),
}


@pytest.mark.parametrize("case", sorted(DRIP_CASES))
def test_request_timeout_is_a_deadline(tmp_path, case):
    argv, limit, shown = DRIP_CASES[case]
    import re

    with DripServer() as server:
        t0 = time.monotonic()
        res = run_sicog(argv(tmp_path, server.base_url), tmp_path, timeout=120)
        took = time.monotonic() - t0
    assert took < limit, f"{case}: {took:.0f} s with --request-timeout 2"
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert re.search(shown, res.stderr), res.stderr[-3000:]


def _http_date(seconds_from_now: float) -> str:
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return email.utils.format_datetime(when, usegmt=True)


RETRY_AFTER = {
    "seconds": ({"Retry-After": "7"}, 7.0),
    "milliseconds": ({"retry-after-ms": "1500"}, 1.5),
    "http_date": ({"Retry-After": lambda: _http_date(30)}, 30.0),
    "http_date_past": ({"Retry-After": lambda: _http_date(-30)}, 0.0),
    "garbage": ({"Retry-After": "soon"}, None),
}


@pytest.mark.parametrize("case", sorted(RETRY_AFTER))
def test_retry_after_in_both_forms(case):
    headers, want = RETRY_AFTER[case]
    headers = {k.lower(): v() if callable(v) else v for k, v in headers.items()}
    got = parse_retry_after(headers)
    assert (got is None) if want is None else abs(got - want) < 2.0, (case, got)


class EchoServer(CodServer):
    """An annotator whose answer quotes the Authorization header it got, and the URL it was sent to."""

    def respond(self, path, body, auth):
        code, data, headers = super().respond(path, body, auth)
        if code == 200:
            answer = json.loads(data)
            item = answer["choices"][0]["message"]["content"].split("Description of ")[-1].rstrip(".")
            answer["choices"][0]["message"]["content"] = cod_answer(item).replace(
                "Salient", f"Salient (you sent {auth}, basic {self.basic})")
            data = json.dumps(answer).encode()
        return code, data, headers

    basic = ""


# name: (the key, whether the base URL carries user:password, the secrets that must appear nowhere)
SECRET_CASES = {
    "short_key": ("k3y", False, ["k3y"]),
    "long_key": ("sk-" + "x" * 40, False, ["sk-" + "x" * 40]),
    "url_password": ("sk-" + "y" * 40, True, ["sk-" + "y" * 40, "Pa55word", "YWxpY2U6UGE1NXdvcmQ="]),
}


def _files_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("case", sorted(SECRET_CASES))
def test_an_echoed_secret_is_redacted_everywhere(tmp_path, case):
    key, in_url, secrets = SECRET_CASES[case]
    data, folder = write_caption_records(tmp_path, 2)
    with EchoServer() as server:
        base = server.base_url.replace("http://", "http://alice:Pa55word@") if in_url else server.base_url
        res = run_sicog(["-v", *annotate_argv(data, folder, tmp_path / "out", base, "--api-key-env", "SICOG_KEY")],
                        tmp_path, env={"SICOG_KEY": key})
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "out" / "cod.jsonl").read_text().count("Salient (you sent ") == 2
    text = _files_text(tmp_path / "out") + res.stderr + res.stdout
    for secret in secrets:
        assert secret not in text, f"{case}: {secret!r} written"


def test_sample_summary_masks_a_url_password(tmp_path):
    """The openai backend's summary records its config: the password of --api-base is masked."""
    from sicog.utils.secrets import mask_secrets, redact

    assert redact("http://bob:s3cr3t@host:8000/v1 and https://x:y@z") == "http://bob:***@host:8000/v1 and https://x:***@z"
    assert mask_secrets({"api_base": "http://bob:s3cr3t@h/v1"}) == {"api_base": "http://bob:***@h/v1"}
