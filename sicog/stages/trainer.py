"""HF Trainer pieces shared by every training stage: arguments, per-part learning rates,
length-grouped sampling over precomputed lengths, and the batch counts behind throughput logging
(`sicog.stages.throughput`).

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
import sys
from pathlib import Path

import torch
from torch.utils.data import Sampler
from transformers import Trainer, TrainingArguments
from transformers.trainer_pt_utils import get_length_grouped_indices

from sicog.config import TrainingConfig
from sicog.model.flops import TrainingFlops
from sicog.stages.throughput import BatchMeter
from sicog.utils.io import SicogError

log = logging.getLogger(__name__)


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


def build_training_arguments(cfg: TrainingConfig, deepspeed_cfg: dict | None, packed: bool = False,
                             liger: bool = False) -> TrainingArguments:
    """TrainingArguments for one stage: cosine + warmup ratio, fp32 on CPU, bf16/tf32 on GPU.
    `packed`: each device batch is one pack (sicog.data.packing); `liger`: transformers applies
    the Liger kernels (resolved by sicog.model.kernels.use_liger)."""
    bf16, tf32 = resolve_precision(cfg)
    return TrainingArguments(
        output_dir=cfg.output_dir,
        per_device_train_batch_size=1 if packed else cfg.per_device_train_batch_size,
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
        use_liger_kernel=liger,
        # the loss of an optimizer step: summed over all its label tokens on all ranks, divided by
        # their count (not a mean of per-micro-batch or per-rank means); the default, pinned
        average_tokens_across_devices=True,
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
        self.meter = BatchMeter(TrainingFlops.of(self.model))  # throughput counts (sicog.stages.throughput)

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

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        # every micro-batch of an optimizer step passes here once: count it, time the wait for it
        batches, num_items = super().get_batch_samples(self.meter.timed(epoch_iterator), num_batches, device)
        for batch in batches:
            self.meter.count(batch)
        return batches, num_items
