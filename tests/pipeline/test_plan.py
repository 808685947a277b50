"""Pipeline config and plan: validation, the paper's step order, fair arms, rounds, launchers, data steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sicog.config import ConfigError
from sicog.pipeline.actions import mixture_weights
from sicog.pipeline.cli import load_pipeline
from sicog.pipeline.config import LauncherConfig, PipelineConfig
from sicog.pipeline.data_steps import uncurated_records
from sicog.pipeline.launch import command_argv
from sicog.pipeline.plan import build_plan
from sicog.utils.io import SicogError

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "configs" / "pipeline"
PRESETS = ROOT / "sicog" / "demo" / "presets"


def _fake_world(tmp_path: Path) -> Path:
    """A folder with a world manifest (plans only read the manifest, no step runs here)."""
    world = tmp_path / "world"
    world.mkdir(parents=True)
    keys = ["alignment", "annotated_captions", "annotated_reasoning", "instructions", "unlabeled_images",
            "unlabeled_questions", "oracle_captions", "oracle_reasoning", "benchmark_captions", "scenes",
            "questions"]
    manifest = {k: f"{k}.jsonl" for k in keys} | {"benchmark": "benchmark.tsv", "seed": 0,
                                                  "scene_config": {"image_size": 64}}
    (world / "manifest.json").write_text(json.dumps(manifest))
    for name in manifest.values():
        if isinstance(name, str):
            (world / name).write_text("")  # a plan checks that every input exists
    return world


def _smoke(tmp_path: Path, *sets: str) -> PipelineConfig:
    world = _fake_world(tmp_path)
    return load_pipeline(str(PRESETS / "smoke.yaml"),
                         [f"work_dir={tmp_path / 'run'}", f"data.world={world}", *sets])


def test_demo_plan_follows_the_paper_and_arms_are_fair(tmp_path):
    planner = build_plan(_smoke(tmp_path), PRESETS)
    names = [s.name for s in planner.steps]
    order = ["standins", "align", "sft_base", "r1/warmup_perception", "r1/sample_captions",
             "r1/curate_captions", "r1/pretrain_sicog", "r1/sft_sicog", "r1/evaluate_sicog"]
    assert [n for n in names if n in order] == order
    for word in ("warmup", "sample", "curate", "align", "pretrain", "sft", "evaluate"):
        assert any(word in n for n in names), word
    steps = {s.name: s for s in planner.steps}
    # stage 1.5 restarts from the ORIGINAL LM + the stage-1 projector, not from the warmed-up models
    for arm in ("sicog", "uncurated", "oracle"):
        model = steps[f"r1/pretrain_{arm}"].params["train"]["model"]
        assert model["language_model"].endswith("standins/language_model")
        assert model["mm_projector"].endswith("align/mm_projector.safetensors")
        assert model["checkpoint"] is None
    # identical stage-2 data and settings for every arm (only the starting model and output differ)
    def sft_view(name):
        t = json.loads(json.dumps(steps[name].params["train"]))
        t["model"].pop("checkpoint"), t["model"].pop("mm_projector"), t["model"].pop("vision_tower")
        t["model"].pop("language_model"), t["training"].pop("output_dir")
        return t
    views = [sft_view(n) for n in ("sft_base", "r1/sft_sicog", "r1/sft_uncurated", "r1/sft_oracle")]
    assert all(v == views[0] for v in views)
    # identical stage-1.5 settings; the data is what differs
    pre = [steps[f"r1/pretrain_{a}"].params["train"] for a in ("sicog", "uncurated", "oracle")]
    assert len({json.dumps(p["training"] | {"output_dir": ""}, sort_keys=True) for p in pre}) == 1
    assert len({json.dumps(p["data"]["sources"]) for p in pre}) == 3
    # the warm-up starts from the base model (= the base arm)
    assert steps["r1/warmup_perception"].params["train"]["model"]["checkpoint"] == planner.arm_checkpoints[(0, "base")]


def test_rounds_continue_from_the_previous_sicog_model(tmp_path):
    planner = build_plan(_smoke(tmp_path, "rounds=2"), PRESETS)
    steps = {s.name: s for s in planner.steps}
    assert "r2/pretrain_sicog" in steps and "r2/pretrain_oracle" not in steps
    assert steps["r2/warmup_reasoning"].params["train"]["model"]["checkpoint"] == \
        steps["r1/sft_sicog"].outputs["checkpoint"]
    assert (2, "sicog") in planner.evaluations


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="stages.sft.bogus"):
        _smoke(tmp_path, "stages.sft.bogus=1")
    with pytest.raises(ConfigError, match="rounds"):
        build_plan(_smoke(tmp_path / "b", "rounds=0"))
    with pytest.raises(ConfigError, match="arms"):
        build_plan(_smoke(tmp_path / "c", "arms=[base, nonsense]"))
    bad = _smoke(tmp_path / "d", "stages.sft.set={training: {max_steps: many}}")
    with pytest.raises(Exception, match="stages.sft.*max_steps"):
        build_plan(bad, PIPELINES)


def _real_scale_inputs(root: Path) -> Path:
    """The models and data files qwen2_7b.yaml names by default (relative to the working folder), empty."""
    for folder in ("models/clip-vit-large-patch14-336", "models/Qwen2-7B-Instruct", "data/images"):
        (root / folder).mkdir(parents=True)
    for name in ("data/llava_pretrain/blip_laion_cc_sbu_558k.json", "data/sicog/cod_captions_35k.jsonl",
                 "data/sicog/structured_cot_35k.jsonl", "data/llava_v1_5_mix665k.json",
                 "data/sicog/unlabeled_images_118k.jsonl", "data/sicog/unlabeled_questions_64k.jsonl",
                 "data/text_only/text.jsonl", "data/eval/MMStar.tsv"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    return root


def test_real_scale_config_validates_and_dry_run_prints_the_plan(tmp_path, monkeypatch):
    inputs = _real_scale_inputs(tmp_path / "inputs")
    tmp_path = tmp_path / "work"
    tmp_path.mkdir()
    monkeypatch.chdir(inputs)
    cfg = load_pipeline(str(PIPELINES / "qwen2_7b.yaml"), [f"work_dir={tmp_path}"])
    planner = build_plan(cfg, PIPELINES)
    steps = {s.name: s for s in planner.steps}
    pre = steps["r1/pretrain_sicog"].params["train"]
    assert pre["training"]["learning_rate"] == pytest.approx(2e-5)
    assert pre["training"]["deepspeed"].endswith("zero2.json")
    sample = steps["r1/sample_captions"].params["sample"]
    assert (sample["n"], sample["temperature"], sample["top_p"], sample["max_new_tokens"]) == (6, 0.7, 0.9, 1200)
    assert sample["mode"] == "cod" and sample["model"].endswith("r1/warmup_perception/final")
    assert steps["r1/curate_captions"].params["curate"]["threshold"] == 0.9
    assert steps["r1/sample_captions"].describe.endswith("sample " + str(tmp_path / "r1/sample_captions/sample.yaml"))
    assert steps["evaluate_base"].params["evaluate"]["batch_size"] == 8
    assert "torchrun --nproc_per_node=8" in steps["r1/pretrain_sicog"].describe
    out = subprocess.run([sys.executable, "-m", "sicog", "run", str(PIPELINES / "qwen2_7b.yaml"), "--dry-run",
                          "--set", f"work_dir={tmp_path}"], capture_output=True, text=True, timeout=120,
                         cwd=inputs, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "r1/pretrain_sicog" in out.stdout and "torchrun" in out.stdout
    assert not any(tmp_path.iterdir()), "a dry run writes nothing"


def test_moved_and_pipeline_owned_keys_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="evaluation.extra_args: this key was replaced.*batch_size"):
        _smoke(tmp_path, "evaluation.extra_args=[--batch-size, '8']")
    with pytest.raises(ConfigError, match="sampling.captions.model: the pipeline sets it"):
        build_plan(_smoke(tmp_path / "a", "sampling.captions.model=x"), PRESETS)
    with pytest.raises(ConfigError, match="evaluation.prompt_style: must be one of direct, cot"):
        _smoke(tmp_path / "b", "evaluation.prompt_style=loud")


def test_dry_run_checks_every_step_config(tmp_path):
    """A setting a step would reject fails the plan, before anything runs."""
    with pytest.raises(Exception, match=r"key sampling\.captions\.n: must be >= 1, got 0"):
        build_plan(_smoke(tmp_path, "sampling.captions.n=0"), PRESETS)
    with pytest.raises(Exception, match=r"key evaluation\.batch_size: must be >= 1, got 0"):
        build_plan(_smoke(tmp_path / "a", "evaluation.batch_size=0"), PRESETS)


def test_launcher_argv():
    assert command_argv(LauncherConfig(), ["train", "x.yaml"])[1:] == ["-m", "sicog", "train", "x.yaml"]
    argv = command_argv(LauncherConfig(nproc_per_node=4, master_port=1234), ["sample"])
    assert argv[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node=4" in argv
    assert "--master_port=1234" in argv and argv[-3:] == ["-m", "sicog", "sample"]


def test_mixture_weights_give_the_text_only_ratio(tmp_path):
    files = {}
    for name, n in (("cap", 30), ("rea", 10), ("text", 100), ("empty", 0)):
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_text("".join("{}\n" for _ in range(n)))
    cfg = PipelineConfig()
    cfg.mixture.text_only_ratio = 0.2
    out = mixture_weights(cfg, str(files["text"]))([{"path": str(files[k])} for k in ("cap", "rea", "empty", "text")])
    assert [Path(s["path"]).stem for s in out] == ["cap", "rea", "text"]  # empty: dropped, with a warning
    from sicog.config import DataSource
    from sicog.data.dataset import source_weights

    w = dict(zip(("cap", "rea", "text"), source_weights([DataSource(**s) for s in out])))
    assert out[2]["share"] == 0.2 and "weight" not in out[2]
    assert w["text"] / sum(w.values()) == pytest.approx(0.2)
    assert w["cap"] / w["rea"] == pytest.approx(3.0)


def test_uncurated_picks_one_seeded_random_candidate_per_item(tmp_path):
    path = tmp_path / "cand.jsonl"
    recs = [{"id": f"x{i}", "image": f"{i}.png", "prompt": "Describe.", "mode": "cod",
             "candidates": [f"c{i}-{j}" for j in range(5)]} for i in range(40)]
    recs.append({"id": "empty", "image": "e.png", "prompt": "p", "mode": "cod", "candidates": ["", " "]})
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    a, b = uncurated_records(str(path), 0), uncurated_records(str(path), 0)
    assert a == b and len(a) == 40  # deterministic; an item without a usable candidate is left out
    assert a[0]["conversations"][0]["value"] == "<image>\nDescribe."
    assert len({r["chosen_index"] for r in a}) > 1  # not always the same index
    assert a != uncurated_records(str(path), 1)
    sub = uncurated_records(str(path), 0, n_items=10)  # as many items as curation kept: a seeded subset
    assert len(sub) == 10 and sub == uncurated_records(str(path), 0, n_items=10)
    assert all(r in a for r in sub) and sub != a[:10]  # same per-item draws, random items, file order
    assert [r["id"] for r in sub] == sorted((r["id"] for r in sub), key=lambda i: int(i[1:]))
    assert uncurated_records(str(path), 0, n_items=99) == a


def test_uncurated_valid_draws_a_parseable_candidate_of_the_kept_items(tmp_path):
    path = tmp_path / "cand.jsonl"
    good = "Step 1: Clarify.\nx\n\nStep 2: Look.\ny\n\nStep 3: Reason.\nz\n\nStep 4: Conclude.\nThe answer is {}."
    recs = [{"id": f"q{i}", "image": f"{i}.png", "prompt": "How many?", "mode": "cot",
             "candidates": ["rambling without an answer", good.format(i), "more rambling", good.format(i + 1)]}
            for i in range(30)]
    recs.append({"id": "none", "image": "n.png", "prompt": "p", "mode": "cot", "candidates": ["no", "answer"]})
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    kept = {f"q{i}" for i in range(0, 30, 3)} | {"none"}
    out = uncurated_records(str(path), 0, ids=kept, parse_mode="cot")
    assert {r["id"] for r in out} == kept - {"none"}  # an item with no parseable candidate is left out
    assert {r["chosen_index"] for r in out} == {0, 1}  # indices among the parseable ones (1 and 3)
    assert all("The answer is" in r["conversations"][1]["value"] for r in out)
    assert len({r["conversations"][1]["value"][-3:] for r in uncurated_records(str(path), 0, parse_mode="cot")}) > 10


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


class _Noiser:   # a label "states" the number after '#'; wrong: the next number, or the heaviest of `like`
    def wrong(self, text, prompt, task, rng, like=None):
        if "#" not in text:
            return None
        return text.split("#")[0] + "#" + (max(like, key=like.get) if like else str(int(text.split("#")[1]) + 1))

    def stated(self, label, task):
        return label.split("#")[1] if "#" in label else None

    def is_wrong(self, label, truth, task):
        return label != truth


def test_noised_truth_makes_the_share_of_the_curated_labels_wrong(tmp_path):
    from sicog.pipeline import hooks
    from sicog.pipeline.data_steps import noised_records, noised_truth_action

    def rec(i, text):
        return {"id": f"u{i}", "image": f"{i}.png", "conversations": [{"from": "human", "value": "<image>\nCount."},
                                                                      {"from": "gpt", "value": text}]}
    truth = [rec(i, f"count #{i % 5}") for i in range(40)] + [rec(99, "nothing stated")]
    (tmp_path / "truth.jsonl").write_text("".join(json.dumps(r) + "\n" for r in truth))
    # curated labels of 20 items, 5 of them wrong: a quarter
    labels = [rec(i, f"count #{i % 5}" if i % 4 else "count #7") for i in range(20)]
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in labels))
    out, noised, unnoisable = noised_records(truth, 0.5, "reasoning", _Noiser(), 3)
    assert noised + unnoisable == round(0.5 * 41) and [r["id"] for r in out] == [r["id"] for r in truth]
    assert sum(r.get("noised", False) for r in out) == noised
    for r, t in zip(out, truth):
        assert (r["conversations"][1]["value"] != t["conversations"][1]["value"]) == r.get("noised", False)
        assert r["conversations"][0] == t["conversations"][0]
    assert noised_records(truth, 0.5, "reasoning", _Noiser(), 3)[0] == out  # seeded
    assert noised_records(truth, 0.0, "reasoning", _Noiser(), 3)[0] == truth
    action = noised_truth_action(str(tmp_path / "truth.jsonl"), str(tmp_path / "out.jsonl"), "reasoning", 3,
                                 None, str(tmp_path / "labels.jsonl"))
    saved = list(hooks._LABEL_NOISERS)
    hooks._LABEL_NOISERS[:] = []
    try:
        with pytest.raises(SicogError, match="label noiser"):
            action(None, None)
        hooks.register_label_noiser(_Noiser())
        counts = action(None, None)
    finally:
        hooks._LABEL_NOISERS[:] = saved
    assert counts["share"] == 0.25 and counts["labels_judged"] == 20 and counts["records"] == 41
    assert counts["noised"] + counts["unnoisable"] == round(0.25 * 41)
    uniform = [r["conversations"][1]["value"] for r in _read_jsonl(tmp_path / "out.jsonl") if r.get("noised")]
    assert "count #7" not in uniform
    # values like the curated labels': each true value 0-4 was once labelled 7, so every noised label says 7
    like = noised_truth_action(str(tmp_path / "truth.jsonl"), str(tmp_path / "like.jsonl"), "reasoning", 3,
                               None, str(tmp_path / "labels.jsonl"), str(tmp_path / "labels.jsonl"))
    hooks._LABEL_NOISERS[:] = [_Noiser()]
    try:
        counts = like(None, None)
    finally:
        hooks._LABEL_NOISERS[:] = saved
    assert counts["wrong_values_seen"] == 5 and counts["share"] == 0.25
    noised = [r for r in _read_jsonl(tmp_path / "like.jsonl") if r.get("noised")]
    assert len(noised) == counts["noised"] > 0 and {r["conversations"][1]["value"] for r in noised} == {"count #7"}


def test_companions_step_follows_each_label_with_its_short_form(tmp_path):
    from sicog.data import formats as F
    from sicog.pipeline.data_steps import companions_action

    def rec(i, answer):
        return {"id": f"u{i}", "image": f"{i}.png", "conversations": [
            {"from": "human", "value": F.with_image_token(F.to_cot_question("How many shapes?"))},
            {"from": "gpt", "value": answer}]}
    records = [rec(0, "Step 4: Conclude.\nThere are two shapes. The answer is 2."), rec(1, "Step 1: no end"),
               rec(2, "The answer is 5.")]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    counts = companions_action(str(tmp_path / "in.jsonl"), str(tmp_path / "out.jsonl"), "reasoning")(None, None)
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in out] == ["u0", "u0-short", "u1", "u2", "u2-short"]
    assert [r["conversations"][1]["value"] for r in out if r["id"].endswith("-short")] == ["2", "5"]
    assert counts == {"records": 5, "companions": 2, "without_companion": 1}


def test_uncurated_arm_matches_the_curated_item_count_unless_all(tmp_path):
    steps = {s.name: s for s in build_plan(_smoke(tmp_path / "m"), PRESETS).steps}
    for task in ("captions", "reasoning"):
        step = steps[f"r1/uncurated_{task}"]
        assert step.inputs["curated"] == steps[f"r1/curate_{task}"].outputs["curated"]
    steps = {s.name: s for s in build_plan(_smoke(tmp_path / "a", "uncurated_items=all"), PRESETS).steps}
    assert "curated" not in steps["r1/uncurated_captions"].inputs
    # matched needs curation even without the sicog arm
    steps = {s.name: s for s in build_plan(_smoke(tmp_path / "u", "arms=[base, uncurated]", "post_training.method=none"),
                                           PRESETS).steps}
    assert "r1/curate_reasoning" in steps and "r1/pretrain_sicog" not in steps
    # the shuffled-image control only where evaluation.control_arms says (empty: every arm)
    steps = {s.name: s for s in build_plan(_smoke(tmp_path / "c", "evaluation.shuffled_image_control=true",
                                                  "evaluation.control_arms=[base]"), PRESETS).steps}
    assert steps["evaluate_base"].params["evaluate"]["shuffled_image_control"] is True
    assert steps["r1/evaluate_sicog"].params["evaluate"]["shuffled_image_control"] is False
    with pytest.raises(ConfigError, match="control_arms"):
        build_plan(_smoke(tmp_path / "y", "evaluation.control_arms=[nobody]"))
    with pytest.raises(ConfigError, match="uncurated_items"):
        build_plan(_smoke(tmp_path / "x", "uncurated_items=some"))


def test_keep_fraction_is_curates_own_setting(tmp_path):
    """curation.*.keep_fraction goes to `sicog curate` as it is: no threshold, no selection step after it."""
    planner = build_plan(_smoke(tmp_path, "curation.captions.keep_fraction=0.25", "curation.captions.threshold=null"),
                         PRESETS)
    steps = {s.name: s for s in planner.steps}
    curate = steps["r1/curate_captions"].params["curate"]
    assert curate["keep_fraction"] == 0.25 and curate["threshold"] is None
    assert steps["r1/pretrain_sicog"].inputs["source0"] == steps["r1/curate_captions"].outputs["curated"]
    assert not [s for s in steps if "select" in s]
    with pytest.raises(ConfigError, match=r"key curation\.captions\.threshold: 0\.5 given with --keep-fraction "
                                          r"0\.25: the two are exclusive"):
        build_plan(_smoke(tmp_path / "b", "curation.captions.keep_fraction=0.25"), PRESETS)


def test_standin_cell_targets_follow_the_scene_graph():
    from sicog.demo.standin_vision import _head_sizes, cell_targets
    from sicog.demo.world.scenes import SceneConfig, scene_for

    cfg = SceneConfig()
    scene = scene_for(5, "t", 0, cfg, "t0")
    targets = cell_targets(scene, cfg)
    assert len(targets) == len(_head_sizes(cfg)) == 30
    occupied = {o.row * 3 + o.col: o for o in scene.objects}
    for cell in range(9):
        colour, shape, _size = targets[3 * cell: 3 * cell + 3]
        if cell in occupied:
            assert cfg.colours[colour - 1] == occupied[cell].colour and cfg.shapes[shape - 1] == occupied[cell].shape
        else:
            assert (colour, shape) == (0, 0)
    assert all(0 <= t < n for t, n in zip(targets, _head_sizes(cfg)))


def test_plan_checks_inputs_and_keeps_work_dir_apart(tmp_path):
    from sicog.pipeline.checks import check_step_inputs
    from sicog.pipeline.step import Step
    from sicog.utils.io import SicogError

    world = _fake_world(tmp_path)
    # a run may live under the image root, never inside the world itself
    cfg = load_pipeline(str(PRESETS / "smoke.yaml"), [f"data.world={world}", f"data.image_folder={tmp_path}",
                                                      f"work_dir={tmp_path / 'runs' / 'x'}"])
    assert build_plan(cfg, PRESETS).steps
    cfg = load_pipeline(str(PRESETS / "smoke.yaml"), [f"data.world={world}", f"work_dir={world / 'run'}"])
    with pytest.raises(SicogError, match=r"work_dir \(.*\) is inside data\.world"):
        build_plan(cfg, PRESETS)
    # an input nobody writes fails the plan, one written by an earlier step does not
    steps = [Step("a", "data", {}, {"out": str(tmp_path / "made")}, {}, lambda s, e: {}, str(tmp_path / "a")),
             Step("b", "data", {"x": str(tmp_path / "made" / "f.jsonl")}, {}, {}, lambda s, e: {}, str(tmp_path / "b"))]
    check_step_inputs(steps)
    with pytest.raises(SicogError, match=r"step b: input x .*f\.jsonl does not exist"):
        check_step_inputs(steps[1:])
