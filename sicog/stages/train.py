"""`sicog train CONFIG.yaml`: one training stage on the HF Trainer. The stage is the YAML.

Warm-up (stage 0), modality alignment (stage 1), multimodal pre-training (stage 1.5) and visual
instruction tuning (stage 2) all run through `train_stage`; they differ only in their config:
which model to start from, which parts are tunable, which data, which hyper-parameters.

Outputs in `training.output_dir`:
  config.yaml                  the resolved config
  checkpoint-N/                HF Trainer checkpoints (full state, for resume)
  final/                       the stage's model: a stock LLaVA-HF folder + sicog_meta.json
  mm_projector.safetensors     the projector alone (with training.save_projector; stage 1)
  train_summary.json           throughput and loss summary
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path

import torch

from sicog.config import DataConfig, TrainConfig, check_config, config_to_dict, load_config, save_config
from sicog.utils.io import SicogError, file_fingerprint, git_commit, write_json
from sicog.utils.lock import check_writable

log = logging.getLogger(__name__)

DESCRIPTION = """Run one training stage (warm-up, align, pre-train, SFT) from a YAML config.

Works alone, under `torchrun --nproc_per_node K -m sicog train ...` and under the `deepspeed`
launcher (set training.deepspeed to configs/deepspeed/zero2.json or zero3.json). A re-run with
the same output_dir resumes from the newest complete checkpoint-N (training.resume: true).
Examples:
  sicog train configs/tiny/stage1_align.yaml --set training.max_steps=20
  torchrun --nproc_per_node 8 -m sicog train configs/qwen2_7b/stage15_pretrain.yaml \\
      --set model.language_model=/models/Qwen2-7B-Instruct
