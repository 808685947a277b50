"""`sicog dpo CONFIG.yaml`: preference optimisation (DPO / IPO) of a checkpoint on pair files.

A sibling of `sicog train`: the same strict YAML (plus a `dpo` section), tunable parts, LoRA,
DeepSpeed ZeRO-2/3, resume from the newest complete checkpoint-N and a stock `final/` folder.
The objective is ours on our trainer, not TRL's DPOTrainer: TRL tokenizes vision pairs with
the processor's own chat template and image expansion, cannot precompute reference log-probs
for vision data, and drops our record checks (file:line errors, skip counts, pre-flight);
TRL's log-softmax kernel and DeepSpeed reference wrapping are used (docs/method.md, "Post-training").

Outputs in `training.output_dir`, besides those of `sicog train`: train_summary.json gains the
reference kind, the logged preference metrics per step, and the held-out metrics before and
after training (`dpo.heldout`).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import torch

from sicog.config import config_to_dict, load_config
from sicog.stages.dpo.config import DPOConfig, is_zero3, resolved_reference
from sicog.stages.train import (
    build_for_training,
    data_provenance,
    output_dir_lock,
    run_trainer,
    save_final_checkpoint,
    start_output,
    validate_stage,
)
from sicog.utils.io import SicogError, git_commit, write_json
from sicog.utils.shards import dist_info, owns

log = logging.getLogger(__name__)

DESCRIPTION = """Preference-optimise a checkpoint (DPO or IPO) on preference pairs from YAML.

data.sources name pair files written by `sicog pairs`; the rest of the YAML is a `sicog train` stage plus a `dpo` section (loss_type, beta, sft_weight,
reference, heldout). Runs alone, under torchrun and under DeepSpeed ZeRO-2/3; a re-run resumes.
Examples:
  sicog dpo configs/tiny/dpo.yaml --set dpo.beta=0.2
  torchrun --nproc_per_node 8 -m sicog dpo configs/qwen2_7b/dpo.yaml
"""

METRIC_PREFIXES = ("rewards/", "logps/")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="DPO stage YAML (see configs/tiny/dpo.yaml and configs/qwen2_7b/dpo.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value by dotted key, e.g. dpo.beta=0.2 (repeatable; the value "
                   "is parsed as YAML and type-checked)")


def run(args: argparse.Namespace) -> int:
    dpo_stage(load_config(DPOConfig, args.config, args.overrides))
    return 0


def _validate(cfg: DPOConfig, reference: str) -> None:
    validate_stage(cfg, {"dpo.heldout": cfg.dpo.heldout, "dpo.heldout_image_folder": cfg.dpo.heldout_image_folder})
    if cfg.dpo.heldout:  # scoring the training pairs as held-out ones would report a fit, not a generalisation
        held = Path(cfg.dpo.heldout).resolve()
        for k, src in enumerate(cfg.data.sources):
            if Path(src.path).resolve() == held:
                raise SicogError(f"dpo.heldout ({cfg.dpo.heldout}) is data.sources[{k}].path ({src.path}): the "
                                 "held-out pairs must not be training pairs; choose another file")
    if cfg.data.packing:  # a pair's two replies are scored side by side, one row each
        raise SicogError("data.packing: not supported by sicog dpo; set it false")
    if reference == "adapter" and not cfg.training.lora.enabled:
        raise SicogError("dpo.reference: adapter needs training.lora.enabled (the reference is the adapter "
                         "switched off)")
    if reference == "precomputed" and is_zero3(cfg.training.deepspeed):
        raise SicogError("dpo.reference: precomputed does not run under ZeRO-3 (partitioned weights run only "
                         "inside the DeepSpeed engine); use model")


def _gather_rows(local: torch.Tensor, index: list[int], total: int) -> torch.Tensor:
    """Assemble the [total, 2] table from every rank's rows (`index`: their pair ids)."""
    table = torch.zeros(total, 2)
    parts = [(index, local)]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        parts = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, (index, local))
    for idx, rows in parts:
        table[idx] = rows
    return table


def precompute_reference(model, parts, collator, batch_size: int, device) -> torch.Tensor:
    """[N, 2] log-probs of every training pair under the starting model, by pair id; each rank
    scores every world_size-th pair, then all gather."""
    from torch.utils.data import Subset

    from sicog.stages.dpo.trainer import score_pairs

    rank, world = dist_info()
    every = [(p, j) for p in parts for j in range(len(p))]
    mine = [pair for k, pair in enumerate(every) if owns(k, rank, world)]
    t0 = time.perf_counter()
    rows, ids = [], []
    for p in parts:
        local = [j for q, j in mine if q is p]
        if local:
            rows.append(score_pairs(model, Subset(p, local), collator, batch_size, None, device))
            ids += [p.offset + j for j in local]
    table = _gather_rows(torch.cat(rows) if rows else torch.zeros(0, 2), ids, len(every))
    log.info("reference log-probs of %d pairs computed in %.1f s", len(every), time.perf_counter() - t0)
    return table


