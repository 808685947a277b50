"""`sicog sample` on bad input: exit 2, the place named, nothing written, inputs unchanged
(tests/reliability/_harness.py); then a finished output that knows its settings, one writer per
--out, and image paths that must stay inside --image-folder (also for the openai backend).

Every case starts from a valid job (records in {tmp}/inputs/, the tiny checkpoint copied to
{tmp}/model) and changes one thing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from sicog.stages.sampling.runner import summary_path
from sicog.utils.shards import parts_dir
from tests.stages._openai_server import ChatServer
from tests.stages._sampling import QUESTION, one_torch_thread, read_jsonl, write_records  # noqa: F401

from ._harness import ROOT, BadInput, assert_clean_failure, run_main, run_sicog, with_flags

JOB = ["sample", "--model", "{tmp}/model", "--data", "{tmp}/inputs/data.jsonl", "--image-folder", "{tmp}/inputs",
       "--out", "{tmp}/out.jsonl", "--mode", "cot", "--n", "1", "--max-new-tokens", "2", "--no-progress"]
OUT = ["out.jsonl", "out.jsonl.parts", "out.jsonl.summary.json", "out.jsonl.lock"]
SECRET_SIZE = (17, 13)  # the image outside the folder: no request may ever carry an image of this size


def job(**changes: str) -> list[str]:
    """JOB with flags replaced or added."""
    return with_flags(JOB, **changes)


def rec(i: int, image: str | None = "img/0.png", question: str = QUESTION) -> str:
    r = {"id": f"r{i}", "conversations": [{"from": "human", "value": question}]}
    if image is not None:
        r["image"] = image
    return json.dumps(r, ensure_ascii=False)


CASES = [
    BadInput("data_not_utf8", job(data="{tmp}/inputs/latin1.jsonl"), r"latin1\.jsonl:2: not UTF-8 text", OUT),
    BadInput("json_list_not_utf8", job(data="{tmp}/inputs/latin1.json"), r"latin1\.json:3: not UTF-8 text", OUT),
    BadInput("two_image_placeholders", job(data="{tmp}/inputs/two.jsonl"),
             r"two\.jsonl:2: key 'conversations\[0\]\.value': a second <image> placeholder", OUT),
    BadInput("no_records", job(data="{tmp}/inputs/empty.jsonl"), r"empty\.jsonl: no records", OUT),
    BadInput("data_is_a_folder", job(data="{tmp}/inputs/img"), r"inputs/img: is a folder", OUT),
    BadInput("temperature_negative", job(temperature="-1"), r"--temperature \(temperature\): must be >= 0, got -1", OUT),
    BadInput("top_k_negative", job(top_k="-2"), r"--top-k \(top_k\): must be >= 0, got -2", OUT),
    BadInput("corrupt_model", job(model="{tmp}/badmodel"),
             r"corrupt weights file .*badmodel/model\.safetensors \(SafetensorError", OUT),
    BadInput("out_is_the_data", job(out="{tmp}/inputs/data.jsonl"),
             r"--out \(.*inputs/data\.jsonl\) is --data \(.*inputs/data\.jsonl\)"),
    BadInput("out_inside_the_image_folder", job(out="{tmp}/inputs/img/out.jsonl"),
             r"--out \(.*inputs/img/out\.jsonl\) is inside --image-folder \(.*/inputs\)", ["inputs/img/out.jsonl"]),
    BadInput("out_contains_the_data", job(out="{tmp}/inputs"), r"--out \(.*/inputs\) contains --data"),
    BadInput("out_inside_the_model", job(out="{tmp}/model/c.jsonl"), r"--out \(.*model/c\.jsonl\) is inside --model",
             ["model/c.jsonl"]),
    BadInput("out_under_a_file", job(out="{tmp}/afile/out.jsonl"), r"--out .*afile/out\.jsonl: cannot be written: "
             r".*afile is a file"),
    BadInput("out_is_a_folder", job(out="{tmp}/adir"), r"--out .*adir: is a folder; expected the path of a file"),
    BadInput("image_dotdot_escape", job(data="{tmp}/inputs/dotdot.jsonl"),
             r"dotdot\.jsonl:2: record 'r1': key 'image': .*\.\./secret\.png resolves to .*secret\.png, outside the "
             r"image folder .*inputs", OUT),
    BadInput("image_absolute_path", job(data="{tmp}/inputs/absolute.jsonl"),
             r"absolute\.jsonl:2: record 'r1': key 'image': '/.*secret\.png' is an absolute path", OUT),
    BadInput("image_symlink_outside", job(data="{tmp}/inputs/link.jsonl"),
             r"link\.jsonl:2: record 'r1': key 'image': .*img/link\.png resolves to .*secret\.png, outside", OUT),
]


def _inputs(tmp: Path, ckpt: Path) -> None:
    """The valid job's inputs plus every bad file the cases point at."""
    data = write_records(tmp, 2)
    d = data.parent
    Image.new("RGB", SECRET_SIZE, (9, 9, 9)).save(tmp / "secret.png")
    (d / "img" / "link.png").symlink_to(tmp / "secret.png")
    (d / "latin1.jsonl").write_bytes((rec(0) + "\n" + rec(1, question="caf\xe9?")).encode("latin-1") + b"\n")
    (d / "latin1.json").write_bytes(("[\n" + rec(0) + ",\n" + rec(1, question="\xe0 la") + "\n]").encode("latin-1"))
    (d / "two.jsonl").write_text(rec(0) + "\n" + rec(1, question="<image>\n<image>\nWhich?") + "\n")
    (d / "empty.jsonl").write_text("\n")
    (d / "dotdot.jsonl").write_text(rec(0) + "\n" + rec(1, image="img/../../secret.png") + "\n")
    (d / "absolute.jsonl").write_text(rec(0) + "\n" + rec(1, image=str(tmp / "secret.png")) + "\n")
    (d / "link.jsonl").write_text(rec(0) + "\n" + rec(1, image="img/link.png") + "\n")
    shutil.copytree(ckpt, tmp / "model")
    shutil.copytree(ckpt, tmp / "badmodel")
    weights = tmp / "badmodel" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (tmp / "afile").write_text("a file, not a folder\n")
    (tmp / "adir").mkdir()


