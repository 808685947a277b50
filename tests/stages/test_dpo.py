"""`sicog dpo` on the tiny preset: the objective at step 0, training, held-out metrics, the
reference kinds, resume (DeepSpeed: test_dpo_deepspeed.py; bad pair files:
tests/reliability/test_dpo_inputs.py)."""

import json
import math
from pathlib import Path

import pytest
import torch

from sicog.config import load_config
from sicog.stages.dpo.config import DPOConfig
from sicog.stages.dpo.loss import pair_metrics, preference_loss
from sicog.stages.dpo.stage import dpo_stage

from .conftest import dpo_config


def _pair_batch(cfg, n=6):
    from sicog.data.chat import tokenizer_of
    from sicog.data.pairs import PairCollator, build_pair_sources
    from sicog.model.build import build_model

    model, processor = build_model(cfg.model, seed=0)
    parts = build_pair_sources(cfg.data.sources, processor, cfg.data.max_length, "raise", False)
    collator = PairCollator(tokenizer_of(processor).pad_token_id)
    return model.eval(), parts[0], collator, collator([parts[0][i] for i in range(n)])


def test_step0_sigmoid_loss_is_ln2_and_margin_zero(tmp_path, tiny_pairs):
    from sicog.stages.dpo.trainer import Reference, forward_pairs, score_pairs

    cfg = load_config(DPOConfig, dpo_config(tmp_path, tiny_pairs, "step0"))
    model, part, collator, batch = _pair_batch(cfg)
    # the reference table is scored in other batches (other padding) than the training step's
    table = score_pairs(model, part, collator, 4, None, torch.device("cpu"))
    with torch.no_grad():
        logps, tokens, inputs = forward_pairs(model, batch)
        frozen = Reference("model", model=model).logps(model, inputs, batch["pair_ids"])
    chosen, rejected = logps.chunk(2)
    for ref_chosen, ref_rejected in (frozen, Reference("precomputed", table).logps(model, inputs, batch["pair_ids"])):
        loss = preference_loss(chosen, rejected, ref_chosen, ref_rejected, beta=0.1)
        assert abs(float(loss) - math.log(2)) < 1e-4
        metrics = pair_metrics(chosen, rejected, ref_chosen, ref_rejected, beta=0.1)
        assert torch.allclose(metrics["rewards/margin"], torch.zeros(6), atol=1e-5)
    # IPO at step 0: (0 - 1 / (2 beta))^2; the SFT term adds the chosen replies' NLL per token
    ipo = preference_loss(chosen, rejected, chosen, rejected, 0.1, "ipo", *tokens.chunk(2))
    assert float(ipo) == pytest.approx(25.0)
    rpo = preference_loss(chosen, rejected, chosen, rejected, 0.1, "sigmoid", *tokens.chunk(2), sft_weight=1.0)
    nll = float(-chosen.sum() / tokens.chunk(2)[0].sum())
    assert float(rpo) == pytest.approx(math.log(2) + nll, rel=1e-5)


def test_loss_prefers_the_chosen_side():
    zero = torch.zeros(3)
    better = preference_loss(torch.full((3,), -1.0), torch.full((3,), -5.0), zero - 3, zero - 3, beta=0.5)
    worse = preference_loss(torch.full((3,), -5.0), torch.full((3,), -1.0), zero - 3, zero - 3, beta=0.5)
    assert float(better) < math.log(2) < float(worse)
    acc = pair_metrics(torch.tensor([-1.0, -2.0, -3.0]), torch.tensor([-2.0, -2.0, -1.0]), zero, zero, 1.0)
    assert acc["rewards/accuracy"].tolist() == [1.0, 0.5, 0.0]  # a tie counts one half


def test_dpo_trains_logs_metrics_and_saves_a_stock_checkpoint(tmp_path, tiny_pairs):
    from transformers import LlavaForConditionalGeneration

    # held-out = a copy of the training pairs here: the test checks that training moves the implicit
    # reward the right way, not that a random tiny model generalises (dpo.heldout may not be the
    # training file itself)
    heldout = Path(tiny_pairs["pairs"]).with_name("heldout_copy.jsonl")
    heldout.write_bytes(Path(tiny_pairs["pairs"]).read_bytes())
    cfg = load_config(DPOConfig, dpo_config(tmp_path, tiny_pairs, "dpo", max_steps=6, save_steps=6,
                                            logging_steps=3, learning_rate=2e-3,
                                            dpo={"heldout": str(heldout), "beta": 0.5,
                                                 "eval_batch_size": 16}))
    final = dpo_stage(cfg)
    summary = json.loads((tmp_path / "dpo" / "train_summary.json").read_text())
    assert summary["reference"] == "precomputed" and summary["steps"] == 6
    logged = summary["log_history"]
    assert [e["step"] for e in logged] == [3, 6]
    for key in ("rewards/accuracy", "rewards/margin", "logps/chosen", "logps/rejected"):
        assert all(key in e for e in logged)
    before, after = summary["heldout_before"], summary["heldout_after"]
    assert before["rewards/accuracy"] == 0.5 and before["rewards/margin"] == 0.0 and before["pairs"] == 8
    assert after["rewards/accuracy"] > 0.5 and after["rewards/margin"] > 0
    meta = json.loads((final / "sicog_meta.json").read_text())
    assert meta["dpo"]["heldout_after"] == after
    model = LlavaForConditionalGeneration.from_pretrained(final)  # stock transformers
    assert model.config.model_type == "llava"


def test_lora_adapter_reference_with_ipo_and_sft_term(tmp_path, tiny_pairs):
    cfg = load_config(DPOConfig, dpo_config(
        tmp_path, tiny_pairs, "dpo_lora", max_steps=1, tunable_parts=["language_model"],
        lora={"enabled": True, "r": 4, "alpha": 8, "dropout": 0.0},
        dpo={"loss_type": "ipo", "sft_weight": 0.5, "eval_batch_size": 16}))
    final = dpo_stage(cfg)
    summary = json.loads((tmp_path / "dpo_lora" / "train_summary.json").read_text())
    assert summary["reference"] == "adapter" and summary["loss_type"] == "ipo"
    assert summary["heldout_before"]["rewards/margin"] == 0.0
    assert (final / "config.json").is_file() and not (final / "adapter_config.json").exists()  # merged


def test_frozen_model_reference_and_resume(tmp_path, tiny_pairs):
    path = dpo_config(tmp_path, tiny_pairs, "dpo_ref", max_steps=1, save_steps=1,
                      dpo={"reference": "model", "heldout": None})
    dpo_stage(load_config(DPOConfig, path))
    # a longer run in the same folder resumes from checkpoint-1 instead of starting over
    dpo_stage(load_config(DPOConfig, path, ["training.max_steps=2"]))
    state = json.loads((tmp_path / "dpo_ref" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    summary = json.loads((tmp_path / "dpo_ref" / "train_summary.json").read_text())
    assert summary["reference"] == "model" and summary["steps"] == 1  # steps trained in this run


def test_adapter_reference_needs_lora(tmp_path, tiny_pairs):
    from sicog.utils.io import SicogError

    cfg = load_config(DPOConfig, dpo_config(tmp_path, tiny_pairs, "bad", dpo={"reference": "adapter"}))
    with pytest.raises(SicogError, match="dpo.reference: adapter needs training.lora.enabled"):
        dpo_stage(cfg)
    assert not (tmp_path / "bad").exists()
