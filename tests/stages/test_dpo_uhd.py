"""`sicog dpo` on `model.arch: uhd`: pairs whose images take different slice counts, one padded
slice tensor per batch, the objective at step 0, and a trained checkpoint of the same arch."""

import json
import math

import torch
import yaml
from PIL import Image

from sicog.config import load_config
from sicog.stages.dpo.config import DPOConfig
from sicog.stages.dpo.stage import dpo_stage

from .conftest import dpo_config
from .test_train_uhd import SIZES


def _uhd_pairs(tmp_path, tiny_pairs, name, **training):
    for i in range(12):
        path = tiny_pairs["image_folder"] / "images" / f"{i}.png"
        Image.open(path).resize(SIZES[i % len(SIZES)]).save(path)
    path = dpo_config(tmp_path, tiny_pairs, name, **training)
    cfg = yaml.safe_load(path.read_text())
    cfg["model"]["arch"] = "uhd"
    cfg["data"]["max_length"] = 512
    path.write_text(yaml.safe_dump(cfg))
    return load_config(DPOConfig, path)


def test_uhd_pair_batch_slices_both_sides_and_starts_at_ln2(tmp_path, tiny_pairs):
    from sicog.data.chat import image_token_id_of, tokenizer_of
    from sicog.data.pairs import PairCollator, build_pair_sources
    from sicog.model.build import build_model
    from sicog.stages.dpo.loss import preference_loss
    from sicog.stages.dpo.trainer import forward_pairs, score_pairs

    cfg = _uhd_pairs(tmp_path, tiny_pairs, "pairs_uhd")
    model, processor = build_model(cfg.model, seed=0)
    part = build_pair_sources(cfg.data.sources, processor, cfg.data.max_length, "raise", False)[0]
    collator = PairCollator(tokenizer_of(processor).pad_token_id)
    batch = collator([part[i] for i in range(4)])
    grids = batch["image_grids"].tolist()
    assert len(grids) == 8 and grids[:4] == grids[4:]  # chosen rows, then the same images for rejected rows
    assert len({tuple(g) for g in grids}) > 1  # the batch mixes slice counts (and unsliced images)
    per_row = (batch["input_ids"] == image_token_id_of(processor)).sum(dim=1)
    assert torch.equal(per_row[:4], per_row[4:]) and bool((per_row > 0).all())
    with torch.no_grad():
        logps, _, _ = forward_pairs(model.eval(), batch)
    table = score_pairs(model, part, collator, 3, None, torch.device("cpu"))  # other batches, other padding
    chosen, rejected = logps.chunk(2)
    loss = preference_loss(chosen, rejected, table[:4, 0], table[:4, 1], beta=0.1)
    assert abs(float(loss) - math.log(2)) < 1e-4


def test_uhd_dpo_trains_and_saves_a_uhd_checkpoint(tmp_path, tiny_pairs):
    cfg = _uhd_pairs(tmp_path, tiny_pairs, "dpo_uhd", max_steps=2, save_steps=2, logging_steps=1)
    final = dpo_stage(cfg)
    summary = json.loads((tmp_path / "dpo_uhd" / "train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["heldout_pairs"] == 4
    assert json.loads((final / "config.json").read_text())["model_type"] == "sicog_uhd"
