"""The training runner on the tiny preset: which weights change, bad input, outputs (resume:
test_train_resume.py; the CLI on bad input: tests/reliability/test_train_inputs.py)."""

import json
import logging
import shutil

import pytest
import torch
from safetensors.torch import load_file

from sicog.cli import main as sicog_main
from sicog.config import ConfigError, DataConfig, DataSource, TrainConfig, load_config
from sicog.stages.train import data_provenance, train_stage
from sicog.utils.io import SicogError, file_fingerprint

from .conftest import stage_config

# Parameter names of a loaded LlavaForConditionalGeneration: model.vision_tower.*,
# model.multi_modal_projector.*, model.language_model.*, lm_head.*
PART_OF_KEY = {"vision_tower": "vision_tower", "multi_modal_projector": "projector",
               "language_model": "language_model", "lm_head": "language_model"}


def part_of_key(key: str) -> str:
    key = key.removeprefix("model.")
    return PART_OF_KEY[key.split(".", 1)[0]]


def _weights(ckpt):
    """The weights of a checkpoint as stock transformers loads them (file key layouts vary)."""
    from transformers import LlavaForConditionalGeneration

    return LlavaForConditionalGeneration.from_pretrained(ckpt).state_dict()


def _changed_parts(before, after):
    assert set(before) == set(after)
    return {part_of_key(k) for k, v in after.items() if not torch.equal(v, before[k])}


def test_align_changes_only_projector_then_pretrain_changes_all(tmp_path, tiny_data, monkeypatch):
    # the untrained starting point: the same seeded tiny init, saved with zero steps
    base_cfg = stage_config(tmp_path, tiny_data, "init", max_steps=1, tunable_parts=["projector"])
    start = load_config(TrainConfig, base_cfg)
    from sicog.model.build import build_model
    from sicog.model.checkpoint import save_checkpoint
    model, processor = build_model(start.model, seed=0)
    save_checkpoint(model, processor, tmp_path / "init_ckpt", {"stage": "init"})
    before = _weights(tmp_path / "init_ckpt")

    cfg = load_config(TrainConfig, stage_config(tmp_path, tiny_data, "align", tunable_parts=["projector"],
                                                save_projector=True))
    final = train_stage(cfg)
    after = _weights(final)
    assert _changed_parts(before, after) == {"projector"}
    assert (tmp_path / "align" / "mm_projector.safetensors").is_file()
    meta = json.loads((final / "sicog_meta.json").read_text())
    assert meta["stage"] == "align" and meta["steps"] == 4
    assert meta["data_sources"] == [{"path": str(tiny_data["captions"]), "max_samples": None, "weight": 1.0,
                                     "sha256": file_fingerprint(tiny_data["captions"])}]
    assert meta["data_fingerprint"] == data_provenance(cfg.data)["data_fingerprint"]
    assert len(meta["data_fingerprint"]) == 16
    summary = json.loads((tmp_path / "align" / "train_summary.json").read_text())
    assert summary["samples_per_s"] > 0 and summary["tokens_per_s"] > 0
    assert (tmp_path / "align" / "config.yaml").is_file()
    _assert_stock_loading_matches(final, tmp_path)

    # stage 1.5: original init + the stage-1 projector, all parts trainable, text-only data mixed in
    cfg = load_config(TrainConfig, stage_config(
        tmp_path, tiny_data, "pretrain", tunable_parts=["vision_tower", "projector", "language_model"]),
        [f"model.mm_projector={tmp_path / 'align' / 'mm_projector.safetensors'}",
         f"data.sources=[{{path: '{tiny_data['captions']}', image_folder: '{tiny_data['image_folder']}', weight: 0.8}},"
         f" {{path: '{tiny_data['text']}', weight: 0.2}}]"])
    stage1_proj = load_file(tmp_path / "align" / "mm_projector.safetensors")
    import sicog.model.build as build

    built = {}

    def spy(*args, **kwargs):  # the model train_stage builds, as built (before any step)
        model, processor = real_build(*args, **kwargs)
        built.update({k: v.clone() for k, v in model.model.multi_modal_projector.state_dict().items()})
        return model, processor

    real_build = build.build_model
    monkeypatch.setattr(build, "build_model", spy)
    final15 = train_stage(cfg)
    assert set(built) == set(stage1_proj) == {"linear_1.weight", "linear_1.bias", "linear_2.weight", "linear_2.bias"}
    for k, v in stage1_proj.items():  # the stage-1 projector was loaded, not a fresh one
        assert torch.equal(built[k], v), k
        assert not torch.equal(before[f"model.multi_modal_projector.{k}"], v), k  # (stage 1 changed it)
    after15 = _weights(final15)
    assert _changed_parts(before, after15) == {"vision_tower", "projector", "language_model"}
    meta15 = json.loads((final15 / "sicog_meta.json").read_text())
    assert [s["sha256"] for s in meta15["data_sources"]] == [file_fingerprint(tiny_data["captions"]),
                                                             file_fingerprint(tiny_data["text"])]
    assert [s["weight"] for s in meta15["data_sources"]] == [0.8, 0.2]
    assert meta15["data_fingerprint"] != meta["data_fingerprint"]


