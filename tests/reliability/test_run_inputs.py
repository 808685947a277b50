"""`sicog run` and `sicog demo` on bad input: exit 2 at plan time, the key at fault named, nothing
written, inputs unchanged (tests/reliability/_harness.py).

Every case starts from a valid smoke pipeline on a small world (the control below runs it and
succeeds) and changes one thing. Most run `--dry-run`, which must reject everything a real run
would reject later; a few run for real, to show that a failing plan writes nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ._harness import ROOT, BadInput, assert_clean_failure, run_sicog, snapshot

SMOKE = str(ROOT / "sicog" / "demo" / "presets" / "smoke.yaml")
BASE = ["run", SMOKE, "--set", "data.world={tmp}/world", "--set", "work_dir={tmp}/run"]
DRY = [*BASE, "--dry-run"]
DEMO = ["demo", "--preset", "smoke", "--out", "{tmp}/demo"]
UNSET = "SICOG_RELIABILITY_UNSET_VAR"
EMPTY = "SICOG_RELIABILITY_EMPTY_VAR"


def _dry(*sets: str) -> list[str]:
    return [*DRY, *(a for s in sets for a in ("--set", s))]


CASES = [
    BadInput("sampling_n_zero", _dry("sampling.captions.n=0"), r"key sampling\.captions\.n: must be >= 1, got 0"),
    BadInput("curation_threshold_above_one", _dry("curation.captions.threshold=2.0"),
             r"key curation\.captions\.threshold: .*\[-1, 1\]"),
    BadInput("keep_fraction_zero", _dry("curation.reasoning.keep_fraction=0"),
             r"key curation\.reasoning\.keep_fraction: must be in \(0, 1\], got 0"),
    BadInput("text_only_ratio_one", _dry("mixture.text_only_ratio=1.0"), r"mixture\.text_only_ratio: must be in \[0, 1\)"),
    BadInput("rounds_zero", _dry("rounds=0"), r"key rounds: must be in \[1, 20\], got 0"),
    BadInput("rounds_huge", _dry("rounds=100000"), r"key rounds: must be in \[1, 20\], got 100000"),
    BadInput("empty_env_var", _dry(f"data.alignment=${{{EMPTY}}}"),
             rf"data\.alignment: environment variable {EMPTY} is empty", env={EMPTY: ""}),
    BadInput("stage_config_not_utf8", _dry("stages.sft.config={tmp}/latin1.yaml"),
             r"latin1\.yaml:2: not UTF-8 text \(byte 0xe9 at byte offset 17\)"),
    BadInput("stage_config_duplicate_key", _dry("stages.sft.config={tmp}/dup.yaml"),
             r"dup\.yaml:3: key 'training' appears twice \(lines 1 and 3\)"),
    BadInput("pipeline_duplicate_key", ["run", "{tmp}/dup.yaml", "--dry-run"],
             r"dup\.yaml:3: key 'training' appears twice"),
    BadInput("unknown_arm", _dry("arms=[base, curated]"), r"key arms\[1\]: unknown arm .curated."),
    BadInput("train_max_steps_zero", _dry("stages.warmup_perception.set.training.max_steps=0"),
             r"stages\.warmup_perception.*training\.max_steps"),
    BadInput("evaluation_batch_size_zero", _dry("evaluation.batch_size=0"), r"key evaluation\.batch_size"),
    BadInput("unknown_key", _dry("curation.captions.treshold=0.5"), r"key curation\.captions\.treshold: unknown key"),
    BadInput("moved_key", _dry("evaluation.extra_args=[--batch-size, '8']"),
             r"key evaluation\.extra_args: this key was replaced"),
    BadInput("missing_data_file", _dry("data.alignment={tmp}/nowhere.jsonl"),
             r"data\.alignment: .*nowhere\.jsonl not found"),
    BadInput("world_file_missing", _dry("data.world={tmp}/broken_world"),
             r"data\.instructions: .*instructions\.jsonl not found \(listed in .*broken_world/manifest\.json\)"),
    BadInput("missing_env_var", _dry(f"data.alignment=${{{UNSET}}}"),
             rf"data\.alignment: environment variable {UNSET} is not set"),
    BadInput("missing_env_var_in_launcher_env", _dry(f"launcher.env={{OPENAI_API_KEY: '${{{UNSET}}}'}}"),
             rf"launcher\.env\.OPENAI_API_KEY: environment variable {UNSET} is not set"),
    BadInput("stage_config_missing", _dry("stages.sft.config={tmp}/sft_nowhere.yaml"),
             r"stages\.sft\.config: file not found: .*sft_nowhere\.yaml"),
    BadInput("launcher_no_process", _dry("launcher.nproc_per_node=0"), r"key launcher\.nproc_per_node: must be >= 1"),
    BadInput("launcher_bad_node_rank", _dry("launchers.train={nnodes: 2, node_rank: 2}"),
             r"key launchers\.train\.node_rank: must be in \[0, nnodes=2\)"),
    BadInput("work_dir_is_the_world", _dry("work_dir={tmp}/world"), r"work_dir \(.*/world\) is data\.world"),
    BadInput("work_dir_contains_the_world", _dry("work_dir={tmp}"), r"work_dir \(.*\) contains data\.world"),
    # real runs: the plan fails before anything is written
    BadInput("run_work_dir_inside_the_world", [*BASE, "--set", "work_dir={tmp}/world/run"],
             r"work_dir \(.*/world/run\) is inside data\.world", outputs=["world/run"]),
    BadInput("run_threshold_above_one", [*BASE, "--set", "curation.captions.threshold=2.0"],
             r"key curation\.captions\.threshold", outputs=["run"]),
    BadInput("demo_sampling_n_zero", [*DEMO, "--set", "sampling.captions.n=0"], r"key sampling\.captions\.n",
             outputs=["demo"]),
    BadInput("demo_work_dir_in_its_world", [*DEMO, "--set", "work_dir={tmp}/demo/world"],
             r"work_dir \(.*/demo/world\) is data\.world", outputs=["demo"]),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A small world written once; each case works on its own copy."""
    root = tmp_path_factory.mktemp("world_src")
    res = run_sicog(["world", "--out", "world", "--no-progress", "--image-size", "96", "--n-align", "6",
                     "--n-annotated", "4", "--n-reasoning", "4", "--n-instructions", "6", "--n-unlabeled-images", "4",
                     "--n-unlabeled-questions", "4", "--n-benchmark", "4"], root)
    assert res.returncode == 0, res.stderr[-2000:]
    return root / "world"


@pytest.fixture
def tmp(tmp_path, world, monkeypatch) -> Path:
    monkeypatch.delenv(UNSET, raising=False)
    shutil.copytree(world, tmp_path / "world")
    broken = tmp_path / "broken_world"
    shutil.copytree(world, broken)
    (broken / "instructions.jsonl").unlink()
    (tmp_path / "latin1.yaml").write_bytes(b"training:\n  # caf\xe9 au lait\n  max_steps: 2\n")
    (tmp_path / "dup.yaml").write_text("training:\n  max_steps: 2\ntraining:\n  max_steps: 3\n")
    return tmp_path


def test_the_control_dry_run_passes_and_writes_nothing(tmp):
    before = snapshot(tmp)
    res = run_sicog(DRY, tmp)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "r1/sample_captions" in res.stdout and "dry run: every step's config is valid" in res.stdout
    assert snapshot(tmp) == before and not (tmp / "run").exists()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_run_input_fails_cleanly(case, tmp):
    assert_clean_failure(case, tmp)
