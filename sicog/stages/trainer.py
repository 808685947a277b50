"""HF Trainer pieces shared by every training stage: arguments, per-part learning rates,
length-grouped sampling over precomputed lengths, and throughput logging.

Exact resume: the Trainer restores weights, optimizer, scheduler and the RNG states
(`rng_state.pth`: dropout) and skips the batches already trained in the resumed epoch. That
yields the uninterrupted run's batches only if the sampler's order is a function of (seed,
epoch) alone: `EpochLengthGroupedSampler` draws each epoch's order from a generator seeded with
both, never from state carried over from earlier epochs (transformers' LengthGroupedSampler with
a generator does, so a run resumed in its second epoch would replay the first epoch's order).
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import Sampler
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import get_length_grouped_indices

from sicog.config import TrainingConfig
from sicog.utils.io import SicogError

log = logging.getLogger(__name__)

# Dense bf16 peak FLOP/s per device, for MFU (public spec sheets).
PEAK_BF16_FLOPS = {"A100": 312e12, "H100": 989e12, "H200": 989e12, "H800": 989e12, "A800": 312e12,
                   "L40S": 362e12, "A6000": 155e12}


def resolve_precision(cfg: TrainingConfig) -> tuple[bool, bool]:
    """(bf16, tf32) from true / false / "auto": auto means on for a CUDA device that supports it,
    true on a device without support is an error."""
    cuda = torch.cuda.is_available()

    def flag(value: bool | str, name: str, supported: bool) -> bool:
        if value == "auto":
            return supported
        if value is True:
            if not supported:
                raise SicogError(f"training.{name}: true, but this device does not support it (use auto)")
            return True
        if value is False:
            return False
        raise SicogError(f"training.{name}: must be one of true, false, auto, got {value!r}")

    bf16 = flag(cfg.bf16, "bf16", cuda and torch.cuda.is_bf16_supported())
    tf32 = flag(cfg.tf32, "tf32", cuda and torch.cuda.get_device_capability()[0] >= 8)
    return bf16, tf32


def load_deepspeed_config(path: str | None, drop_optimizer: bool) -> dict | None:
    """Read a DeepSpeed JSON. With per-part learning rates the DS optimizer section is dropped so
    that the Trainer's own AdamW (built from our parameter groups) is used under ZeRO instead."""
    if not path:
        return None
    p = Path(path)
    if not p.is_file():
        raise SicogError(f"training.deepspeed: file not found: {path}")
    try:
        cfg = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise SicogError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    if drop_optimizer and "optimizer" in cfg:
        log.info("per-part learning rates set: using the Trainer's AdamW instead of %s's optimizer", path)
        cfg.pop("optimizer")
    return cfg


def build_training_arguments(cfg: TrainingConfig, deepspeed_cfg: dict | None) -> TrainingArguments:
    """TrainingArguments for one stage: cosine + warmup ratio, fp32 on CPU, bf16/tf32 on GPU."""
    bf16, tf32 = resolve_precision(cfg)
    return TrainingArguments(
        output_dir=cfg.output_dir,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        weight_decay=cfg.weight_decay,
        lr_scheduler_type=cfg.lr_scheduler_type,
        max_grad_norm=cfg.max_grad_norm,
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=bf16,
        tf32=tf32 or None,
        activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        deepspeed=deepspeed_cfg,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        report_to=cfg.report_to or "none",
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,  # our collator needs every field
        dataloader_num_workers=0,
        disable_tqdm=not sys.stderr.isatty(),
    )


class EpochLengthGroupedSampler(Sampler[int]):
    """transformers' length-grouped order (random megabatches, each sorted by length) as a pure
    function of (seed, epoch), so that a resumed run rebuilds any epoch's order exactly.

    Epoch k's order is the (k+1)-th draw of one generator seeded with `seed` - the very orders
    transformers' LengthGroupedSampler gives an uninterrupted run - replayed from the seed
    (k cheap permutations) instead of carried in a generator that a restart loses. The Trainer
    calls `set_epoch` before each epoch (through accelerate's data loader, also after
    `skip_first_batches`); without it, each full pass moves to the next epoch."""

    def __init__(self, batch_size: int, lengths: list[int], seed: int):
        self.batch_size = batch_size
        self.lengths = list(lengths)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def order(self, epoch: int) -> list[int]:
        """The indices of one epoch, in training order."""
        g = torch.Generator().manual_seed(self.seed)
        for _ in range(epoch):  # the draws of the epochs before
            get_length_grouped_indices(self.lengths, self.batch_size, generator=g)
        return get_length_grouped_indices(self.lengths, self.batch_size, generator=g)

    def __iter__(self):
        yield from self.order(self.epoch)
        self.epoch += 1