@pytest.fixture
def tmp(tmp_path, tiny_ckpt) -> Path:
    _inputs(tmp_path, Path(tiny_ckpt))
    return tmp_path


def test_the_control_job_passes(tmp):
    res = run_sicog(JOB, tmp)
    assert res.returncode == 0, res.stderr[-3000:]
    assert [r["id"] for r in read_jsonl(tmp / "out.jsonl")] == ["r0", "r1"]
    assert not (tmp / "out.jsonl.lock").exists() and not parts_dir(tmp / "out.jsonl").exists()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_sample_input_fails_cleanly(case, tmp):
    assert_clean_failure(case, tmp)


_main = run_main


def test_a_finished_output_knows_its_settings(tmp, capsys):
    out = tmp / "out.jsonl"
    assert _main(tmp, capsys, *JOB)[0] == 0
    settings = json.loads(summary_path(out).read_text())["settings"]
    assert settings["n"] == 1 and settings["mode"] == "cot" and len(settings["data"]) == 16
    assert set(settings["model_files"]) >= {"config.json", "model.safetensors"}
    first = out.read_bytes()
    rc, err = _main(tmp, capsys, *JOB)  # the same settings: nothing to do, said so
    assert rc == 0 and "finished with these settings: nothing to do" in err and out.read_bytes() == first
    for changes, diff in [({"n": "2"}, "n: earlier 1, now 2"), ({"mode": "direct"}, "mode: earlier 'cot', now 'direct'"),
                          ({"model": "{tmp}/model2"}, r"model: earlier '.*/model', now '.*/model2'"),
                          ({"data": "{tmp}/inputs/link.jsonl"}, "data: earlier '")]:
        if "model" in changes:
            shutil.copytree(tmp / "model", tmp / "model2")
        rc, err = _main(tmp, capsys, *job(**changes))
        assert rc == 2, err
        assert re.search(rf"{out} was made with other settings \(.*{diff}.*\); pass --overwrite", err), err
        assert out.read_bytes() == first and not parts_dir(out).exists()
    with open(tmp / "inputs" / "data.jsonl", "a") as fh:  # the same path, other content
        fh.write(rec(2, image="img/1.png") + "\n")
    rc, err = _main(tmp, capsys, *JOB)
    assert rc == 2 and "data: earlier '" in err and out.read_bytes() == first
    rc, err = _main(tmp, capsys, *job(n="2"), "--overwrite")
    assert rc == 0, err
    assert [(r["id"], len(r["candidates"])) for r in read_jsonl(out)] == [("r0", 2), ("r1", 2), ("r2", 2)]
    assert json.loads(summary_path(out).read_text())["settings"]["n"] == 2
    mine = tmp / "mine.jsonl"  # a file sample did not write is never taken for a finished output
    mine.write_text("my notes\n")
    rc, err = _main(tmp, capsys, *job(out=str(mine)))
    assert rc == 2 and "does not record the settings that made it" in err and mine.read_text() == "my notes\n"


