"""`sicog evaluate` with a `benchmarks:` list of several types: each asked as VLMEvalKit asks it,
scored by sicog.eval.scores, in its own folder, reused when its settings are unchanged."""

from __future__ import annotations

import json

import pytest

from sicog.eval.cli import evaluate_checkpoint
from sicog.eval.config import EvaluateConfig
from sicog.eval.scores.registry import score_file
from tests.eval._judge_server import JudgeServer
from tests.eval._vlmeval_tables import make_tables
from tests.eval._world import benchmark_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return benchmark_world(tmp_path_factory.mktemp("world"), seed=3, n_images=4)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    return make_tables(tmp_path_factory.mktemp("tables"), n=12,
                       names=["POPE", "DocVQA_VAL", "MMBench_DEV_EN", "MMVet"])


class Replay:
    """Answers each (prompt, image) with the reply the made-up prediction table holds for that row
    (prompts built as the list builds them; anything else, e.g. the world's questions: "A")."""

    def __init__(self, tables):
        import base64
        import io

        from PIL import Image

        from sicog.eval.benchmark_list import prompt_of
        from sicog.eval.scores.registry import kind_of
        from sicog.eval.scores.table import read_table

        self.calls = []
        self.replies = {}
        for name, (tsv, _) in tables.items():
            rows = {r.index: r for r in read_table(tsv, ("index",))}
            preds = {r.index: r["prediction"] for r in read_table(tsv.with_name(f"{name}_pred.tsv"))}
            cells = {i: r.cells.pop("image") for i, r in rows.items()}
            for index, r in rows.items():
                cell = cells[index] if len(cells[index]) > 64 else cells[cells[index]]
                pixels = Image.open(io.BytesIO(base64.b64decode(cell))).convert("RGB").tobytes()
                self.replies[(prompt_of(r, kind_of(name), name, "direct"), pixels)] = preds[index]

    def __call__(self, pairs):
        self.calls.append([p for p, _ in pairs])
        return [self.replies.get((p, im.convert("RGB").tobytes()), "A") for p, im in pairs]


def test_list_of_types_is_scored_like_the_prediction_tables(world, tables, tmp_path):
    replay = Replay(tables)
    with JudgeServer() as server:
        cfg = EvaluateConfig(model="unused", benchmark=f"world:{world}", out=str(tmp_path / "ev"), progress=False,
                             captions="off", benchmarks={n: str(t[0]) for n, t in tables.items() if n != "MMBench_DEV_EN"},
                             judge={"base_url": server.base_url, "model": "stub", "api_key_env": ""})
        summary = evaluate_checkpoint(cfg, predict=replay)
        b = summary["benchmarks"]
        assert set(b) == {"POPE", "DocVQA_VAL", "MMVet"}
        assert b["POPE"]["headline"] == "Overall/F1" and b["DocVQA_VAL"]["kind"] == "vqa/anls"
        for name in ("POPE", "DocVQA_VAL"):   # the same replies as the prediction table: the same figures
            assert b[name]["value"] == pytest.approx(score_file(tables[name][1], name).value)
        folder = tmp_path / "ev" / "benchmarks" / "DocVQA_VAL"
        assert (folder / "predictions.tsv").is_file() and (folder / "scores.json").is_file()
        asked = [p for call in replay.calls for p in call]
        assert any(p.endswith("Answer the question using a single word or phrase.") for p in asked)
        # a longer list: only the new benchmark is asked (the others' folders are reused)
        replay.calls.clear()
        cfg.benchmarks["MMBench_DEV_EN"] = str(tables["MMBench_DEV_EN"][0])
        cfg.overwrite = True
        summary = evaluate_checkpoint(cfg, predict=replay)
    asked = [p for call in replay.calls for p in call]
    assert summary["benchmarks"]["MMBench_DEV_EN"]["kind"] == "mcq/circular"
    assert not any("Is there a" in p for p in asked)        # POPE was not asked again
    assert any("Options:" in p for p in asked)
    scores = json.loads((tmp_path / "ev" / "benchmarks" / "MMBench_DEV_EN" / "scores.json").read_text())
    assert scores["items"] and scores["paired"] is True


def test_judged_benchmark_without_judge_is_refused(world, tables, tmp_path):
    from sicog.utils.io import SicogError

    cfg = EvaluateConfig(model="unused", benchmark=f"world:{world}", out=str(tmp_path / "ev"), progress=False,
                         captions="off", benchmarks={"MMVet": str(tables["MMVet"][0])})
    with pytest.raises(SicogError, match="needs an LLM judge"):
        evaluate_checkpoint(cfg, predict=Replay(tables))


def test_report_tables_of_scores_and_paired_differences(world, tables, tmp_path):
    from sicog.pipeline.report.collect import arm_result
    from sicog.pipeline.report.compare import benchmark_comparisons
    from sicog.pipeline.report.markdown import render_markdown

    names = ("POPE", "DocVQA_VAL", "MMBench_DEV_EN")
    dirs = {}
    for arm, predict in (("base", lambda pairs: ["Yes"] * len(pairs)), ("sicog", Replay(tables))):
        cfg = EvaluateConfig(model="unused", benchmark=f"world:{world}", out=str(tmp_path / arm), progress=False,
                             captions="off", benchmarks={n: str(tables[n][0]) for n in names})
        evaluate_checkpoint(cfg, predict=predict)
        dirs[arm] = str(tmp_path / arm)
    comps = benchmark_comparisons(dirs, pairs=(("sicog", "base"),), n_boot=200)
    by = {c["benchmark"]: c for c in comps}
    assert set(by) == set(names)
    assert by["POPE"]["method"] == "bootstrap" and by["DocVQA_VAL"]["method"] == "paired"
    for c in comps:
        assert c["ci95"][0] <= c["difference"] <= c["ci95"][1] or c["ci95"][0] == c["ci95"][1]
    arms = {arm: arm_result("ckpt", d, tmp_path) for arm, d in dirs.items()}
    md = render_markdown({"arms": arms, "benchmark_comparisons": comps, "rounds": [], "steps": []}, "t")
    assert "### Benchmarks (scored as VLMEvalKit scores them)" in md
    assert "| sicog − base | POPE |" in md and "bootstrap" in md and "paired" in md

    # benchmarks/demo_seeds.py: the list over seeds (here the same run twice), pooled where paired
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "demo_seeds", Path(__file__).resolve().parents[2] / "benchmarks" / "demo_seeds.py")
    demo_seeds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo_seeds)
    report = {"arms": {arm: {**a, "evaluation": arm} for arm, a in arms.items()}, "benchmark_comparisons": comps}
    bl = demo_seeds.benchmark_list({0: report, 1: report}, {0: tmp_path, 1: tmp_path})
    assert bl["names"] == sorted(names)
    d = bl["differences"]["sicog-base DocVQA_VAL"]
    assert d["pooled"]["difference"] == pytest.approx(by["DocVQA_VAL"]["difference"])
    assert bl["differences"]["sicog-base POPE"]["pooled"] is None   # F1: no pooled item mean
