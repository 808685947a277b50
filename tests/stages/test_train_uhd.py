"""`sicog train` with `model.arch: uhd`: variable slice counts per sample, text-only samples mixed in."""

import pytest
import torch
import yaml
from PIL import Image

from sicog.config import TrainConfig, load_config
from sicog.stages.train import train_stage
from tests.model.uhd.test_remote_code import assert_loads_without_sicog

from .conftest import stage_config, write_tiny_dataset
from .test_train import part_of_key

# sizes that give the tiny model (64 px slices) 6, 0, 7 and 7 slices: every batch mixes slice counts
SIZES = [(160, 96), (64, 64), (48, 300), (200, 150)]


@pytest.fixture
def uhd_data(tmp_path):
    data = write_tiny_dataset(tmp_path / "data", n=12)
    for i in range(12):
        path = data["image_folder"] / "images" / f"{i}.png"
        Image.open(path).resize(SIZES[i % len(SIZES)]).save(path)
    return data


def uhd_stage(tmp_path, data, name, **training):
    path = stage_config(tmp_path, data, name, **training)
    cfg = yaml.safe_load(path.read_text())
    cfg["model"]["arch"] = "uhd"
    cfg["data"]["max_length"] = 512
    cfg["data"]["sources"].append({"path": str(data["text"]), "weight": 0.3})
    path.write_text(yaml.safe_dump(cfg))
    return path


def uhd_weights(ckpt):
    from sicog.model.checkpoint import load_checkpoint

    return load_checkpoint(ckpt)[0].state_dict()


def changed_parts(before, after):
    assert set(before) == set(after)
    return {part_of_key(k) for k, v in after.items() if not torch.equal(v, before[k])}


def _init_checkpoint(tmp_path, data):
    from sicog.model.build import build_model
    from sicog.model.checkpoint import save_checkpoint

    cfg = load_config(TrainConfig, uhd_stage(tmp_path, data, "init"))
    model, processor = build_model(cfg.model, seed=0)
    return save_checkpoint(model, processor, tmp_path / "init_ckpt", {"stage": "init"})


def test_uhd_trains_every_part_and_loads_without_sicog(tmp_path, uhd_data):
    before = uhd_weights(_init_checkpoint(tmp_path, uhd_data))
    cfg = load_config(TrainConfig, uhd_stage(tmp_path, uhd_data, "uhd_all", max_steps=3,
                                             tunable_parts=["vision_tower", "projector", "language_model"]))
    final = train_stage(cfg)
    assert changed_parts(before, uhd_weights(final)) == {"vision_tower", "projector", "language_model"}
    assert_loads_without_sicog(final, tmp_path)


def test_uhd_lora_keeps_the_frozen_tower(tmp_path, uhd_data):
    before = uhd_weights(_init_checkpoint(tmp_path, uhd_data))
    cfg = load_config(TrainConfig, uhd_stage(tmp_path, uhd_data, "uhd_lora", max_steps=2, save_steps=10,
                                             tunable_parts=["projector", "language_model"]),
                      ["training.lora.enabled=true", "training.lora.r=4"])
    final = train_stage(cfg)
    after = uhd_weights(final)
    assert not any("lora" in k for k in after)  # merged on save
    assert changed_parts(before, after) == {"projector", "language_model"}
