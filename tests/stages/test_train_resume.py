"""Resume: a run killed after a checkpoint and started again ends with exactly (bit for bit) the
weights of an uninterrupted run - length-grouped order, data order, mixture, dropout RNG, packing - and a
corrupt or half-written checkpoint is skipped for the one before it."""

import json
import logging
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from sicog.cli import main as sicog_main
from sicog.config import TrainConfig, load_config
from sicog.stages import trainer as trainer_mod
from sicog.stages.train import checkpoint_problem, newest_complete_checkpoint, train_stage
from sicog.stages.trainer import EpochLengthGroupedSampler

from .conftest import stage_config


class Killed(BaseException):
    """Stands for SIGKILL: nothing in the run catches it, nothing after the save runs."""


def _train_killed_after(monkeypatch, cfg, step):
    """Run `cfg` until checkpoint-`step` is saved, then stop dead (the state a kill leaves)."""
    save = trainer_mod.SicogTrainer._save_checkpoint

    def save_then_die(self, *args, **kwargs):
        save(self, *args, **kwargs)
        if self.state.global_step == step:
            raise Killed

    with monkeypatch.context() as m:
        m.setattr(trainer_mod.SicogTrainer, "_save_checkpoint", save_then_die)
        with pytest.raises(Killed):
            train_stage(cfg)


def _max_diff(a, b):
    ta, tb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert set(ta) == set(tb)
    return max((ta[k].double() - tb[k].double()).abs().max().item() for k in ta)


# 24 samples an epoch (16 image, 8 text records), batch 4: 6 steps an epoch. Killed after
# checkpoint-8, the rerun resumes 2 steps into the second epoch (the third with gradient
# accumulation 2), whose order must be rebuilt from scratch, not replayed from the first epoch.
@pytest.mark.parametrize("overrides", [
    ["data.group_by_length=true"],
    ["data.group_by_length=false"],
    # dropout (LoRA) and accumulation: the RNG state and the skipped micro-batches are restored
    ["data.group_by_length=true", "training.gradient_accumulation_steps=2", "training.lora.enabled=true",
     "training.lora.dropout=0.3", "training.lora.r=4"],
    # packed: 6 packs of <= 330 tokens an epoch, shuffled per epoch like samples
    ["data.packing=true", "data.packing_tokens=330"],
], ids=["grouped", "random", "grouped-lora-dropout-accum2", "packed"])
def test_killed_and_resumed_run_is_bit_identical(tmp_path, tiny_data, monkeypatch, overrides):
    def cfg(name):
        text = f"{{path: '{tiny_data['text']}', weight: 0.5}}"  # a mixture: quotas, order
        return load_config(TrainConfig, stage_config(tmp_path, tiny_data, name, max_steps=10, save_steps=4), [
            *overrides, "data.num_samples=24", f"data.sources=[{{path: '{tiny_data['captions']}', "
                                                f"image_folder: '{tiny_data['image_folder']}'}}, {text}]"])

    full = train_stage(cfg("full"))
    _train_killed_after(monkeypatch, cfg("cut"), 8)
    assert (tmp_path / "cut" / "checkpoint-8").is_dir() and not (tmp_path / "cut" / "final").exists()
    resumed = train_stage(cfg("cut"))
    assert json.loads((resumed / "sicog_meta.json").read_text())["steps"] == 10
    ta, tb = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    differ = [k for k in ta if not torch.equal(ta[k], tb[k])]
    assert not differ, f"max |diff| {_max_diff(full, resumed):.3g} in {differ[:5]}"


def test_length_grouped_order_is_a_function_of_seed_and_epoch():
    lengths = [int(x) for x in torch.randint(5, 200, (64,), generator=torch.Generator().manual_seed(1))]
    a = EpochLengthGroupedSampler(8, lengths, seed=3)
    first, second = list(a), list(a)  # without set_epoch, each full pass is the next epoch
    assert sorted(first) == sorted(second) == list(range(64)) and first != second
    b = EpochLengthGroupedSampler(8, lengths, seed=3)
    b.set_epoch(1)  # a resumed run: a fresh sampler put straight into epoch 1
    assert list(b) == second == a.order(1)
    assert EpochLengthGroupedSampler(8, lengths, seed=4).order(0) != first
    # the same orders as transformers' sampler gives an uninterrupted run (one generator, epoch after epoch)
    from transformers.trainer_pt_utils import LengthGroupedSampler

    stock = LengthGroupedSampler(8, lengths=lengths, generator=torch.Generator().manual_seed(3))
    assert [list(stock) for _ in range(3)] == [a.order(0), a.order(1), a.order(2)]
    # grouped: the longest example leads; each megabatch (here 16 = 2 batches) is sorted by length
    # after its first place (transformers swaps the overall longest into the first megabatch)
    assert lengths[first[0]] == max(lengths)
    for mb in range(0, 64, 16):
        part = [lengths[i] for i in first[mb + 1:mb + 16]]
        assert part == sorted(part, reverse=True)