def test_a_second_run_on_the_same_out_fails_at_once_naming_the_lock(tmp):
    """The first run is slow (many long generations); the second must exit 2 within seconds."""
    many = tmp / "inputs" / "many.jsonl"
    many.write_text("".join(rec(i, image=f"img/{i % 2}.png") + "\n" for i in range(60)))
    argv = [a.replace("{tmp}", str(tmp)) for a in job(data=str(many), max_new_tokens="64", batch_size="1")]
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    first = subprocess.Popen([sys.executable, "-m", "sicog", *argv], cwd=tmp, env={**os.environ, **env},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock, part = tmp / "out.jsonl.lock", parts_dir(tmp / "out.jsonl") / "rank-0.jsonl"
    try:
        deadline = time.monotonic() + 120
        while not (lock.exists() and lock.read_text().strip() == str(first.pid) and part.exists()):
            assert first.poll() is None, first.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "the first run never took the lock and started writing"
            time.sleep(0.05)
        t0 = time.monotonic()
        second = run_sicog(argv, tmp, env)
        elapsed = time.monotonic() - t0
        assert first.poll() is None, "the first run must still be writing"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        first.stderr.close()
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"out.jsonl is being written by pid {first.pid} (lock {lock})" in second.stderr
    # "at once" without a timed assertion (load-dependent): it refused while the first was still
    # writing (above) and before it loaded any model
    assert "loaded" not in second.stderr and "Loading weights" not in second.stderr, second.stderr[-2000:]
    print(f"second writer refused after {elapsed:.2f}s")
    # the killed run's lock died with it; its parts (other settings) give way to --overwrite
    assert parts_dir(tmp / "out.jsonl").is_dir()
    res = run_sicog([*JOB, "--overwrite"], tmp, env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert [r["id"] for r in read_jsonl(tmp / "out.jsonl")] == ["r0", "r1"]


def _openai_job(tmp: Path, base: str, data: str, *extra: str) -> list[str]:
    return ["sample", "--backend", "openai", "--api-base", base, "--model", "tiny", "--data", str(data),
            "--image-folder", str(tmp / "inputs"), "--out", str(tmp / "oa.jsonl"), "--mode", "cot", "--n", "1",
            "--max-new-tokens", "2", "--retry-delay", "0.001", "--no-progress", *extra]


def test_the_openai_backend_never_receives_an_image_outside_the_folder(tmp, tiny, capsys):
    escapes = tmp / "inputs" / "escapes.jsonl"
    escapes.write_text("\n".join([rec(0), rec(1, image="img/../../secret.png"), rec(2, image=str(tmp / "secret.png")),
                                  rec(3, image="img/link.png")]) + "\n")
    with ChatServer(*tiny) as server:
        rc, err = _main(tmp, capsys, *_openai_job(tmp, server.base, escapes))
        assert rc == 2 and "escapes.jsonl:2: record 'r1': key 'image'" in err
        assert server.requests == [] and not (tmp / "oa.jsonl").exists()
        rc, err = _main(tmp, capsys, *_openai_job(tmp, server.base, escapes, "--on-error", "skip"))
        assert rc == 0, err
        assert [r["image_size"] for r in server.requests] == [(40, 30)]  # r0 only
        summary = json.loads(summary_path(tmp / "oa.jsonl").read_text())
        assert summary["skipped"] == 3 and all("outside the image folder" in s["reason"] or "absolute" in s["reason"]
                                               for s in summary["skipped_items"])
        # the flag lets them through: the same server then receives the outside image (the control)
        rc, err = _main(tmp, capsys, *_openai_job(tmp, server.base, escapes, "--allow-images-outside-folder",
                                                  "--overwrite"))
        assert rc == 0, err
        assert [r["image_size"] for r in server.requests].count(SECRET_SIZE) == 3


def test_the_backend_itself_refuses_an_escaping_item(tmp, tiny):
    """Even an item that skipped the runner's check is never read or sent by run_openai."""
    from sicog.stages.sampling.config import SampleConfig
    from sicog.stages.sampling.items import SampleItem
    from sicog.stages.sampling.openai_backend import run_openai

    item = SampleItem(id="x", key=0, record_index=0, source_id="x", where="d.jsonl:1", prompt="q?", mode="cot",
                      image="img/link.png", corruption=None)
    skipped, emitted = [], []

    class Progress:
        def start(self):
            pass

        def __call__(self, *a):
            pass

    with ChatServer(*tiny) as server:
        cfg = SampleConfig(model="tiny", data="d", out="o", mode="cot", n=1, max_new_tokens=2, backend="openai",
                           api_base=server.base, image_folder=str(tmp / "inputs"), on_error="skip")
        run_openai(cfg, [item], set(), lambda it, c: emitted.append(it.id), lambda it, why: skipped.append(why),
                   Progress())
    assert emitted == [] and server.requests == [] and "outside the image folder" in skipped[0]
