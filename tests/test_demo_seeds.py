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


def test_seed_level_t_intervals_and_subtypes_beside_question_level(tmp_path):
    reports, dirs = {}, {}
    for seed, gain in ((0, 20), (1, 40), (2, 30)):   # differences 0.10, 0.20, 0.15: mean 0.15, s 0.05
        reports[seed] = _seed_run(tmp_path / f"seed{seed}", {"base": [0] * 200,
                                                            "sicog": [1] * gain + [0] * (200 - gain)})
        reports[seed]["comparisons"] = [{"arm": "sicog", "against": "base", "difference": gain / 200,
                                         "ci95": [gain / 200 - 0.03, gain / 200 + 0.03], "n": 200}]
        for arm, acc in (("base", 0.5), ("sicog", 0.5 + seed / 10)):
            reports[seed]["arms"][arm]["benchmark"]["per_subcategory"] = {"count_all": {"accuracy": acc, "n": 100}}
            reports[seed]["arms"][arm]["benchmark"]["per_subcategory_shuffled_images"] = {
                "count_all": {"accuracy": 0.25, "n": 100}}
        dirs[seed] = tmp_path / f"seed{seed}"
    summary = demo_seeds.aggregate(reports, dirs)
    half = 4.303 * 0.05 / 3 ** 0.5   # t_{0.975, 2}
    for t in (summary["differences"]["sicog-base accuracy"]["seeds_t"], summary["paired"]["sicog-base"]["seeds_t"]):
        assert t["df"] == 2 and abs(t["ci95"][0] - (0.15 - half)) < 1e-9 and abs(t["ci95"][1] - (0.15 + half)) < 1e-9
    # the seed-level interval is far wider than the question-level pooled one here
    pooled = summary["paired"]["sicog-base"]["pooled"]["ci95"]
    assert pooled[1] - pooled[0] < (2 * half) / 2
    assert summary["arms"]["base"]["accuracy"]["seeds_t"]["ci95"] == [0.0, 0.0]
    sub = summary["per_subcategory"]["sicog"]["count_all"]
    assert abs(sub["per_subcategory"]["mean"] - 0.6) < 1e-12 and sub["per_subcategory_shuffled_images"]["mean"] == 0.25
    md = demo_seeds.render(summary, "tiny")
    assert "| sicog-base accuracy | 15.0 ± 5.0 | [+2.6, +27.4] |" in md
    assert "| sicog-base | +15.0 [+" in md and "[+2.6, +27.4] | 0: +10.0" in md
    assert "| sicog | 60.0 ± 10.0 (25.0 ± 0.0) |" in md