def dpo_stage(cfg: DPOConfig) -> Path:
    """Train one DPO stage and write `output_dir/final`; returns that path."""
    kind = resolved_reference(cfg)
    _validate(cfg, kind)
    with output_dir_lock(cfg):
        return _dpo_stage(cfg, kind)


def _dpo_stage(cfg: DPOConfig, kind: str) -> Path:
    from sicog.data.chat import tokenizer_of
    from sicog.data.mixture import MixtureDataset, source_weights
    from sicog.data.pairs import (
        PairCollator,
        PairDataset,
        build_pair_sources,
        check_pair_files,
        preflight_pairs,
        read_pairs,
    )
    from sicog.model.build import build_model
    from sicog.stages.dpo.trainer import DPOTrainer, Reference, heldout_metrics, score_pairs

    t0 = time.perf_counter()
    tc, dc = cfg.training, cfg.data
    held_folder = cfg.dpo.heldout_image_folder or dc.sources[0].image_folder
    check_pair_files(dc.sources, cfg.dpo.heldout, held_folder, dc.on_error, dc.allow_images_outside_folder)
    out, rank = Path(tc.output_dir), int(os.environ.get("RANK", "0"))
    args, model, processor = build_for_training(cfg)

    parts = build_pair_sources(dc.sources, processor, dc.max_length, dc.on_error, dc.allow_images_outside_folder)
    dataset = MixtureDataset(parts, source_weights(dc.sources), dc.num_samples, tc.seed)
    heldout = None
    held_records = read_pairs(cfg.dpo.heldout) if cfg.dpo.heldout else []
    if held_records:
        heldout = PairDataset(held_records, processor, held_folder, dc.max_length,
                              name=cfg.dpo.heldout, allow_outside=dc.allow_images_outside_folder)
    elif cfg.dpo.heldout:  # e.g. a split of very few records: training goes on, unscored
        log.warning("dpo.heldout: %s holds no pairs; no held-out metrics", cfg.dpo.heldout)
    tok = tokenizer_of(processor)
    collator = PairCollator(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    preflight_pairs(dataset, processor, model, tc.per_device_train_batch_size)
    provenance = data_provenance(dc) if args.should_save else {}

    bs = cfg.dpo.eval_batch_size
    reference = Reference(kind)
    held_ref = None
    if kind == "precomputed":  # the built model is the reference until the first step (or a resume)
        model.to(args.device)
        reference.table = precompute_reference(model, parts, collator, bs, args.device)
        if heldout is not None:
            held_ref = score_pairs(model, heldout, collator, bs, None, args.device)
    elif kind == "model":
        reference.model, _ = build_model(cfg.model, seed=tc.seed, dtype=torch.bfloat16 if args.bf16 else torch.float32)
        reference.model.requires_grad_(False).eval()
    start_output(cfg)  # every input read and checked: only now the output folder is made

    trainer = DPOTrainer(
        model=model, args=args, train_dataset=dataset, data_collator=collator, processing_class=tok,
        lengths=dataset.lengths, group_by_length=dc.group_by_length, dpo=cfg.dpo, reference=reference,
    )
    if heldout is not None and held_ref is None:
        held_ref = score_pairs(trainer.model if kind == "adapter" else model, heldout, collator, bs, reference,
                               args.device)
    result, throughput = run_trainer(cfg, trainer, model)

    # global_step: every step of the stage, those before a resume included ("steps": this run's)
    summary = {"reference": kind, "loss_type": cfg.dpo.loss_type, "beta": cfg.dpo.beta,
               "global_step": trainer.state.global_step, "train_pairs": sum(len(p) for p in parts),
               "heldout_pairs": len(heldout) if heldout else 0,
               "log_history": [{k: v for k, v in e.items() if k == "step" or k == "loss" or k.startswith(METRIC_PREFIXES)}
                               for e in trainer.state.log_history if "loss" in e]}
    if heldout is not None:
        policy = score_pairs(trainer.model_wrapped, heldout, collator, bs, None, args.device)
        summary["heldout_before"] = heldout_metrics(held_ref, held_ref, cfg.dpo.beta)
        summary["heldout_after"] = heldout_metrics(policy, held_ref, cfg.dpo.beta)
        if rank == 0:
            log.info("[%s] held-out pairs: reward accuracy %.3f -> %.3f, margin %.3f", cfg.stage,
                     summary["heldout_before"]["rewards/accuracy"], summary["heldout_after"]["rewards/accuracy"],
                     summary["heldout_after"]["rewards/margin"])

    final = out / "final"
    meta = {"stage": cfg.stage, "steps": trainer.state.global_step, **provenance,
            "train_loss": result.training_loss, "dpo": {k: summary[k] for k in summary if k != "log_history"},
            "config": config_to_dict(cfg), "git_commit": git_commit()}
    save_final_checkpoint(trainer, processor, final, meta, lora=tc.lora.enabled)
    if rank == 0:
        write_json(out / "train_summary.json", {
            **throughput.summary, "train_loss": result.training_loss, "wall_seconds": time.perf_counter() - t0,
            "skipped_records": dataset.skip_counts, **summary})
        log.info("[%s] wrote %s in %.1f s", cfg.stage, final, time.perf_counter() - t0)
    return final
