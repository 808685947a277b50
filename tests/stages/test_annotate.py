"""`sicog annotate cod` against a loopback server that injects every kind of failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sicog.cli import main
from sicog.config_flags import parse_config
from sicog.data.formats import COD_STEP_HEADERS, format_cod, parse_cod
from sicog.stages.annotation.client import retry_after_seconds
from sicog.stages.annotation.config import AnnotateConfig
from sicog.stages.annotation.prompt import InvalidAnswer, parse_answer
from sicog.stages.annotation.runner import run_annotation
from tests.stages._annotation import annotate_argv, read_jsonl, write_caption_records
from tests.stages._cod_server import BARE_ANSWER, CodServer, cod_answer, inline_answer

REPO = Path(__file__).resolve().parents[2]
FAULTS = {
    "item-0": ["429", "429", "ok"],        # Retry-After honoured, then success
    "item-1": ["500", "ok"],
    "item-2": ["timeout", "ok"],
    "item-3": ["malformed", "ok"],
    "item-4": ["stepless", "ok"],
    "item-5": ["500"],                      # always: fails after 1 + 3 tries
    "item-6": ["stepless"],                 # never a CoD: fails after 1 + 3 tries
    "item-7": ["400"],                      # a 4xx other than 408/409/429: no retry
}


def test_every_item_ends_in_the_output_or_the_failures_file_exactly_once(tmp_path):
    data, folder = write_caption_records(tmp_path, 12, missing=(8,))
    out = tmp_path / "out"
    with CodServer(faults=FAULTS) as server:
        assert main(annotate_argv(data, folder, out, server.base_url, "--concurrency", "4",
                                  "--price-per-1k-input", "2.5", "--price-per-1k-output", "10")) == 0
        tries = {f"item-{k}": server.requests_for(f"item-{k}") for k in range(12)}
    cod, dd, failures = (read_jsonl(out / n) for n in ("cod.jsonl", "dd.jsonl", "failures.jsonl"))
    ok_ids = [r["id"] for r in cod]
    failed_ids = [r["id"] for r in failures]
    assert ok_ids == [f"item-{k}" for k in (0, 1, 2, 3, 4, 9, 10, 11)]  # input order, each once
    assert failed_ids == ["item-5", "item-6", "item-7", "item-8"]
    assert [r["id"] for r in dd] == [i + "-dd" for i in ok_ids]
    assert tries == {"item-0": 3, "item-1": 2, "item-2": 2, "item-3": 2, "item-4": 2, "item-5": 4, "item-6": 4,
                     "item-7": 1, "item-8": 0, "item-9": 1, "item-10": 1, "item-11": 1}
    errors = {r["id"]: r["error"] for r in failures}
    assert errors["item-5"].startswith("HTTP 500") and errors["item-7"].startswith("HTTP 400")
    assert errors["item-6"].startswith("InvalidAnswer") and "image not found" in errors["item-8"]
    assert cod[0] == {"id": "item-0", "image": "images/0.png", "conversations": [
        {"from": "human", "value": "<image>\nDescribe this picture. Describe the image step by step."},
        {"from": "gpt", "value": cod_answer("item-0")}]}
    assert dd[0]["conversations"] == [{"from": "human", "value": "<image>\nDescribe this picture."},
                                      {"from": "gpt", "value": "Description of item-0."}]
    summary = json.loads((out / "summary.json").read_text())
    answered = 8 + 1 + 4  # 200 answers with a body: 8 successes + item-4's stepless + item-6's four
    assert (summary["annotated"], summary["failed"]) == (8, 4)
    assert summary["usage"]["prompt_tokens"] == 100 * answered
    assert summary["usage"]["completion_tokens"] == 50 * answered
    assert summary["usage"]["answered_requests"] == answered
    assert summary["this_run"]["requests_sent"] == sum(tries.values())
    assert summary["cost"] == pytest.approx((100 * 2.5 + 50 * 10) * answered / 1000)
    assert summary["failures_by_kind"] == {"HTTP 500": 1, "InvalidAnswer": 1, "HTTP 400": 1, "DataError": 1}


def test_a_rerun_does_nothing_and_other_settings_are_refused(tmp_path, capsys):
    data, folder = write_caption_records(tmp_path, 3)
    out = tmp_path / "out"
    with CodServer() as server:
        assert main(annotate_argv(data, folder, out, server.base_url)) == 0
        assert main(annotate_argv(data, folder, out, server.base_url)) == 0
        assert len(server.log) == 3
        assert main(annotate_argv(data, folder, out, server.base_url, "--temperature", "0.7")) == 2
        assert "temperature: earlier 0.2, now 0.7" in capsys.readouterr().err
        assert main(annotate_argv(data, folder, out, server.base_url, "--temperature", "0.7", "--overwrite")) == 0
        assert len(server.log) == 6


def test_retry_failures_asks_only_for_the_failed_items(tmp_path):
    data, folder = write_caption_records(tmp_path, 4)
    out = tmp_path / "out"
    with CodServer(faults={"item-2": ["500", "500", "500", "500", "ok"]}) as server:
        assert main(annotate_argv(data, folder, out, server.base_url)) == 0
        assert [r["id"] for r in read_jsonl(out / "failures.jsonl")] == ["item-2"]
        assert main(annotate_argv(data, folder, out, server.base_url, "--retry-failures")) == 0
        assert [i for i, _ in server.log[-1:]] == ["item-2"] and len(server.log) == 3 + 5
    assert [r["id"] for r in read_jsonl(out / "cod.jsonl")] == ["item-0", "item-1", "item-2", "item-3"]
    assert read_jsonl(out / "failures.jsonl") == []


def test_the_summary_sums_every_paid_try_after_retry_failures(tmp_path):
    data, folder = write_caption_records(tmp_path, 4)
    out = tmp_path / "out"
    prices = ("--price-per-1k-input", "2.5", "--price-per-1k-output", "10")
    with CodServer(faults={"item-2": ["stepless"] * 4 + ["ok"]}) as server:
        assert main(annotate_argv(data, folder, out, server.base_url, *prices)) == 0
        assert main(annotate_argv(data, folder, out, server.base_url, "--retry-failures", *prices)) == 0
    journal = read_jsonl(out / "journal.parts" / "rank-0.jsonl")
    assert len(journal) == 5  # item-2 twice: its 4 paid invalid answers, then its success
    paid = {k: sum(e["usage"][k] for e in journal) for k in ("prompt_tokens", "completion_tokens",
                                                               "answered_requests")}
    assert paid == {"prompt_tokens": 800, "completion_tokens": 400, "answered_requests": 8}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["usage"] == paid
    assert summary["cost"] == pytest.approx((800 * 2.5 + 400 * 10) / 1000)
    assert (summary["annotated"], summary["failed"]) == (4, 0)


def test_a_refused_key_stops_the_run(tmp_path, capsys, monkeypatch):
    data, folder = write_caption_records(tmp_path, 5)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with CodServer(api_key="right-key-123456") as server:
        assert main(annotate_argv(data, folder, tmp_path / "out", server.base_url, "--concurrency", "1")) == 2
        assert len(server.log) == 1
    assert "HTTP 401" in capsys.readouterr().err


def test_identical_4xx_in_a_row_stop_the_run_with_the_servers_message(tmp_path, capsys):
    data, folder = write_caption_records(tmp_path, 25)
    text_only = {f"item-{k}": ["400"] for k in range(25)}  # e.g. a text-only model refusing every image
    with CodServer(faults=text_only) as server:
        assert main(annotate_argv(data, folder, tmp_path / "out", server.base_url, "--concurrency", "1")) == 2
        assert len(server.log) == 20  # the default: 20 in a row, each asked once (a 400 is not retried)
    err = capsys.readouterr().err
    assert "20 requests in a row were refused with the same answer" in err and "injected" in err
    assert "--stop-after-identical-4xx" in err
    assert len(read_jsonl(tmp_path / "out" / "journal.parts" / "rank-0.jsonl")) == 20  # kept for a rerun

    # a success between two refusals starts the count again; a missing image is no answer at all
    data, folder = write_caption_records(tmp_path / "b", 8, missing=(3,))
    faults = {f"item-{k}": ["400"] for k in (0, 2, 4, 5, 6, 7)}
    with CodServer(faults=faults) as server:
        assert main(annotate_argv(data, folder, tmp_path / "b" / "out", server.base_url, "--concurrency", "1",
                                  "--stop-after-identical-4xx", "3")) == 2
        assert [i for i, _ in server.log] == ["item-0", "item-1", "item-2", "item-4", "item-5"]  # 2, (3), 4, 5
    # 0 never stops
    with CodServer(faults=faults) as server:
        assert main(annotate_argv(data, folder, tmp_path / "c" / "out", server.base_url, "--concurrency", "1",
                                  "--stop-after-identical-4xx", "0")) == 0
    assert main(annotate_argv(data, folder, tmp_path / "d", "http://127.0.0.1:9/v1",
                              "--stop-after-identical-4xx", "-1")) == 2
    assert "--stop-after-identical-4xx (stop_after_identical_4xx): must be >= 0, got -1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["annotate", "cod", "--help"])
    assert "--stop-after-identical-4xx" in capsys.readouterr().out


def test_dry_run_estimates_without_calling_or_writing(tmp_path, capsys):
    data, folder = write_caption_records(tmp_path, 4)
    with CodServer() as server:
        assert main(annotate_argv(data, folder, tmp_path / "out", server.base_url, "--dry-run",
                                  "--price-per-1k-input", "1", "--max-tokens", "100")) == 0
        assert server.log == []
    printed = capsys.readouterr().out
    assert "4 request(s) for 4 item(s)" in printed and "at most 400 output tokens" in printed
    assert not (tmp_path / "out").exists()


def test_dry_run_counts_only_the_items_it_could_send(tmp_path, capsys):
    data, folder = write_caption_records(tmp_path, 5, missing=(1,))
    (folder / "images" / "3.png").write_bytes(b"not an image")
    with CodServer() as server:
        estimate = run_annotation(parse_config(AnnotateConfig, annotate_argv(
            data, folder, tmp_path / "out", server.base_url, "--dry-run", "--max-tokens", "100")[2:]))
        assert server.log == []
    printed = capsys.readouterr().out
    assert "3 request(s) for 5 item(s)" in printed and "at most 300 output tokens" in printed
    assert "2 item(s) not sendable (image not found: 1, image unreadable: 1)" in printed
    assert (estimate["requests"], estimate["not_sendable"]) == (3, {"image not found": 1, "image unreadable": 1})
    assert estimate["not_sendable_examples"]["image not found"].endswith("captions.jsonl:2")


def test_the_key_appears_in_no_output_log_or_saved_config(tmp_path):
    key = "sk-test-4f9c2b7e1d8a6053"
    data, folder = write_caption_records(tmp_path, 4)
    out = tmp_path / "out"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "VLM_CREDENTIAL": key}  # not a secret-looking name: only
    # the registration of what --api-key-env names can keep it out
    with CodServer(faults={"item-1": ["echo-key"], "item-2": ["500", "ok"]}) as server:
        proc = subprocess.run([sys.executable, "-m", "sicog", "-v", *annotate_argv(
            data, folder, out, server.base_url, "--api-key-env", "VLM_CREDENTIAL")],
            env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert set(server.auth) == {f"Bearer {key}"}  # read from the variable --api-key-env names
    assert key not in json.dumps(server.bodies)  # and sent in the header only
    assert "bad request from Bearer ***" in (out / "failures.jsonl").read_text()
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".png"]
    assert {p.name for p in files} >= {"cod.jsonl", "dd.jsonl", "failures.jsonl", "summary.json", "run.json"}
    for text in [proc.stdout, proc.stderr] + [p.read_text(errors="replace") for p in files]:
        assert key not in text


def test_answers_are_checked_for_the_five_steps_in_order():
    bodies = ["a", "b", "c", "d", "the description"]
    bold = "\n".join(f"**Step {k}: whatever**\n{b}" for k, b in enumerate(bodies, 1))
    assert parse_answer(bold) == (format_cod(bodies), "the description")
    assert parse_answer(format_cod(bodies))[0].startswith(COD_STEP_HEADERS[0])
    for bad, why in ((format_cod(bodies).replace("Step 3:", "Step 4:", 1), "in order"),
                     ("\n".join(f"Step {k}: x\nbody" for k in (1, 2, 3, 4)), "in order"),
                     (format_cod(bodies[:4] + [" "]), "step 5"), ("", "empty")):
        with pytest.raises(InvalidAnswer, match=why):
            parse_answer(bad)


def test_steps_written_on_their_header_lines_are_kept_and_not_asked_again(tmp_path):
    data, folder = write_caption_records(tmp_path, 4)
    out = tmp_path / "out"
    faults = {"item-0": ["inline"], "item-1": ["inline"], "item-2": ["bare"], "item-3": ["bare", "inline"]}
    with CodServer(faults=faults) as server:
        assert main(annotate_argv(data, folder, out, server.base_url)) == 0
        tries = {f"item-{k}": server.requests_for(f"item-{k}") for k in range(4)}
    assert tries == {"item-0": 1, "item-1": 1, "item-2": 4, "item-3": 2}  # no paid retry for a good answer
    cod = {r["id"]: r["conversations"][1]["value"] for r in read_jsonl(out / "cod.jsonl")}
    assert cod == {i: cod_answer(i) for i in ("item-0", "item-1", "item-3")}  # every step's text, canonical
    assert all(parse_cod(text) for text in cod.values())
    assert [r["id"] for r in read_jsonl(out / "failures.jsonl")] == ["item-2"]  # bare headers: not a CoD
    assert "steps 1, 2, 3, 4 empty" in read_jsonl(out / "failures.jsonl")[0]["error"]
    dd = {r["id"]: r["conversations"][1]["value"] for r in read_jsonl(out / "dd.jsonl")}
    assert dd["item-0-dd"] == "Description of item-0."


def test_the_annotator_and_parse_cod_read_answers_alike():
    answers = [inline_answer("x"), BARE_ANSWER, cod_answer("x"), "Step 1: a\nStep 2: b", "",
               "\n".join(f"Step {k}: {k}" for k in (1, 2, 3, 4, 5, 5)), "\n".join(COD_STEP_HEADERS)]
    for text in answers:
        try:
            got = parse_answer(text)
        except InvalidAnswer:
            got = None
        assert (got is None) == (parse_cod(text) is None), text
        if got is not None:
            assert got == (format_cod(parse_cod(text)), parse_cod(text)[-1])


def test_retry_after_is_read_in_seconds_and_milliseconds():
    class Response:
        def __init__(self, headers):
            self.headers = headers

    class Exc(Exception):
        def __init__(self, headers):
            self.response = Response(headers)

    assert retry_after_seconds(Exc({"retry-after": "3"})) == 3.0
    assert retry_after_seconds(Exc({"retry-after-ms": "250"})) == 0.25
    assert retry_after_seconds(Exc({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0  # a date past
    assert retry_after_seconds(Exc({"retry-after": "soon"})) is None
    assert retry_after_seconds(ValueError()) is None


def test_out_is_claimed_apart_from_the_inputs_and_by_one_writer(tmp_path, capsys):
    from sicog.utils.lock import output_lock

    data, folder = write_caption_records(tmp_path, 2)
    assert main(annotate_argv(data, folder, folder / "out", "http://127.0.0.1:9/v1")) == 2
    assert "is inside --image-folder" in capsys.readouterr().err
    out = tmp_path / "out"
    with output_lock(out):
        assert main(annotate_argv(data, folder, out, "http://127.0.0.1:9/v1")) == 2
    assert "is being written by pid" in capsys.readouterr().err


def test_caption_records_in_both_layouts(tmp_path):
    from sicog.data.records import DataError
    from sicog.stages.annotation.items import read_items

    src = tmp_path / "captions.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"id": "flat", "image": "a.jpg", "question": "What is shown?", "caption": "A cat."},
        {"id": 7, "image": "b.jpg", "caption": "Overrides the turn.", "conversations": [
            {"from": "human", "value": "Describe.\n<image>"}, {"from": "gpt", "value": "A dog."}]},
    ]) + "\n")
    items = read_items(src)
    assert [(i.id, i.question, i.caption) for i in items] == [
        ("flat", "What is shown?", "A cat."), ("7", "Describe.", "Overrides the turn.")]
    for bad, message in (({"id": "x", "question": "Q", "caption": "C"}, ":1: key 'image'"),
                         ({"id": "x", "image": "a.jpg", "question": "Q"}, ":1: key 'caption'")):
        src.write_text(json.dumps(bad) + "\n")
        with pytest.raises(DataError, match=message):
            read_items(src)
    src.write_text(json.dumps({"id": "x", "image": "a", "question": "Q", "caption": "C"}) + "\n"
                   + json.dumps({"id": "x", "image": "b", "question": "Q", "caption": "C"}) + "\n")
    with pytest.raises(DataError, match=":2: key 'id': 'x' repeats"):
        read_items(src)
