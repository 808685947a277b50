"""`sicog pairs`: pairs from curated records and corrupted-image candidates, skips counted, the
held-out split, reruns, bad input."""

import json

import pytest

from sicog.cli import main as sicog_main
from sicog.stages.pairs import PairsConfig, build_pairs
from sicog.utils.io import SicogError


def _curated(i, chosen, rejected):
    return {"id": f"q{i}", "image": f"images/{i}.png", "mode": "cot", "rejected": rejected,
            "conversations": [{"from": "human", "value": f"<image>\nQuestion {i}? Think step by step."},
                              {"from": "gpt", "value": chosen}]}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def inputs(tmp_path):
    curated = [_curated(i, f"Step 1: right {i}. The answer is A.", f"Step 1: wrong {i}. The answer is B.")
               for i in range(40)]
    curated += [_curated(40, "Same. The answer is A.", "Same. The answer is A."),  # identical
                _curated(41, "Only one. The answer is A.", None),  # curation found no rejected
                _curated(42, "Fine. The answer is A.", "   ")]  # empty rejected
    candidates = [{"id": f"q{i}#mask", "image": f"images/{i}.png", "prompt": f"Question {i}?", "mode": "cot",
                   "corruption": "mask", "candidates": [f"Blurry guess {i}. The answer is C.", ""]}
                  for i in range(40)]
    candidates += [{"id": "q0", "prompt": "Question 0?", "corruption": None, "candidates": ["clean"]},
                   {"id": "q99#gaussian_blur", "prompt": "?", "corruption": "gaussian_blur", "candidates": ["x"]},
                   {"id": "q1#color_jitter", "prompt": "?", "corruption": "color_jitter",
                    "candidates": ["Step 1: right 1. The answer is A.", " "]}]  # = chosen, and empty
    return {"curated": _write(tmp_path / "curated.jsonl", curated),
            "corrupted": _write(tmp_path / "cands.jsonl", candidates),
            "out": str(tmp_path / "pairs" / "train.jsonl"), "heldout_out": str(tmp_path / "pairs" / "heldout.jsonl")}


def _read(path):
    return [json.loads(line) for line in open(path)]


def test_pairs_from_both_sources_with_skips_and_split(inputs):
    stats = build_pairs(PairsConfig(**inputs, heldout_fraction=0.25))
    train, heldout = _read(inputs["out"]), _read(inputs["heldout_out"])
    assert stats["train_pairs"] == len(train) and stats["heldout_pairs"] == len(heldout)
    assert len(train) + len(heldout) == 80  # 40 curated + 40 corrupted
    assert stats["skipped"] == {"corrupted/clean_item": 1, "corrupted/identical": 1,
                                "corrupted/no_curated_record": 1, "curated/empty": 1,
                                "curated/identical": 1, "curated/no_rejected": 1}
    # a record's pairs stay on one side of the split
    held_ids = {p["id"].split("#")[0] for p in heldout}
    assert held_ids and not held_ids & {p["id"].split("#")[0] for p in train}
    corrupted = next(p for p in train + heldout if p["id"] == "q3#mask")
    assert corrupted == {"id": "q3#mask", "image": "images/3.png", "prompt": "Question 3? Think step by step.",
                         "chosen": "Step 1: right 3. The answer is A.", "rejected": "Blurry guess 3. The answer is C.",
                         "source": "corrupted", "corruption": "mask", "mode": "cot"}
    assert all(p["chosen"] != p["rejected"] and p["rejected"].strip() for p in train + heldout)


def test_rerun_budget_and_other_settings(inputs, tmp_path):
    build_pairs(PairsConfig(**inputs, heldout_fraction=0.25))
    first = open(inputs["out"]).read()
    assert build_pairs(PairsConfig(**inputs, heldout_fraction=0.25))["train_pairs"] > 0  # nothing to do
    assert open(inputs["out"]).read() == first
    with pytest.raises(SicogError, match="other settings"):
        build_pairs(PairsConfig(**inputs, heldout_fraction=0.25, max_pairs=10))
    stats = build_pairs(PairsConfig(**inputs, heldout_fraction=0.25, max_pairs=10, overwrite=True))
    assert stats["train_pairs"] == 10 and stats["skipped"]["over_budget"] > 0
    assert len(_read(inputs["out"])) == 10


def test_bad_curated_line_names_file_line_and_key(inputs, tmp_path, capsys):
    rows = open(inputs["curated"]).read().splitlines()
    rec = json.loads(rows[4])
    rec["rejected"] = 5
    rows[4] = json.dumps(rec)
    (tmp_path / "curated.jsonl").write_text("\n".join(rows) + "\n")
    argv = ["pairs", "--curated", inputs["curated"], "--out", inputs["out"], "--heldout-out", inputs["heldout_out"]]
    assert sicog_main(argv) == 2
    assert "curated.jsonl:5: key 'rejected': must be a string or null" in capsys.readouterr().err
    assert not (tmp_path / "pairs").exists()
