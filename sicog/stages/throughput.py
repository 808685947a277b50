"""Training throughput that counts only useful work: a line per logging step and the stage's
summary (train_summary.json).

`BatchMeter` counts what each training micro-batch holds as it is loaded (samples, real tokens,
token slots including padding, model FLOPs from `sicog.model.flops`) and the time spent waiting
for batches. `ThroughputCallback` turns the counts into rates, summed over all ranks: samples/s,
real tokens/s, model TFLOP/s, MFU (against the GPU's dense bf16 peak), padding share, data-loading
vs compute time, and peak memory.
"""

from __future__ import annotations

import logging
import resource
import time

import torch
from transformers import TrainerCallback

from sicog.data.packing import sequence_lengths
from sicog.model.flops import TrainingFlops

log = logging.getLogger("sicog.stages.trainer")  # the training log users already filter on

# Dense bf16 peak FLOP/s per device, for MFU (public spec sheets).
PEAK_BF16_FLOPS = {"A100": 312e12, "H100": 989e12, "H200": 989e12, "H800": 989e12, "A800": 312e12,
                   "L40S": 362e12, "A6000": 155e12}
COUNTS = ("samples", "tokens", "slots", "flops", "data_seconds")


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


class BatchMeter:
    """Running totals of this process: samples, real tokens, token slots, FLOPs, data wait."""

    def __init__(self, flops: TrainingFlops):
        self.flops_model = flops
        self.totals = dict.fromkeys(COUNTS, 0.0)

    def count(self, batch: dict) -> None:
        lengths = sequence_lengths(batch)
        pixels = batch.get("pixel_values")
        n_images = 0 if pixels is None else int(pixels.shape[0])
        self.totals["samples"] += len(lengths)
        self.totals["tokens"] += sum(lengths)
        self.totals["slots"] += int(batch["input_ids"].numel())
        self.totals["flops"] += self.flops_model.batch_flops(lengths, n_images)

    def timed(self, iterator):
        """`iterator`, with the time each `next` waits added to data_seconds."""
        meter = self

        class Timed:
            def __next__(self):
                t = time.perf_counter()
                try:
                    return next(iterator)
                finally:
                    meter.totals["data_seconds"] += time.perf_counter() - t

            def __iter__(self):
                return self

        return Timed()


def _summed_over_ranks(values: list[float], device) -> list[float]:
    """Element-wise sum over all ranks (every rank must call it: a collective)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


class ThroughputCallback(TrainerCallback):
    """A throughput line per logging step and a summary at the end of the stage."""

    def __init__(self, meter: BatchMeter, stage: str):
        self.meter = meter
        self.stage = stage
        self.summary: dict = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self.t0 = self.t_last = time.perf_counter()
        self.step0 = self.step_last = state.global_step
        self.start = self.last = dict(self.meter.totals)

    def _rates(self, dt: float, since: dict, args) -> dict:
        delta = [self.meter.totals[k] - since[k] for k in COUNTS]
        d = dict(zip(COUNTS, _summed_over_ranks(delta, args.device)))
        world = max(args.world_size, 1)
        rate = (lambda x: x / dt) if dt > 0 else (lambda x: 0.0)
        data = d["data_seconds"] / world  # mean over ranks
        out = {"samples_per_s": rate(d["samples"]), "tokens_per_s": rate(d["tokens"]),
               "tflops_per_s": rate(d["flops"]) / 1e12, "flops_per_token": d["flops"] / max(d["tokens"], 1),
               "padding_share": 1.0 - d["tokens"] / d["slots"] if d["slots"] else 0.0,
               "data_seconds": data, "compute_seconds": max(dt - data, 0.0),
               "data_share": data / dt if dt > 0 else 0.0, "peak_mem_gb": peak_memory_gb()}
        peak = device_peak_flops()
        if peak:
            out["mfu"] = rate(d["flops"]) / (peak * world)
        return out

    def on_log(self, args, state, control, logs=None, **kwargs):
        now = time.perf_counter()
        steps = state.global_step - self.step_last
        if steps <= 0:
            return
        r = self._rates(now - self.t_last, self.last, args)  # a collective: every rank takes part
        self.t_last, self.step_last, self.last = now, state.global_step, dict(self.meter.totals)
        if not state.is_world_process_zero:
            return
        extra = f" mfu {r['mfu']:.1%}" if "mfu" in r else ""
        loss = (logs or {}).get("loss")
        log.info("[%s] step %d/%d loss %s lr %.3g | %.1f samples/s %.0f tokens/s %.3g TFLOP/s%s | padding %.0f%% "
                 "data %.0f%% | peak mem %.2f GB", self.stage, state.global_step, state.max_steps,
                 f"{loss:.4f}" if isinstance(loss, float) else "-", (logs or {}).get("learning_rate", 0.0),
                 r["samples_per_s"], r["tokens_per_s"], r["tflops_per_s"], extra, 100 * r["padding_share"],
                 100 * r["data_share"], r["peak_mem_gb"])

    def on_train_end(self, args, state, control, **kwargs):
        dt = time.perf_counter() - self.t0
        self.summary = {"stage": self.stage, "steps": state.global_step - self.step0, "seconds": dt,
                        **self._rates(dt, self.start, args)}
        if state.is_world_process_zero:
            log.info("[%s] summary: %s", self.stage,
                     ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in self.summary.items()))
