"""`sicog sample --backend openai` against a real HTTP server on loopback serving the tiny model."""

from __future__ import annotations

import logging
import socket

import pytest

from sicog.cli import main
from sicog.stages.sampling.openai_backend import ChatClient, RequestError, chat_url
from sicog.stages.sampling.runner import summary_path
from tests.stages._openai_server import ChatServer
from tests.stages._sampling import one_torch_thread, read_jsonl, write_records  # noqa: F401

SECRET = "sk-test-5ecret-never-logged"


def _args(data, out, base, *extra):
    return ["sample", "--backend", "openai", "--api-base", base, "--model", "tiny", "--data", str(data),
            "--image-folder", str(data.parent), "--out", str(out), "--mode", "cot", "--n", "3",
            "--temperature", "1.0", "--max-new-tokens", "4", "--retry-delay", "0.001",
            "--concurrency", "3", "--no-progress", *extra]


def test_openai_backend_end_to_end_with_retries_top_up_and_key(tmp_path, tiny, monkeypatch, caplog, capsys):
    data = write_records(tmp_path, 4, sizes=[(40, 30)])
    out = tmp_path / "out.jsonl"
    monkeypatch.setenv("SICOG_TEST_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    with ChatServer(*tiny, api_key=SECRET, fail_first=2, max_choices=2) as server:
        rc = main(["-v", *_args(data, out, server.base, "--api-key-env", "SICOG_TEST_KEY",
                                "--corruption", "none,mirror_rotate")])
    err = capsys.readouterr().err
    assert rc == 0, err[-2000:]
    recs = read_jsonl(out)
    assert [r["id"] for r in recs] == [f"r{i}{s}" for i in range(4) for s in ("", "#mirror_rotate")]
    assert all(len(r["candidates"]) == 3 for r in recs)
    assert all(r["meta"]["backend"] == "openai" and r["meta"]["model"] == "tiny" for r in recs)
    # short answers (2 of 3 choices) were topped up by a second request (n=1) per item, and every
    # request was refused twice (429, then 503) before it was served: 8 items x 2 requests x 2
    assert server.failures == 8 * 2 * 2
    assert len(server.requests) == 8 * 2 * 3
    assert sorted({r["n"] for r in server.requests}) == [1, 3]
    # images arrive as data URLs; the mirrored+rotated copy is the corrupted image (30x40)
    sizes = [r["image_size"] for r in server.requests]
    assert sizes.count((40, 30)) > 0 and sizes.count((30, 40)) > 0
    assert set(server.auth_headers) == {f"Bearer {SECRET}"}
    # the key is never logged nor written
    # (main() routes logging to stderr, which capsys holds)
    logged = caplog.text + err + out.read_text() + summary_path(out).read_text()
    assert "retry 1/6" in err and "Bearer" not in logged and SECRET not in logged


def test_rejected_request_is_an_error_and_leaves_no_output(tmp_path, tiny, monkeypatch, capsys):
    data = write_records(tmp_path, 2)
    out = tmp_path / "out.jsonl"
    monkeypatch.setenv("WRONG_KEY", "sk-wrong-key-value")
    with ChatServer(*tiny, api_key=SECRET) as server:
        rc = main(_args(data, out, server.base, "--api-key-env", "WRONG_KEY"))
    err = capsys.readouterr().err
    assert rc == 2 and "HTTP 401" in err and "sk-wrong-key-value" not in err
    assert not out.exists()


def test_unreachable_server_is_retried_then_reported():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ChatClient(f"http://127.0.0.1:{port}/v1", None, timeout=5, max_retries=2, retry_delay=0.001)
    with pytest.raises(RequestError, match="giving up after 3 attempts: cannot reach"):
        client.post({"model": "x", "messages": []})
    assert chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"


def test_an_endpoint_that_echoes_the_key_never_gets_it_into_an_error():
    key = "sk-wrong-key-0123456789"
    with ChatServer(None, None, api_key="the-right-key-0000") as server:
        client = ChatClient(server.base, key, timeout=10, max_retries=0)
        with pytest.raises(RequestError) as err:
            client.post({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert "HTTP 401" in str(err.value) and "***" in str(err.value) and key not in str(err.value)
