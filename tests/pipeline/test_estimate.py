"""`sicog run --estimate`: token counting with images, the table of the demo's smoke config and of
the paper-scale config (whose data is absent), the figures of a step recomputed by hand, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sicog.cli import main
from sicog.config import ModelConfig, TinyModelConfig
from sicog.model.size import model_size, model_state_bytes, part_configs
from sicog.model_settings import UhdSettings
from sicog.pipeline import estimate_data as ed
from sicog.pipeline.cli import load_pipeline
from sicog.pipeline.estimate import EstimateOptions, estimate_plan
from sicog.pipeline.estimate_table import render
from sicog.pipeline.estimate_workload import image_tokens
from sicog.pipeline.plan import build_plan
from sicog.utils.io import SicogError

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ROOT / "sicog" / "demo" / "presets"
PAPER = ROOT / "configs" / "pipeline" / "qwen2_7b.yaml"


def _records(path: Path, recs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_tokens_are_counted_from_the_text_with_images_as_the_arch_sees_them(tmp_path):
    Image.new("RGB", (336, 336)).save(tmp_path / "small.png")
    Image.new("RGB", (672, 1008)).save(tmp_path / "tall.png")
    path = _records(tmp_path / "d.jsonl", [
        {"image": "small.png", "conversations": [{"from": "human", "value": "<image>\n" + "a" * 40},
                                                 {"from": "gpt", "value": "b" * 81}]},
        {"image": ["small.png", "tall.png"], "conversations": [{"from": "human", "value": "<image><image>q"},
                                                               {"from": "gpt", "value": "c"}]},
        {"conversations": [{"from": "human", "value": "x" * 8}, {"from": "gpt", "value": "y" * 4}]},
    ])
    size = ed.measure_file(str(path), str(tmp_path), read_sizes=True)
    framing = ed.SYSTEM_TOKENS + 2 * ed.TURN_TOKENS  # system turn + two turns
    assert size.records == 3
    assert size.text.tolist() == [framing + 10 + 21, framing + 1 + 1, framing + 2 + 1]  # 4 characters a token
    assert size.reply.tolist() == [21, 1, 1] and size.images.tolist() == [1, 2, 0]
    assert size.sizes == [[(336, 336)], [(336, 336), (672, 1008)], []]

    from transformers import CLIPVisionConfig, Qwen2Config

    model = model_size(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, image_size=336, patch_size=14),
                       Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                   num_key_value_heads=1, vocab_size=100), ["projector"])
    llava, passes = image_tokens(model, ModelConfig(arch="llava"), size)
    assert llava.tolist() == [576, 1152, 0] and passes.tolist() == [1, 2, 0]
    uhd = ModelConfig(arch="uhd", uhd=UhdSettings(num_queries=144))
    tokens, passes = image_tokens(model, uhd, size)
    # 336 px: the overview alone (144); 672 x 1008: six slices in 3 rows of 2, row separators, the overview
    assert tokens.tolist() == [144, 144 + (3 * 12 * 25 + 1 + 144), 0] and passes.tolist() == [1, 1 + 7, 0]


def _smoke_world(tmp_path: Path) -> Path:
    from sicog.demo.world.generate import WorldSizes, generate_world

    world = tmp_path / "world"
    generate_world(world, seed=0, sizes=WorldSizes(n_align=40, n_annotated=8, n_reasoning=8, n_instructions=20,
                                                   n_unlabeled_images=8, n_unlabeled_questions=8, n_benchmark=4))
    return world


def test_the_smoke_config_gets_a_table_whose_figures_follow_from_its_data(tmp_path):
    world = _smoke_world(tmp_path)
    cfg = load_pipeline(str(PRESETS / "smoke.yaml"), [f"work_dir={tmp_path / 'run'}", f"data.world={world}"])
    planner = build_plan(cfg, PRESETS, allow_missing=True)
    est = estimate_plan(planner, EstimateOptions(mfu=0.5))
    rows = {r.name: r for r in est.rows}
    assert set(rows) == {"annotate_cod"} | {s.name for s in planner.steps}
    # align: max_steps 15 x 16 samples of alignment.jsonl, 9 image tokens each (96 px / 32 px patches)
    align = rows["align"]
    data = ed.measure_file(str(world / "alignment.jsonl"))
    assert align.tokens == pytest.approx(240 * (data.text.mean() + 9))
    tiny = TinyModelConfig(**cfg.standins["tiny"])
    size = model_size(*part_configs(ModelConfig(preset="tiny", tiny=tiny)), ["projector"])
    pairs = 240 * np.mean((data.text + 9) * (data.text + 10) / 2)
    flops = size.train.lm_per_token * align.tokens + size.train.lm_per_pair * pairs + size.train.per_image * 240
    assert align.flops == pytest.approx(flops)
    assert align.gpu_hours == pytest.approx(flops / (312e12 * 0.5) / 3600)
    assert align.state_gb * 2**30 == pytest.approx(model_state_bytes(size.params, size.trainable, 0, 1), abs=1)
    # the loop's own files are derived: sampling N candidates per unlabeled item, curation keeps a share
    n = cfg.sampling.captions.n
    assert f"x {n} candidates" in rows["r1/sample_captions"].note
    assert "keeps 76%" in rows["r1/curate_captions"].note
    assert rows["annotate_cod"].api_usd > 0 and rows["evaluate_base"].note == "not estimated"
    table = render(est)
    lines = table.splitlines()
    assert [line.split()[0] for line in lines[3:3 + len(rows)]] == [r.name for r in est.rows]
    assert lines[4 + len(rows)].startswith("total ")
    # arch uhd reads each image's size for its slicing plan: the world's 96 px images are one overview of
    # 3 x 3 resampler queries, as many tokens as llava's 3 x 3 patches (unread, they would get 7 slices)
    from sicog.demo.cli import arch_overrides

    sets = [f"work_dir={tmp_path / 'uhd'}", f"data.world={world}"]
    uhd_cfg = load_pipeline(str(PRESETS / "smoke.yaml"), [*sets, *arch_overrides(cfg, "uhd")])
    uhd = {r.name: r for r in estimate_plan(build_plan(uhd_cfg, PRESETS, allow_missing=True)).rows}
    for name in ("align", "r1/warmup_perception", "r1/sample_captions", "r1/pretrain_sicog"):
        assert uhd[name].tokens == pytest.approx(rows[name].tokens), name


def test_the_paper_config_is_estimated_without_its_data(capsys):
    assert main(["run", str(PAPER), "--estimate", "--gpu", "h100-80gb"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith(("-", "note"))}
    for step in ("annotate_cod", "align", "sft_base", "r1/sample_captions", "r1/pretrain_sicog", "total"):
        assert step in lines, out
    assert "989 TFLOP/s" in out
    # base SFT: every part trains, ZeRO-2 over 8 GPUs: 2 bytes per parameter + 18 per parameter / 8
    cfg = load_pipeline(str(PAPER))
    from sicog.model.size import config_from_fields

    size = model_size(config_from_fields(cfg.estimate.models["vision_tower"], ""),
                      config_from_fields(cfg.estimate.models["language_model"], ""),
                      ["vision_tower", "projector", "language_model"])
    expected = (2 * size.params + 18 * size.params / 8) / 2**30
    assert f"{expected:.3g}" in lines["sft_base"]
    assert "558,128 samples" in lines["align"] and "35,000 CoD items" in lines["annotate_cod"]
    # DPO pairs: one per curated reasoning item and pair source (curated, corrupted), less the held-out 2 %
    pairs = 164_000 * cfg.estimate.curation_keep * 2 * (1 - cfg.post_training.heldout_fraction)
    assert f"{pairs:,.0f} pairs, ZeRO-3" in lines["r1/dpo_sicog"]


def test_new_tokens_per_candidate_are_measured_from_the_warmup_replies_in_the_task_format(tmp_path):
    from sicog.data.formats import format_cod

    cod = format_cod([f"step {i} " + "w" * 40 for i in range(1, 6)])
    path = _records(tmp_path / "ann.jsonl", [
        {"image": "a.png", "conversations": [{"from": "human", "value": "<image>\nDescribe."},
                                             {"from": "gpt", "value": cod}]},
        {"image": "a.png", "conversations": [{"from": "human", "value": "<image>\nDescribe."},
                                             {"from": "gpt", "value": "A direct description."}]},
    ])
    found = ed.format_replies(str(path), "captions")
    assert found.items == 1  # the companion direct description is no CoD
    assert found.reply_tokens == ed.text_tokens(cod)
    assert found.described_tokens == ed.text_tokens("step 5 " + "w" * 40)


def test_estimate_errors_name_what_to_state(tmp_path, capsys):
    cfg = load_pipeline(str(PAPER))
    del cfg.estimate.data["alignment"]
    with pytest.raises(SicogError, match=r"step align: .* does not exist; state it as estimate.data.alignment"):
        estimate_plan(build_plan(cfg, PAPER.parent, allow_missing=True))
    cfg = load_pipeline(str(PAPER))
    del cfg.estimate.models["language_model"]
    with pytest.raises(SicogError, match="no config.json yet; state its config.json fields as "
                                         "estimate.models.language_model"):
        estimate_plan(build_plan(cfg, PAPER.parent, allow_missing=True))
    cfg = load_pipeline(str(PAPER), ["estimate.data.world.items=3"])
    with pytest.raises(SicogError, match=r"estimate.data: not data keys: \['world'\]"):
        build_plan(cfg, PAPER.parent, allow_missing=True)
    assert main(["run", str(PAPER), "--estimate", "--mfu", "0"]) == 2
    assert "mfu: must be in (0, 1]" in capsys.readouterr().err