def _assert_stock_loading_matches(ckpt, tmp_path):
    """A `sicog train` checkpoint loads in a process that never imports sicog; same logits."""
    import subprocess
    import sys

    import numpy as np

    from sicog.model.checkpoint import load_checkpoint
    from tests.model.conftest import make_image
    from tests.model.test_model_checkpoint import STOCK_SCRIPT, _logits

    out = tmp_path / "stock_logits.npy"
    proc = subprocess.run([sys.executable, "-c", STOCK_SCRIPT, str(ckpt), str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model, processor = load_checkpoint(ckpt)
    ours, _ = _logits(model, processor, make_image(seed=0))
    stock = torch.from_numpy(np.load(out))
    assert torch.allclose(stock, ours, atol=1e-5, rtol=0), (stock - ours).abs().max()


def test_cli_bad_config_key_and_type(tmp_path, tiny_data, capsys):
    cfg = stage_config(tmp_path, tiny_data, "bad")
    assert sicog_main(["train", str(cfg), "--set", "training.learning_rat=1"]) == 2
    assert "training.learning_rat: unknown key" in capsys.readouterr().err
    assert sicog_main(["train", str(cfg), "--set", "training.max_steps=many"]) == 2
    assert "training.max_steps: expected int" in capsys.readouterr().err


def test_cli_bad_data_leaves_no_checkpoint(tmp_path, tiny_data, capsys):
    lines = tiny_data["captions"].read_text().splitlines()
    lines[3] = lines[3][:-5]  # malformed JSON on line 4
    tiny_data["captions"].write_text("\n".join(lines) + "\n")
    cfg = stage_config(tmp_path, tiny_data, "broken")
    assert sicog_main(["train", str(cfg)]) == 2
    assert "captions.jsonl:4" in capsys.readouterr().err
    assert not (tmp_path / "broken" / "final").exists()


def test_tunable_parts_validated(tmp_path, tiny_data):
    with pytest.raises(ConfigError, match=r"key training.tunable_parts\[0\]: must be one of .*got 'projektor'"):
        load_config(TrainConfig, stage_config(tmp_path, tiny_data, "x", tunable_parts=["projektor"]))
    cfg = load_config(TrainConfig, stage_config(tmp_path, tiny_data, "x"))
    cfg.training.tunable_parts = ["projektor"]  # changed in code: checked again when the stage starts
    with pytest.raises(SicogError, match=r"^training.tunable_parts\[0\]: must be one of"):
        train_stage(cfg)
    assert not (tmp_path / "x").exists()


def test_data_fingerprint_follows_content_and_weights_not_paths(tmp_path, tiny_data):
    def fp(*sources, **kw):
        return data_provenance(DataConfig(sources=list(sources), **kw))["data_fingerprint"]

    caps, text = str(tiny_data["captions"]), str(tiny_data["text"])
    base = fp(DataSource(path=caps), DataSource(path=text, share=0.2))
    moved = tmp_path / "elsewhere.jsonl"
    shutil.copy(caps, moved)
    assert fp(DataSource(path=str(moved)), DataSource(path=text, share=0.2)) == base  # same bytes
    assert fp(DataSource(path=caps), DataSource(path=text, weight=0.25)) == base  # share 0.2 = weight 0.25
    assert fp(DataSource(path=caps), DataSource(path=text, share=0.3)) != base
    assert fp(DataSource(path=caps), DataSource(path=text, share=0.2), num_samples=10) != base
    assert fp(DataSource(path=caps)) != base
    moved.write_text(moved.read_text().replace("red", "pink", 1))
    assert fp(DataSource(path=str(moved)), DataSource(path=text, share=0.2)) != base


def test_decompression_bomb_is_a_counted_skip_or_a_located_error(tmp_path, tiny_data, caplog):
    from tests.reliability.test_train_inputs import write_bomb_png

    write_bomb_png(tiny_data["image_folder"] / "images" / "0.png")  # record 1: 20000 x 20000 pixels
    cfg = load_config(TrainConfig, stage_config(tmp_path, tiny_data, "bomb", max_steps=7),  # > 1 epoch
                      ["data.on_error=skip"])
    with caplog.at_level(logging.WARNING, logger="sicog.data.dataset"):
        train_stage(cfg)
    summary = json.loads((tmp_path / "bomb" / "train_summary.json").read_text())
    assert summary["skipped_records"]["unreadable_image"] >= 1
    assert f"{tiny_data['captions']}:1: image " in caplog.text and "too large to decode safely" in caplog.text

    cfg = load_config(TrainConfig, stage_config(tmp_path, tiny_data, "bomb_raise", max_steps=7))
    with pytest.raises(SicogError, match=r"captions.jsonl:1: image .*0.png is too large to decode safely"):
        train_stage(cfg)  # when the record is read (here: during training, after the pre-flight)


def test_validation_warns_of_a_shape_vllm_cannot_serve(tmp_path, tiny_data, caplog):
    from sicog.stages.train import validate_stage

    cfg = load_config(TrainConfig, stage_config(tmp_path, tiny_data, "x"))  # hidden 64 / 4 heads = 16
    with caplog.at_level(logging.WARNING, logger="sicog.stages.train"):
        validate_stage(cfg)
    assert "vLLM will not serve this model: model.tiny: attention head size 16" in caplog.text
    caplog.clear()
    cfg.model.tiny.num_heads, cfg.model.tiny.num_kv_heads = 2, 1  # head size 32
    with caplog.at_level(logging.WARNING, logger="sicog.stages.train"):
        validate_stage(cfg)
    assert "vLLM" not in caplog.text
