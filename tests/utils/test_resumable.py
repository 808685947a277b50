"""The resumable output protocol shared by sample, curate, pairs and annotate: settings of parts,
finished outputs, --overwrite, waiting for ranks, the order of one run, and a folder whose parts
are a journal that stays (the commands' own tests run it for real)."""

from __future__ import annotations

import json

import pytest

from sicog.utils import resumable
from sicog.utils.io import SicogError, write_json
from sicog.utils.shards import PartWriter, parts_dir, read_completed


def test_parts_are_continued_with_the_same_settings_only(tmp_path):
    out = tmp_path / "o.jsonl"
    resumable.check_parts(out, {"n": 6, "data": "abc"}, write=False)
    assert not parts_dir(out).exists()  # nothing recorded without write
    resumable.check_parts(out, {"n": 6, "data": "abc"}, write=True)
    resumable.check_parts(out, {"n": 6, "data": "abc"}, write=True)  # same settings: fine
    with pytest.raises(SicogError, match=r"other settings \(n: earlier 6, now 4\).*pass --overwrite"):
        resumable.check_parts(out, {"n": 4, "data": "abc"}, write=False)


def test_rank_zero_stops_waiting_when_another_rank_failed(tmp_path):
    out = tmp_path / "o.jsonl"
    parts_dir(out).mkdir()
    (parts_dir(out) / "rank-1.failed").write_text("ImageLoadError: x.jsonl:3: record 'a': image not found\n")
    with pytest.raises(SicogError, match="rank 1 failed: ImageLoadError: x.jsonl:3"):
        resumable.wait_for_ranks(out, 2, lambda: True, timeout=30, started=0.0)
    # a stale marker from an earlier run is ignored (then: timeout)
    with pytest.raises(SicogError, match="timed out"):
        resumable.wait_for_ranks(out, 2, lambda: True, timeout=0.0, started=4e9)
    for r in range(2):
        (parts_dir(out) / f"rank-{r}.finished").touch()
    with pytest.raises(SicogError, match="timed out"):  # every rank done, but the parts miss an item
        resumable.wait_for_ranks(out, 2, lambda: False, timeout=0.0, started=4e9)
    resumable.wait_for_ranks(out, 2, lambda: True, timeout=0.0, started=4e9)


def test_finished_output_of_the_same_settings_is_nothing_to_do(tmp_path):
    out = tmp_path / "o.jsonl"
    assert resumable.finished(out, {"n": 6}, overwrite=False) is None  # nothing yet
    out.write_text("{}\n")
    write_json(resumable.summary_path(out), {"settings": {"n": 6}, "items": 1})
    assert resumable.finished(out, {"n": 6}, overwrite=False) == {"settings": {"n": 6}, "items": 1}
    with pytest.raises(SicogError, match=r"o\.jsonl was made with other settings \(n: earlier 6, now 4\)"):
        resumable.finished(out, {"n": 4}, overwrite=False)
    assert resumable.finished(out, {"n": 4}, overwrite=True) is None
    resumable.summary_path(out).unlink()
    with pytest.raises(SicogError, match="does not record the settings that made it"):
        resumable.finished(out, {"n": 6}, overwrite=False)


def test_clear_removes_other_settings_and_what_they_made_only(tmp_path):
    out, made, mine = tmp_path / "o.jsonl", tmp_path / "report.json", tmp_path / "notes.txt"
    out.write_text("{}\n")
    made.write_text("{}")
    mine.write_text("mine")
    write_json(resumable.summary_path(out), {"settings": {"n": 6}, "made": str(made)})
    resumable.check_parts(out, {"n": 4}, write=True)  # parts of the settings the rerun asks for
    with PartWriter(out, 0) as w:
        w.write({"id": "a"})
    resumable.clear(out, {"n": 4}, lambda old: [old.get("made")])
    assert not out.exists() and not resumable.summary_path(out).exists() and not made.exists()
    assert mine.exists() and set(read_completed(out)) == {"a"}  # same-settings parts are continued
    resumable.clear(out, {"n": 5})
    assert not parts_dir(out).exists()  # parts of other settings go