class SicogTrainer(Trainer):
    """Trainer with per-part learning rates, length grouping from known lengths, token counting."""

    def __init__(self, *args, param_groups_fn=None, lengths: list[int] | None = None,
                 group_by_length: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._param_groups_fn = param_groups_fn
        self._lengths = lengths
        self._group_by_length = group_by_length
        self.tokens_seen = 0  # non-padding tokens this process trained on

    def create_optimizer(self, model=None):
        if self.optimizer is None and self._param_groups_fn is not None:
            groups = self._param_groups_fn(self.model if model is None else model)
            self.optimizer = torch.optim.AdamW(groups, lr=self.args.learning_rate, betas=(
                self.args.adam_beta1, self.args.adam_beta2), eps=self.args.adam_epsilon)
            return self.optimizer
        return super().create_optimizer(model)

    def _get_train_sampler(self, train_dataset=None):
        if self._group_by_length and self._lengths is not None:
            # Known lengths: never iterate the dataset (that would load every image).
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return EpochLengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps, self._lengths, seed)
        return super()._get_train_sampler(train_dataset)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        model = self.model if model is None else model
        if self.is_deepspeed_enabled or hasattr(model, "peft_config"):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        # transformers 5 saves LLaVA weights in the classic key layout (vision_tower.*,
        # language_model.model.*) but the Trainer's resume loads the file without converting the
        # keys, so the weights would silently stay at their initial values. from_pretrained
        # converts them; copy its state into the model being trained, strictly.
        reference = type(model).from_pretrained(resume_from_checkpoint,
                                                dtype=next(model.parameters()).dtype)
        model.load_state_dict(reference.state_dict(), strict=True)
        log.info("restored model weights from %s", resume_from_checkpoint)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "attention_mask" in inputs:
            self.tokens_seen += int(inputs["attention_mask"].sum())
        return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)


def peak_memory_gb() -> float:
    """Peak accelerator memory (GPU) or peak resident set size (CPU) of this process, in GB."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 1e9
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss_kb / 1e6  # Linux reports KiB


def device_peak_flops() -> float | None:
    """Peak bf16 FLOP/s of the current GPU (None on CPU or an unknown GPU)."""
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


class ThroughputCallback(TrainerCallback):
    """A throughput line per logging step and a summary at the end of the stage."""

    def __init__(self, trainer: SicogTrainer, n_params: int, stage: str):
        self.trainer = trainer
        self.n_params = n_params
        self.stage = stage
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.summary: dict = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = self.t_last = time.perf_counter()
        self.step0 = self.step_last = state.global_step
        self.tok_last = self.trainer.tokens_seen

    def _rates(self, dt: float, steps: int, tokens: int, args) -> dict:
        samples = steps * args.per_device_train_batch_size * args.gradient_accumulation_steps * self.world
        tok = tokens * self.world  # every rank sees a similar token count
        out = {"samples_per_s": samples / dt if dt > 0 else 0.0,
               "tokens_per_s": tok / dt if dt > 0 else 0.0,
               "peak_mem_gb": peak_memory_gb()}
        peak = device_peak_flops()
        if peak:
            # 6·N·tokens: forward + backward FLOPs of a dense transformer
            out["mfu"] = 6 * self.n_params * out["tokens_per_s"] / (peak * self.world)
        return out

    def on_log(self, args, state, control, logs=None, **kwargs):
        now = time.perf_counter()
        steps = state.global_step - self.step_last
        if steps <= 0 or not state.is_world_process_zero:
            return
        r = self._rates(now - self.t_last, steps, self.trainer.tokens_seen - self.tok_last, args)
        extra = f" mfu {r['mfu']:.1%}" if "mfu" in r else ""
        loss = (logs or {}).get("loss")
        log.info("[%s] step %d/%d loss %s lr %.3g | %.1f samples/s %.0f tokens/s peak mem %.2f GB%s",
                 self.stage, state.global_step, state.max_steps,
                 f"{loss:.4f}" if isinstance(loss, float) else "-", (logs or {}).get("learning_rate", 0.0),
                 r["samples_per_s"], r["tokens_per_s"], r["peak_mem_gb"], extra)
        self.t_last, self.step_last, self.tok_last = now, state.global_step, self.trainer.tokens_seen

    def on_train_end(self, args, state, control, **kwargs):
        dt = time.perf_counter() - self.t0
        self.summary = {"stage": self.stage, "steps": state.global_step - self.step0,
                        "seconds": dt, **self._rates(dt, state.global_step - self.step0,
                                                     self.trainer.tokens_seen, args)}
        if state.is_world_process_zero:
            log.info("[%s] summary: %s", self.stage,
                     ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in self.summary.items()))