"""

_CKPT_RE = re.compile(r"^checkpoint-(\d+)$")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="stage YAML (see configs/tiny/ and configs/qwen2_7b/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value by dotted key, e.g. training.learning_rate=2e-5 "
                   "(repeatable; the value is parsed as YAML and type-checked)")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(TrainConfig, args.config, args.overrides)
    train_stage(cfg)
    return 0


def checkpoint_problem(ckpt: Path, step: int) -> str | None:
    """Why `ckpt` (checkpoint-`step`) cannot be resumed from, or None when it is whole.

    The Trainer writes trainer_state.json last; a run killed while saving leaves it missing or
    truncated, or earlier files short. Checked without loading anything big: trainer_state.json
    parses and names `step`; every safetensors file has a whole header covering its data; every
    torch file (optimizer, scheduler, RNG state, DeepSpeed state) is a zip archive with its
    central directory (written last); model weights (or DeepSpeed's global_step folder) exist.
    """
    import zipfile

    from sicog.model.weights import safetensors_problem

    try:
        state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no trainer_state.json (the save did not finish)"
    except (OSError, ValueError) as e:
        return f"trainer_state.json is unreadable ({e})"
    if not isinstance(state, dict) or state.get("global_step") != step:
        return f"trainer_state.json does not record global_step {step}"
    files = [p for p in ckpt.rglob("*") if p.is_file()]
    weights = [p for p in files if p.parent == ckpt and p.name.endswith((".safetensors", ".bin"))
               and p.name != "training_args.bin"]
    if not weights and not any(p.is_dir() for p in ckpt.glob("global_step*")):
        return "no model weights"
    for p in files:
        if p.name.endswith(".safetensors") and (why := safetensors_problem(p)):
            return why
        if p.name.endswith((".pt", ".pth", ".bin")) and not zipfile.is_zipfile(p):
            return f"{p.relative_to(ckpt)} is truncated or not a torch file"
    if not any(ckpt.glob("global_step*")) and not (ckpt / "optimizer.pt").is_file():
        return "no optimizer.pt"
    return None


def newest_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The highest checkpoint-N that finished saving whole (`checkpoint_problem`); a broken one
    is skipped with a warning for the one before it (and rewritten when training reaches it)."""
    out = Path(output_dir)
    if not out.is_dir():
        return None
    found = sorted(((int(m.group(1)), d) for d in out.iterdir()
                    if (m := _CKPT_RE.match(d.name)) and d.is_dir()), reverse=True)
    for step, d in found:
        problem = checkpoint_problem(d, step)
        if problem is None:
            return d
        log.warning("ignoring incomplete or corrupt checkpoint %s: %s", d, problem)
    return None


def _inputs(cfg: TrainConfig) -> dict[str, str | None]:
    """The model and data paths the stage reads, by config key (for `check_outputs_apart`). A file
    (projector, data) counts as itself: an output_dir that is its folder contains it."""
    m = cfg.model
    found = {"model.checkpoint": m.checkpoint, "model.vision_tower": m.vision_tower,
             "model.language_model": m.language_model, "model.mm_projector": m.mm_projector}
    for k, src in enumerate(cfg.data.sources):
        found[f"data.sources[{k}].path"] = src.path
        found[f"data.sources[{k}].image_folder"] = src.image_folder
    return found


def validate_stage(cfg: TrainConfig, more_inputs: dict[str, str | None] | None = None) -> None:
    """Settings checked, output_dir apart from every input (the stage's and `more_inputs`) and
    writable - before anything is loaded."""
    from sicog.utils.paths import check_outputs_apart

    check_config(cfg)  # every field, defaults and values set in code included (load_config checks those it reads)
    if not cfg.data.sources:
        raise SicogError("data.sources: at least one training file is required")
    if cfg.training.lora.enabled and cfg.training.deepspeed and "zero3" in Path(cfg.training.deepspeed).name:
        raise SicogError("training.lora with ZeRO-3 is not supported (the merge needs full weights); use zero2")
    check_outputs_apart({"training.output_dir": cfg.training.output_dir}, {**_inputs(cfg), **(more_inputs or {})})
    check_writable(cfg.training.output_dir, "training.output_dir:", kind="dir")
    from sicog.model.serving import model_config_problems

    for problem in model_config_problems(cfg.model):  # trainable, but `sicog serve` will refuse it
        log.warning("vLLM will not serve this model: %s", problem)


def data_provenance(data_cfg: DataConfig) -> dict:
    """What a stage trains on, for sicog_meta.json: every source's content hash (`file_fingerprint`)
    with its mixture weight (a share resolved to its weight), and `data_fingerprint`, one sha256
    over all of them and the epoch size. Paths are listed but not hashed: the same files moved
    elsewhere give the same fingerprint, any changed byte or weight another."""
    from sicog.data.mixture import source_weights

    sources = [{"path": src.path, "sha256": file_fingerprint(src.path), "weight": weight,
                "max_samples": src.max_samples}
               for src, weight in zip(data_cfg.sources, source_weights(data_cfg.sources))]
    hashed = [{k: v for k, v in s.items() if k != "path"} for s in sources]
    key = json.dumps({"sources": hashed, "num_samples": data_cfg.num_samples}, sort_keys=True)
    return {"data_fingerprint": hashlib.sha256(key.encode("utf-8")).hexdigest()[:16], "data_sources": sources}


def build_for_training(cfg: TrainConfig):
    """(TrainingArguments, model with its tunable parts set, processor) for a stage's config; shared
    by `sicog train` and `sicog dpo`."""
    from sicog.model.build import build_model
    from sicog.model.kernels import use_liger
    from sicog.model.parts import parameter_table, set_tunable_parts
    from sicog.stages.trainer import build_training_arguments, load_deepspeed_config

    tc = cfg.training
    # TrainingArguments first: under DeepSpeed ZeRO-3 it must exist before the model is built
    # so that from_pretrained partitions weights at load time.
    ds_cfg = load_deepspeed_config(tc.deepspeed, drop_optimizer=bool(tc.part_learning_rates))
    args = build_training_arguments(tc, ds_cfg, packed=cfg.data.packing, liger=use_liger(tc.liger_kernels))
    if ds_cfg is not None and args.world_size > 1:
        # ZeRO-3 partitions weights inside from_pretrained (deepspeed.zero.Init), which asks
        # deepspeed.comm for the world size: attach it to the process group the Trainer created.
        import deepspeed

        deepspeed.init_distributed(dist_backend=torch.distributed.get_backend())
    torch.manual_seed(tc.seed)
    # Build in the training precision: a 7B model in fp32 would need ~30 GB of host memory.
    model, processor = build_model(cfg.model, seed=tc.seed, dtype=torch.bfloat16 if args.bf16 else torch.float32)
    if tc.gradient_checkpointing and tc.lora.enabled:
        model.enable_input_require_grads()  # frozen embeddings + checkpointing need grad inputs
    model = set_tunable_parts(model, tc.tunable_parts, tc.lora if tc.lora.enabled else None,
                              tc.part_learning_rates)
    if int(os.environ.get("RANK", "0")) == 0:
        log.info("[%s] parameters:\n%s", cfg.stage, parameter_table(model))
    return args, model, processor


def start_output(cfg: TrainConfig) -> None:
    """Rank 0 makes the output folder and records the config - only once every input was read and
    checked, so a bad input leaves nothing behind."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    out = Path(cfg.training.output_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    except OSError as e:
        raise SicogError(f"training.output_dir: cannot write {out}: {e}") from None


def run_trainer(cfg: TrainConfig, trainer, model):
    """Attach the throughput log and train, resuming from the newest complete checkpoint; returns
    (TrainOutput, ThroughputCallback)."""
    from transformers import PrinterCallback

    from sicog.stages.throughput import ThroughputCallback

    throughput = ThroughputCallback(trainer.meter, cfg.stage)
    trainer.add_callback(throughput)
    trainer.remove_callback(PrinterCallback)  # our throughput line already carries loss and lr
    resume = newest_complete_checkpoint(cfg.training.output_dir) if cfg.training.resume else None
    if resume is not None:
        log.info("[%s] resuming from %s", cfg.stage, resume)
    return trainer.train(resume_from_checkpoint=str(resume) if resume else None), throughput


def output_dir_lock(cfg: TrainConfig):
    """Rank 0 holds `output_dir.lock` (sicog.utils.lock) for the whole stage: a second run on the same
    output_dir (a symlink to it included) stops at once, naming the first one's pid."""
    import contextlib

    from sicog.utils.lock import output_lock

    if int(os.environ.get("RANK", "0")) != 0:
        return contextlib.nullcontext()
    return output_lock(cfg.training.output_dir, "training.output_dir:")


def train_stage(cfg: TrainConfig) -> Path:
    """Train one stage and write `output_dir/final`; returns that path."""
    validate_stage(cfg)  # settings, output apart from the inputs and writable: before anything is loaded
    with output_dir_lock(cfg):
        return _train_stage(cfg)


def _train_stage(cfg: TrainConfig) -> Path:
    from sicog.data.dataset import DataCollator, build_train_dataset, run_preflight
    from sicog.data.packing import PackingCollator, pack_dataset
    from sicog.data.slices import TrainingResize
    from sicog.model.parts import param_groups
    from sicog.stages.trainer import SicogTrainer

    t0 = time.perf_counter()
    tc = cfg.training
    out = Path(tc.output_dir)
    rank = int(os.environ.get("RANK", "0"))
    args, model, processor = build_for_training(cfg)

    dataset = build_train_dataset(cfg.data, processor, seed=tc.seed,
                                  training_resize=TrainingResize.of(cfg.model.uhd) if cfg.model.arch == "uhd" else None)
    provenance = data_provenance(cfg.data) if args.should_save else {}  # the saving rank's meta
    collator = PackingCollator(processor) if cfg.data.packing else DataCollator(processor)
    # Fails loudly (never warns) when image tokens != image features, no label is unmasked, or
    # the masked part is not the prompt: a wrong chat template must not train for hours.
    run_preflight(dataset, collator, processor, model, batch_size=tc.per_device_train_batch_size)
    if cfg.data.packing:  # checked above as a packed batch of the same samples
        dataset = pack_dataset(dataset, cfg.data, tc.per_device_train_batch_size)
    start_output(cfg)

    def groups(m):
        return param_groups(m, tc.learning_rate, tc.part_learning_rates, tc.weight_decay)

    trainer = SicogTrainer(
        model=model, args=args, train_dataset=dataset, data_collator=collator,
        processing_class=processor.tokenizer,
        param_groups_fn=groups if tc.part_learning_rates else None,
        lengths=getattr(dataset, "lengths", None),
        group_by_length=cfg.data.group_by_length and not cfg.data.packing,  # packs: shuffled, not grouped
    )
    result, throughput = run_trainer(cfg, trainer, model)

    final = out / "final"
    meta = {"stage": cfg.stage, "steps": trainer.state.global_step, **provenance,
            "train_loss": result.training_loss, "config": config_to_dict(cfg), "git_commit": git_commit()}
    save_final_checkpoint(trainer, processor, final, meta, lora=tc.lora.enabled)
    if tc.save_projector and rank == 0:
        from sicog.model.checkpoint import save_projector
        save_projector(trainer.model, out / "mm_projector.safetensors")
    if rank == 0:
        write_json(out / "train_summary.json", {
            **throughput.summary, "train_loss": result.training_loss,
            "wall_seconds": time.perf_counter() - t0,
            "skipped_records": getattr(dataset, "skip_counts", {}),
        })
        log.info("[%s] wrote %s in %.1f s", cfg.stage, final, time.perf_counter() - t0)
    return final


def save_final_checkpoint(trainer, processor, final: Path, meta: dict, lora: bool) -> None:
    """Write the stage's model as a complete, stock-loadable checkpoint folder (atomic).

    Under DeepSpeed every rank takes part in gathering the weights (ZeRO-3 partitions them);
    rank 0 writes the folder.
    """
    from sicog.model.checkpoint import save_checkpoint
    from sicog.model.parts import merge_lora

    state_dict = None
    if trainer.is_deepspeed_enabled and not lora:
        try:
            state_dict = trainer.accelerator.get_state_dict(trainer.deepspeed)
        except ValueError as e:  # ZeRO-3 without stage3_gather_16bit_weights_on_model_save
            raise SicogError(f"{trainer.args.deepspeed}: cannot gather ZeRO-3 weights for the final "
                             f"checkpoint; set zero_optimization.stage3_gather_16bit_weights_on_model_save "
                             f"to true ({e})") from None
    if trainer.args.should_save:
        model = trainer.accelerator.unwrap_model(trainer.model)
        if lora:  # without ZeRO-3 (checked up front) parameters are whole on every rank
            model = merge_lora(model)
        save_checkpoint(model, processor, final, meta, state_dict=state_dict)
    trainer.accelerator.wait_for_everyone()