def _journal_folder(out):
    """A folder like `sicog annotate`'s: run.json and summary.json inside, a journal that stays."""
    return resumable.Layout(out=out, summary=out / "summary.json", parts=parts_dir(out / "journal"),
                            run_file=out / "run.json", outputs=(out / "made.jsonl", out / "summary.json"),
                            journal=True)


def test_a_journal_stays_once_finished_and_other_settings_are_refused_or_cleared(tmp_path):
    out = tmp_path / "out"
    files = _journal_folder(out)
    resumable.check_parts(files, {"n": 6}, write=True)
    assert json.loads((out / "run.json").read_text()) == {"n": 6}
    with PartWriter(out / "journal", 0) as w:
        w.write({"id": "a"})
    assert resumable.finished(files, {"n": 6}, overwrite=False) is None  # a journal, no summary: work to do
    with pytest.raises(SicogError, match=r"out: unfinished parts of a run with other settings \(n: earlier 6, now 4\)"
                                         r".*delete .*out to start over"):
        resumable.check_parts(files, {"n": 4}, write=True)
    (out / "made.jsonl").write_text("{}\n")
    write_json(out / "summary.json", {"settings": {"n": 6}})
    assert resumable.finished(files, {"n": 6}, overwrite=False) == {"settings": {"n": 6}}  # the journal stays
    with pytest.raises(SicogError, match=r"out was made with other settings \(n: earlier 6, now 4\)"):
        resumable.finished(files, {"n": 4}, overwrite=False)
    resumable.clear(files, {"n": 6})  # the same settings: the outputs go, the journal is continued
    assert not (out / "made.jsonl").exists() and read_completed(out / "journal")
    resumable.clear(files, {"n": 4})
    assert sorted(p.name for p in out.iterdir()) == []


def test_a_journal_or_outputs_without_settings_are_an_unknown_runs(tmp_path):
    out = tmp_path / "out"
    files = _journal_folder(out)
    out.mkdir()
    (out / "made.jsonl").write_text("{}\n")
    with pytest.raises(SicogError, match=r"out holds files of an unknown run \(made\.jsonl\) and no .*run\.json"):
        resumable.check_parts(files, {"n": 6}, write=True)
    resumable.clear(files, {"n": 6})  # --overwrite
    resumable.check_parts(files, {"n": 6}, write=True)
    (out / "run.json").write_text("{not json")
    with pytest.raises(SicogError, match=r"a run with an unreadable .*run\.json"):
        resumable.check_parts(files, {"n": 6}, write=True)


def test_one_process_run_merges_and_a_failure_leaves_no_empty_parts(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    out = tmp_path / "o.jsonl"
    kw = dict(overwrite=False, wait_timeout=1.0, clear_old=lambda: None, covered=lambda: True)

    def boom(rank, world):
        raise RuntimeError("model failed to load")

    with pytest.raises(RuntimeError, match="model failed to load"):
        resumable.run_sharded(out, {"n": 1}, work=boom, merge=lambda world: None, **kw)
    assert not parts_dir(out).exists()  # nothing finished: nothing left behind

    def work(rank, world):
        with PartWriter(out, rank) as w:
            w.write({"id": "a"})
        resumable.finish_rank(out, rank, {"rank": rank, "items": 1})

    def merge(world):
        assert json.loads((parts_dir(out) / "run.json").read_text()) == {"n": 1}
        return {"done": sorted(read_completed(out)), "per_rank": resumable.rank_stats(out, world)}

    assert resumable.run_sharded(out, {"n": 1}, work=work, merge=merge, **kw) == {
        "done": ["a"], "per_rank": [{"rank": 0, "items": 1}]}
