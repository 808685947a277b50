"""benchmarks/demo_seeds.py: aggregation of per-seed demo reports, with paired intervals."""

import importlib.util
from pathlib import Path

from sicog.utils.io import write_json, write_jsonl

_SPEC = importlib.util.spec_from_file_location(
    "demo_seeds", Path(__file__).resolve().parents[1] / "benchmarks" / "demo_seeds.py")
demo_seeds = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(demo_seeds)


def _seed_run(root: Path, hits: dict[str, list[int]]) -> dict:
    arms = {}
    for arm, h in hits.items():
        write_json(root / "eval" / arm / "summary.json", {"files": {"predictions": "mcq_predictions.jsonl"}})
        write_jsonl(root / "eval" / arm / "mcq_predictions.jsonl",
                    [{"index": i, "correct": bool(v)} for i, v in enumerate(h)])
        arms[arm] = {"evaluation": f"eval/{arm}", "benchmark": {"accuracy": sum(h) / len(h)}}
    return {"arms": arms, "comparisons": [], "wall_seconds": 1.0}


def test_aggregate_pools_paired_differences_over_seeds(tmp_path):
    reports, dirs = {}, {}
    for seed, gain in ((0, 20), (1, 40)):   # sicog right on `gain` more of 200 questions than base
        base = [0] * 200
        sicog = [1] * gain + [0] * (200 - gain)
        reports[seed] = _seed_run(tmp_path / f"seed{seed}", {"base": base, "sicog": sicog})
        dirs[seed] = tmp_path / f"seed{seed}"
    summary = demo_seeds.aggregate(reports, dirs)
    pooled = summary["paired"]["sicog-base"]["pooled"]
    assert abs(pooled["difference"] - 0.15) < 1e-12 and pooled["strata"] == 2
    assert 0.10 < pooled["ci95"][0] < 0.15 < pooled["ci95"][1] < 0.20
    assert abs(summary["differences"]["sicog-base accuracy"]["mean"] - 0.15) < 1e-12
    md = demo_seeds.render(summary, "tiny")
    assert "| sicog-base | +15.0 [+" in md