@pytest.fixture(scope="module")
def three_checkpoints(tmp_path_factory):
    """A finished run with checkpoint-2, -4 and -6 (kept: no limit), and its final weights."""
    from .conftest import write_tiny_dataset

    tmp = tmp_path_factory.mktemp("ckpts")
    data = write_tiny_dataset(tmp / "data")
    cfg_path = stage_config(tmp, data, "run", max_steps=6, save_steps=2, save_total_limit=None)
    final = train_stage(load_config(TrainConfig, cfg_path))
    return tmp / "run", cfg_path, load_file(final / "model.safetensors")


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


CORRUPTIONS = {
    "truncated trainer_state.json": (lambda d: _truncate(d / "trainer_state.json"), "trainer_state.json is unreadable"),
    "no trainer_state.json": (lambda d: (d / "trainer_state.json").unlink(), "no trainer_state.json"),
    "another step's trainer_state.json": (
        lambda d: (d / "trainer_state.json").write_text(json.dumps({"global_step": 2})), "global_step"),
    "missing weights": (lambda d: (d / "model.safetensors").unlink(), "no model weights"),
    "truncated weights": (lambda d: _truncate(d / "model.safetensors"), "model.safetensors is not a readable"),
    "garbled weights": (lambda d: (d / "model.safetensors").write_bytes(os.urandom(4096)),
                        "model.safetensors is not a readable"),
    "truncated optimizer.pt": (lambda d: _truncate(d / "optimizer.pt"), "optimizer.pt is truncated"),
    "truncated rng_state.pth": (lambda d: _truncate(d / "rng_state.pth"), "rng_state.pth is truncated"),
    "no optimizer.pt": (lambda d: (d / "optimizer.pt").unlink(), "no optimizer.pt"),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_broken_checkpoint_is_named_and_skipped(three_checkpoints, tmp_path, kind, caplog):
    run, _, _ = three_checkpoints
    out = tmp_path / "run"
    shutil.copytree(run, out, ignore=shutil.ignore_patterns("final"))
    assert checkpoint_problem(out / "checkpoint-6", 6) is None
    corrupt, why = CORRUPTIONS[kind]
    corrupt(out / "checkpoint-6")
    assert why in checkpoint_problem(out / "checkpoint-6", 6)
    with caplog.at_level(logging.WARNING, logger="sicog.stages.train"):
        assert newest_complete_checkpoint(out) == out / "checkpoint-4"
    assert "checkpoint-6" in caplog.text and why in caplog.text


def test_rerun_over_broken_checkpoints_resumes_from_the_last_whole_one(three_checkpoints, tmp_path, capsys):
    run, cfg_path, reference = three_checkpoints
    out = tmp_path / "run"
    shutil.copytree(run, out, ignore=shutil.ignore_patterns("final"))
    _truncate(out / "checkpoint-6" / "trainer_state.json")  # killed while writing the last file
    (out / "checkpoint-4" / "model.safetensors").write_bytes(os.urandom(4096))  # garbled
    assert sicog_main(["train", str(cfg_path), "--set", f"training.output_dir={out}"]) == 0
    err = capsys.readouterr().err  # the CLI logs to stderr
    assert "Traceback" not in err
    assert f"ignoring incomplete or corrupt checkpoint {out / 'checkpoint-6'}: trainer_state.json" in err
    assert f"ignoring incomplete or corrupt checkpoint {out / 'checkpoint-4'}: model.safetensors" in err
    assert f"resuming from {out / 'checkpoint-2'}" in err
    resumed = load_file(out / "final" / "model.safetensors")
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)  # steps 3-6 redone, exactly
    assert checkpoint_problem(out / "checkpoint-6", 6) is None  # the broken ones were saved again
