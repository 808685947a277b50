"""`sicog curate` on bad input: exit 2, the place named, nothing written, inputs unchanged
(tests/reliability/_harness.py); then a finished output that knows its settings and a second
writer refused.

Every case starts from a valid job ({tmp}/in/cands.jsonl -> {tmp}/out/) and changes one thing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from sicog.data import formats
from sicog.stages.curation.outputs import summary_path
from sicog.utils.lock import output_lock
from sicog.utils.shards import parts_dir

from ._harness import BadInput, assert_clean_failure, run_main, run_sicog, with_flags

JOB = ["curate", "--candidates", "{tmp}/in/cands.jsonl", "--out", "{tmp}/out/curated.jsonl", "--task", "caption",
       "--report-dir", "{tmp}/out/report", "--threshold", "0.5",
       "--no-progress"]
OUT = ["out"]


def job(**changes: str) -> list[str]:
    """JOB with flags replaced or added."""
    return with_flags(JOB, **changes)


def cand(i: int, text: str = "A red circle on the left.") -> dict:
    steps = ["Shapes on grey.", "Flat colours.", "One object.", "Nothing else.", text]
    return {"id": f"c{i}", "image": f"{i}.png", "prompt": formats.COD_PROMPT, "mode": "cod",
            "candidates": [formats.format_cod(steps), formats.format_cod(steps[:4] + [text + " Really."])],
            "corruption": None, "meta": {}}


CASES = [
    BadInput("candidates_not_utf8", job(candidates="{tmp}/in/latin1.jsonl"), r"latin1\.jsonl:2: not UTF-8 text", OUT),
    BadInput("candidates_json_list_not_utf8", job(candidates="{tmp}/in/latin1.json"), r"latin1\.json:3: not UTF-8",
             OUT),
    BadInput("candidates_empty", job(candidates="{tmp}/in/empty.jsonl"),
             r"empty\.jsonl: no candidate records \(expected one JSON object per line", OUT),
    BadInput("candidates_is_a_folder", job(candidates="{tmp}/in"), r"in: is a folder", OUT),
    BadInput("threshold_not_a_number", job(threshold="nan"), r"--threshold \(threshold\): must be in \[-1, 1\], got nan", OUT),
    BadInput("threshold_and_keep_fraction", job(keep_fraction="0.5"),
             r"--threshold \(threshold\): 0\.5 given with --keep-fraction 0\.5: the two are exclusive", OUT),
    BadInput("keep_fraction_above_one", with_flags(JOB[:-3] + JOB[-1:], keep_fraction="1.5"),  # no --threshold
             r"--keep-fraction \(keep_fraction\): must be in \(0, 1\], got 1\.5", OUT),
    BadInput("pairs_out_is_sicog_pairs_now", job(pairs_out="{tmp}/out/pairs.jsonl"),
             r"unrecognized arguments: --pairs-out", OUT),
    BadInput("report_dir_is_the_summary", job(report_dir="{tmp}/out/curated.jsonl.summary.json"),
             r"--report-dir \(.*curated\.jsonl\.summary\.json\) is --out \(its summary\)", OUT),
    BadInput("report_dir_contains_out", job(report_dir="{tmp}/out"), r"--report-dir \(.*/out\) contains --out", OUT),
    BadInput("out_is_the_candidates", job(out="{tmp}/in/cands.jsonl"),
             r"--out \(.*in/cands\.jsonl\) is --candidates \(.*in/cands\.jsonl\)", OUT),
    BadInput("report_dir_contains_the_candidates", job(report_dir="{tmp}/in"),
             r"--report-dir \(.*/in\) contains --candidates \(.*in/cands\.jsonl\)", OUT),
    BadInput("out_inside_the_encoder", job(encoder="{tmp}/enc", out="{tmp}/enc/curated.jsonl"),
             r"--out \(.*enc/curated\.jsonl\) is inside --encoder \(.*/enc\)", ["enc/curated.jsonl", "out"]),
    BadInput("out_under_a_file", job(out="{tmp}/afile/curated.jsonl"),
             r"--out .*afile/curated\.jsonl: cannot be written: .*afile is a file", OUT),
    BadInput("report_dir_is_a_file", job(report_dir="{tmp}/afile"), r"--report-dir .*afile: is a file; expected a "
             r"folder", OUT),
]


@pytest.fixture
def tmp(tmp_path) -> Path:
    (tmp_path / "in").mkdir()
    good = [json.dumps(cand(i), ensure_ascii=False) for i in range(3)]
    (tmp_path / "in" / "cands.jsonl").write_text("\n".join(good) + "\n")
    bad = json.dumps(cand(9, "Un cercle \xe0 gauche."), ensure_ascii=False)
    (tmp_path / "in" / "latin1.jsonl").write_bytes((good[0] + "\n" + bad + "\n").encode("latin-1"))
    (tmp_path / "in" / "latin1.json").write_bytes(("[\n" + good[0] + ",\n" + bad + "\n]").encode("latin-1"))
    (tmp_path / "in" / "empty.jsonl").write_text("")
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "config.json").write_text('{"model_type": "bert"}')
    (tmp_path / "afile").write_text("a file, not a folder\n")
    return tmp_path


def test_the_control_job_passes(tmp):
    res = run_sicog(JOB, tmp)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp / "out" / "curated.jsonl").is_file() and (tmp / "out" / "report" / "stats.json").is_file()
    assert not (tmp / "out" / "curated.jsonl.lock").exists() and not parts_dir(tmp / "out" / "curated.jsonl").exists()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_curate_input_fails_cleanly(case, tmp):
    assert_clean_failure(case, tmp)


_main = run_main


def test_a_finished_curation_knows_its_settings(tmp, capsys):
    out = tmp / "out" / "curated.jsonl"
    rc, err = _main(tmp, capsys, *job(report_dir="{tmp}/out/rep1"))
    assert rc == 0, err
    summary = json.loads(summary_path(out).read_text())
    assert summary["settings"]["threshold"] == 0.5 and len(summary["settings"]["candidates"]) == 16
    assert summary["stats"]["items"] == 3
    files = {p: p.read_bytes() for p in (out, tmp / "out" / "rep1" / "stats.json")}
    rc, err = _main(tmp, capsys, *job(report_dir="{tmp}/out/rep1"))
    assert rc == 0 and "finished with these settings: nothing to do" in err
    assert all(p.read_bytes() == b for p, b in files.items())
    for changes, diff in [({"threshold": "0.6"}, "threshold: earlier 0.5, now 0.6"),
                          ({"seed": "3"}, "seed: earlier 0, now 3"),
                          ({"min_candidates": "3"}, "min_candidates: earlier 2, now 3"),
                          ({"report_dir": "{tmp}/out/rep2"}, r"report_dir: earlier '.*rep1', now '.*rep2'")]:
        rc, err = _main(tmp, capsys, *job(**{"report_dir": "{tmp}/out/rep1", **changes}))
        assert rc == 2 and re.search(rf"{out} was made with other settings \(.*{diff}.*\); pass --overwrite", err), err
        assert all(p.read_bytes() == b for p, b in files.items()) and not (tmp / "out" / "rep2").exists()
    with open(tmp / "in" / "cands.jsonl", "a") as fh:  # the same path, other content
        fh.write(json.dumps(cand(7)) + "\n")
    rc, err = _main(tmp, capsys, *job(report_dir="{tmp}/out/rep1"))
    assert rc == 2 and "candidates: earlier '" in err
    # --overwrite: the earlier report (named by its summary) goes, files the user added stay
    (tmp / "out" / "rep1" / "notes.txt").write_text("mine")
    rc, err = _main(tmp, capsys, *job(report_dir="{tmp}/out/rep2"), "--overwrite")
    assert rc == 0, err
    assert sorted(p.name for p in (tmp / "out" / "rep1").iterdir()) == ["notes.txt"]
    assert (tmp / "out" / "rep2" / "stats.json").is_file()
    assert json.loads(summary_path(out).read_text())["stats"]["items"] == 4


def test_a_second_writer_is_refused_while_one_holds_the_output(tmp):
    with output_lock(tmp / "out" / "curated.jsonl"):
        res = run_sicog(JOB, tmp)
        assert sorted(p.name for p in (tmp / "out").iterdir()) == ["curated.jsonl.lock"]  # nothing else written
    assert res.returncode == 2
    assert re.search(rf"curated\.jsonl is being written by pid {os.getpid()} \(lock .*curated\.jsonl\.lock\)",
                     res.stderr)


def test_a_second_writer_of_the_report_is_refused(tmp):
    """Every output is locked, not only --out: another run writing --report-dir stops this one."""
    with output_lock(tmp / "out" / "report"):
        res = run_sicog(JOB, tmp)
    assert res.returncode == 2
    assert re.search(rf"report is being written by pid {os.getpid()}", res.stderr), res.stderr[-2000:]
    assert not (tmp / "out" / "curated.jsonl").exists()
