"""`sicog run PIPELINE.yaml --estimate`: what the loop will cost, per step and in total, before
anything runs (docs/estimate.md states every assumption).

Per step: the tokens it processes (images counted as the LM tokens of the step's arch), its model
FLOPs (sicog.model.flops, on the model sized from its configs by sicog.model.size), GPU-hours at
a stated MFU of a stated GPU, the wall time on the step's launcher GPUs, per-GPU memory of the
model states under the step's ZeRO stage with an activation estimate beside it, and for the API
annotation of the CoD warm-up set its price. The plan is read through `build_plan` only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sicog.config import ModelConfig, config_from_mapping
from sicog.model.size import (
    ModelSize,
    config_from_fields,
    folder_config,
    model_size,
    model_state_bytes,
    part_configs,
)
from sicog.pipeline import estimate_data as ed
from sicog.pipeline.estimate_workload import activation_bytes, image_tokens, training_workload
from sicog.pipeline.hooks import model_configs_of
from sicog.pipeline.step import Step
from sicog.pipeline.tasks import TASKS
from sicog.utils.fields import setting
from sicog.utils.io import SicogError

# dense bf16 peak FLOP/s (vendors' data sheets, without sparsity) and memory (GB) of the GPU types
GPUS = {"a100-40gb": (312e12, 40), "a100-80gb": (312e12, 80), "h100-80gb": (989e12, 80), "h200": (989e12, 141)}


@dataclass
class EstimateOptions:
    """The flags of `--estimate` (declared once: `sicog.pipeline.cli` adds them from these fields)."""

    gpu: str = setting("a100-80gb", choices=tuple(GPUS))
    mfu: float = setting(0.4, min=0, max=1, min_exclusive=True)  # training: model FLOPs / peak
    sample_mfu: float = setting(0.1, min=0, max=1, min_exclusive=True)  # generation is memory-bound: far lower
    api_input_price: float = setting(2.5, min=0)  # USD per 1M input tokens (gpt-4o, OpenAI's list price)
    api_output_price: float = setting(10.0, min=0)  # USD per 1M output tokens

    HELP = {
        "gpu": "GPU type whose dense bf16 peak the GPU-hours use",
        "mfu": "model FLOPs utilisation assumed for training steps (0-1]",
        "sample_mfu": "model FLOPs utilisation assumed for sampling (generation is memory-bound) (0-1]",
        "api_input_price": "API price, USD per 1M input tokens (the default: gpt-4o list price)",
        "api_output_price": "API price, USD per 1M output tokens (the default: gpt-4o list price)",
    }


@dataclass
class StepEstimate:
    name: str
    kind: str
    tokens: float | None = None
    flops: float | None = None
    gpu_hours: float | None = None
    gpus: int = 1
    state_gb: float | None = None  # model states per GPU
    activation_gb: float | None = None
    api_usd: float | None = None
    note: str = ""

    @property
    def wall_hours(self) -> float | None:
        return None if self.gpu_hours is None else self.gpu_hours / self.gpus


@dataclass
class Estimate:
    rows: list[StepEstimate]
    options: EstimateOptions
    notes: list[str] = field(default_factory=list)

    def total(self, attr: str) -> float:
        return sum(getattr(r, attr) or 0.0 for r in self.rows)


def cell(x: float | None, width: int, kind: str = "g") -> str:
    """A cell: '-' for nothing; tokens with a K/M/G suffix; other figures with 3 significant digits."""
    if x is None:
        return "-".rjust(width)
    if kind == "count":
        for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
            if abs(x) >= div:
                return f"{x / div:.1f}{unit}".rjust(width)
        return f"{x:.0f}".rjust(width)
    return f"{x:.3g}".rjust(width)


def _gb(n: float) -> float:
    return n / 2**30


class Estimator:
    """Walks the plan's steps in order, carrying data sizes and model configs from step to step."""

    def __init__(self, planner, options: EstimateOptions):
        self.planner, self.cfg, self.options = planner, planner.cfg, options
        self.spec = planner.cfg.estimate
        self.derived: dict[str, ed.DataSize] = {}  # output path -> its size
        self.models: dict[str, tuple] = {}  # checkpoint path -> (vision config, text config)
        self.arches: dict[str, ModelConfig] = {}  # checkpoint path -> the model settings it was trained with
        self.parts: dict[str, object] = {}  # part folder -> config (a plugin's step writes it)
        self.measured: dict[tuple, ed.DataSize] = {}
        self.sizes: dict[tuple, ModelSize] = {}
        self.notes: list[str] = []
        self.unmodelled: set[str] = set()  # outputs of steps the estimator does not model
        self.data_keys = {str(Path(v).resolve()): k for k, v in vars(planner.data).items()
                          if isinstance(v, str) and k not in ("world", "image_folder", "benchmark")}
        self.generated: dict[str, float] = {}
        self.stated: set[str] = set()  # data keys sized by estimate.data

    # ------------------------------------------------------------------ inputs
    def data_size(self, path: str, step: str, image_folder: str | None = None, read_sizes: bool = False) -> ed.DataSize:
        path = str(Path(path).resolve())
        if path in self.derived:
            return self.derived[path]
        if Path(path).is_file():
            key = (path, read_sizes)
            if key not in self.measured:
                self.measured[key] = ed.measure_file(path, image_folder, read_sizes)
            return self.measured[key]
        key = self.data_keys.get(path)
        if key in self.spec.data:
            s = self.spec.data[key]
            self.stated.add(key)
            return ed.DataSize.stated(s.items, s.text_tokens, s.reply_tokens, s.images, f"stated: estimate.data.{key}")
        if path in self.unmodelled:
            self.notes.append(f"{step}: {path} is written by a step not estimated here; counted as empty")
            return ed.DataSize.empty("unknown")
        return ed.require(None, path, key, step)

    def part_config(self, part: str, path: str, step: str):
        if str(Path(path).resolve()) in self.parts:
            return self.parts[str(Path(path).resolve())]
        cfg = folder_config(path, part, f"models.{part}")
        if cfg is None and part in self.spec.models:
            cfg = config_from_fields(self.spec.models[part], "clip_vision_model" if part == "vision_tower" else "qwen2")
        if cfg is None:
            raise SicogError(f"estimate: step {step}: {path} has no config.json yet; state its config.json "
                             f"fields as estimate.models.{part}")
        return cfg

    def configs(self, model: ModelConfig, step: str) -> tuple:
        if model.checkpoint:
            path = str(Path(model.checkpoint).resolve())
            if path in self.models:
                return self.models[path]
            found = part_configs(model, f"step {step}: model")
            if found is None:
                raise SicogError(f"estimate: step {step}: model checkpoint {model.checkpoint} does not exist yet "
                                 "and no step before it writes it")
            return found
        if model.preset:
            return part_configs(model)
        return self.part_config("vision_tower", model.vision_tower, step), \
            self.part_config("language_model", model.language_model, step)

    def model_size(self, configs: tuple, parts: list[str], feature_layer: int) -> ModelSize:
        key = (id(configs[0]), id(configs[1]), tuple(sorted(parts)), feature_layer)
        if key not in self.sizes:
            self.sizes[key] = model_size(configs[0], configs[1], parts, feature_layer)
        return self.sizes[key]

    def generated_tokens(self, task: str, step: str) -> float:
        stated = getattr(self.spec.generated_tokens, task)
        if stated is not None:
            return stated
        if task not in self.generated:
            key = TASKS[task].annotations
            path = getattr(self.planner.data, key)
            if not path or not Path(path).is_file():
                raise SicogError(f"estimate: step {step}: data.{key} is absent, so the new tokens per candidate "
                                 f"cannot be measured; state estimate.generated_tokens.{task}")
            found = ed.format_replies(path, task)
            if not found.items:
                raise SicogError(f"estimate: step {step}: data.{key} holds no reply in the {task} step format; "
                                 f"state estimate.generated_tokens.{task}")
            self.generated[task] = found.reply_tokens
        return self.generated[task]

    def gpus(self, kind: str) -> int:
        # a DPO step runs with launchers.dpo, else the training launcher (sicog.pipeline.post_training)
        launcher = self.cfg.launchers.get(kind) or self.cfg.launcher_for("train" if kind == "dpo" else kind)
        return launcher.nproc_per_node * launcher.nnodes

    def hours(self, flops: float, mfu: float) -> float:
        return flops / (GPUS[self.options.gpu][0] * mfu) / 3600

    # ------------------------------------------------------------------ steps
    def estimate(self) -> Estimate:
        rows = [self.annotation()]
        for step in self.planner.steps:
            rows.append(self.step(step))
            for path, cfg in model_configs_of(step).items():
                self.parts[str(Path(path).resolve())] = cfg
        measured = sorted({path for path, _ in self.measured})
        if measured:
            self.notes.append(f"measured from {len(measured)} data file(s): {', '.join(measured)}")
        if self.stated:
            self.notes.append(f"stated in estimate.data (files absent): {', '.join(sorted(self.stated))}")
        return Estimate([r for r in rows if r is not None], self.options, self.notes)

    def step(self, step: Step) -> StepEstimate:
        if step.kind in ("train", "dpo"):
            return self.train(step)
        if step.kind == "sample":
            return self.sample(step)
        if step.kind == "curate":
            return self.curate(step)
        if step.kind == "data" and step.role == "pairs":
            return self.pairs(step)
        if step.kind == "data" and step.role in ("head", "select", "uncurated"):
            return self.data_step(step)
        self.unmodelled.update(str(Path(p).resolve()) for p in step.outputs.values())
        return StepEstimate(step.name, step.kind, note="not estimated")

    def train(self, step: Step) -> StepEstimate:
        """A training step; a DPO step trains on both replies of each pair and scores both with its
        frozen reference (a forward each, whether precomputed or run beside the policy)."""
        dpo = step.kind == "dpo"
        t = step.params["dpo" if dpo else "train"]
        model = config_from_mapping(ModelConfig, t["model"], f"step {step.name}: model")
        training, data = t["training"], t["data"]
        configs = self.configs(model, step.name)
        self.models[str(Path(step.outputs["checkpoint"]).resolve())] = configs
        self.arches[str(Path(step.outputs["checkpoint"]).resolve())] = model
        parts = training["tunable_parts"]
        size = self.model_size(configs, parts, model.vision_feature_layer)
        gpus = self.gpus(step.kind)
        read = model.arch == "uhd"
        sources = [(s, self.data_size(s["path"], step.name, s.get("image_folder"), read)) for s in data["sources"]]
        records = [min(d.records, s.get("max_samples") or math.inf) for s, d in sources]
        text_share = (step.params.get("mixture") or {}).get("text_only_ratio", 0.0)
        text_path = str(Path(self.planner.data.text_only).resolve()) if self.planner.data.text_only else None
        is_text = [str(Path(s["path"]).resolve()) == text_path and text_share > 0 for s, _ in sources]
        weights = np.array(records, float)  # the pipeline weights sources by their records (actions.py)
        if any(is_text) and not all(is_text) and weights[~np.array(is_text)].sum() > 0:
            image_total = weights[~np.array(is_text)].sum()
            weights = np.where(is_text, image_total * text_share / (1 - text_share) / sum(is_text), weights)
        samples = data.get("num_samples") or sum(records)
        if training.get("max_steps", -1) > 0:
            samples = training["max_steps"] * training["per_device_train_batch_size"] * \
                training["gradient_accumulation_steps"] * gpus
        else:
            samples *= training["num_train_epochs"]
        work = training_workload(size, model, [(d, w) for (_, d), w in zip(sources, weights)], samples,
                                 data["max_length"])
        flops = work.flops(size)
        if dpo:  # chosen + rejected: two sequences per pair, each trained and scored by the reference
            f = size.forward
            flops = 2 * flops + 2 * (f.lm_per_token * work.tokens + f.lm_per_pair * work.pairs + f.per_image * work.passes)
        zero = self.zero_stage(training.get("deepspeed"), step.name)
        states = model_state_bytes(size.params, size.trainable, zero, gpus, size.largest_module)
        if dpo and t["dpo"]["reference"] != "precomputed":  # a frozen copy in bf16 (partitioned under ZeRO-3)
            states += model_state_bytes(size.params, 0, zero, gpus)
        per_device = training["per_device_train_batch_size"]
        micro = data.get("packing_tokens") if data.get("packing") else None
        micro_tokens = micro or per_device * (1 + dpo) * (work.tokens / samples if samples else 0.0)
        micro_images = per_device * (1 + dpo) * (work.passes / samples if samples else 0.0)
        act = activation_bytes(size, micro_tokens, micro_images, parts, training.get("gradient_checkpointing", False))
        hours = self.hours(flops, self.options.mfu)
        return StepEstimate(step.name, step.kind, work.tokens * (1 + dpo), flops, hours, gpus, _gb(states), _gb(act),
                            note=f"{samples:,.0f} {'pairs' if dpo else 'samples'}, ZeRO-{zero}, {cell(size.trainable, 0, 'count')} of "
                                 f"{cell(size.params, 0, 'count')} params train")

    def zero_stage(self, deepspeed: str | None, step: str) -> int:
        if not deepspeed:
            return 0
        try:
            return int(json.loads(Path(deepspeed).read_text(encoding="utf-8"))["zero_optimization"]["stage"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SicogError(f"estimate: step {step}: training.deepspeed {deepspeed}: no zero_optimization.stage "
                             f"readable ({e})") from None

    def sample(self, step: Step) -> StepEstimate:
        p = step.params["sample"]
        trained = self.arches.get(str(Path(p["model"]).resolve()))  # arch, uhd and feature layer of its training
        model = replace(trained or ModelConfig(), checkpoint=p["model"], preset=None, vision_tower=None,
                        language_model=None, mm_projector=None)
        configs = self.configs(model, step.name)
        size = self.model_size(configs, ["projector"], model.vision_feature_layer)
        items = self.data_size(p["data"], step.name, p.get("image_folder"), read_sizes=model.arch == "uhd")
        generated = self.generated_tokens(step.task, step.name)
        n = p["n"]
        self.derived[str(Path(step.outputs["candidates"]).resolve())] = ed.candidates(
            items, generated, f"derived: {step.name}")
        img_tokens, img_passes = image_tokens(size, model, items)
        length = items.text + img_tokens + generated
        fwd = size.forward
        per_item = n * (fwd.lm_per_token * length + fwd.lm_per_pair * length * (length + 1) / 2
                        + fwd.per_image * img_passes)
        flops = items.records * items.mean(per_item)
        tokens = items.records * n * items.mean(length)
        gpus = self.gpus("sample")
        return StepEstimate(step.name, "sample", tokens, flops, self.hours(flops, self.options.sample_mfu), gpus,
                            _gb(2 * size.params), None,
                            note=f"{items.records:,.0f} items x {n} candidates x {generated:.0f} new tokens; memory: bf16 weights")

    def curate(self, step: Step) -> StepEstimate:
        p = step.params["curate"]
        cands = self.derived.get(str(Path(p["candidates"]).resolve()))
        if cands is None:
            return StepEstimate(step.name, "curate", note="candidates not estimated")
        # with keep_fraction, curate keeps every item (threshold -1) and a select step takes the fraction
        keep = 1.0 if (p.get("threshold") or 0.0) < 0 else self.spec.curation_keep
        self.derived[str(Path(step.outputs["curated"]).resolve())] = ed.chosen(cands, keep, f"derived: {step.name}")
        return StepEstimate(step.name, "curate", tokens=cands.records * cands.mean(cands.reply),
                            note=f"keeps {keep:.0%} of {cands.records:,.0f} items (sentence encoder: not counted)")

    def pairs(self, step: Step) -> StepEstimate:
        """`sicog pairs`: one pair per curated item and pair source, less the held-out share, at most max_pairs."""
        p = step.params["pairs"]
        curated = self.derived.get(str(Path(p["curated"]).resolve()))
        if curated is None:
            self.unmodelled.update(str(Path(v).resolve()) for v in step.outputs.values())
            return StepEstimate(step.name, "data", note="curated data not estimated")
        sources = int(p["curated_pairs"]) + int(bool(p.get("corrupted")))
        n = curated.records * sources * (1 - p["heldout_fraction"])
        n = min(n, p["max_pairs"]) if p.get("max_pairs") else n
        self.derived[str(Path(step.outputs["pairs"]).resolve())] = curated.scaled(n, f"derived: {step.name}")
        self.unmodelled.add(str(Path(step.outputs["heldout"]).resolve()))
        return StepEstimate(step.name, "data", note=f"{n:,.0f} training pairs")

    def data_step(self, step: Step) -> StepEstimate:
        in_path = step.inputs[{"head": "records", "select": "curated", "uncurated": "candidates"}[step.role]]
        out_path = str(Path(next(iter(step.outputs.values()))).resolve())
        src = self.derived.get(str(Path(in_path).resolve()))
        if step.role == "head":
            src = src or self.data_size(in_path, step.name)
            out = src.scaled(min(src.records, step.params["max_items"]), f"derived: {step.name}")
        elif src is None:
            self.unmodelled.add(out_path)
            return StepEstimate(step.name, "data", note="input not estimated")
        elif step.role == "select":
            out = src.scaled(src.records * step.params["keep_fraction"], f"derived: {step.name}")
        else:  # uncurated: one candidate per item, as many items as curation keeps (matched) or all
            share = self.spec.curation_keep if step.params.get("items") == "matched" else 1.0
            out = ed.chosen(src, share, f"derived: {step.name}")
        self.derived[out_path] = out
        return StepEstimate(step.name, "data", note=f"{out.records:,.0f} records")

    def annotation(self) -> StepEstimate | None:
        """The API cost of the CoD warm-up set (`sicog annotate cod`, before the loop)."""
        from sicog.data.formats import CAPTION_REQUEST
        from sicog.stages.annotation.prompt import PROMPT_TOKENS, estimate_image_tokens

        path, spec = self.planner.data.annotated_captions, self.spec.annotation
        if not path:
            return None
        if Path(path).is_file():
            found = ed.format_replies(path, "captions", self.planner.data.image_folder, read_sizes=True)
            items = spec.items if spec.items is not None else found.items
            reply, question = found.reply_tokens, found.question_tokens
            caption = spec.source_caption_tokens if spec.source_caption_tokens is not None else found.described_tokens
            images = [estimate_image_tokens(*s) if s else spec.image_tokens for s in found.images]
            image = float(np.mean(images)) if images else spec.image_tokens
        else:
            if spec.items is None or spec.source_caption_tokens is None:
                return StepEstimate("annotate_cod", "api", note="data.annotated_captions absent: state "
                                    "estimate.annotation.items and source_caption_tokens")
            items, caption, image = spec.items, spec.source_caption_tokens, spec.image_tokens
            stated = self.spec.data.get("annotated_captions")
            reply = self.spec.generated_tokens.captions or (stated.reply_tokens if stated else 0.0)
            question = ed.text_tokens(CAPTION_REQUEST)
        tokens_in = items * (PROMPT_TOKENS + question + caption + image)
        tokens_out = items * reply
        usd = (tokens_in * self.options.api_input_price + tokens_out * self.options.api_output_price) / 1e6
        return StepEstimate("annotate_cod", "api", tokens_in + tokens_out, api_usd=usd,
                            note=f"{items:,} CoD items: {cell(tokens_in, 0, 'count')} tokens in, "
                                 f"{cell(tokens_out, 0, 'count')} out")


def estimate_plan(planner, options: EstimateOptions | None = None) -> Estimate:
    """The estimate of every step of a built plan (see the module docstring)."""
    return Estimator(planner, options or EstimateOptions()).estimate()
