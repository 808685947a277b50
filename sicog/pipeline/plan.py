"""The step graph of `sicog run`, following the paper step by step (docs/method.md).

    [standins]            stand-in CLIP tower + LM for a data bundle (a plugin's step, pipeline/hooks.py)
    align                 stage 1: projector only, on brief captions (from the ORIGINAL LM + tower)
    sft_base              stage 2 on top of stage 1 = the base model = arm `base` (when none given)
    evaluate_base
    r{k}/warmup_perception, r{k}/warmup_reasoning     stage 0 from the round's base (CoD / CoT)
    r{k}/sample_captions,   r{k}/sample_reasoning     N candidates per unlabeled item
    r{k}/curate_captions,   r{k}/curate_reasoning     self-consistency
    [r{k}/uncurated_{task}, oracle_{task}]            data of the other arms (sicog.pipeline.arm_data)
    r{k}/pretrain_{arm}   stage 1.5: ORIGINAL LM + stage-1 projector, all parts, arm data + text
    r{k}/sft_{arm}        stage 2: identical data and steps for every arm
    r{k}/evaluate_{arm}
    r{k}/probe_teacher, r{k}/monitor                   the round monitor (pipeline/monitor.py)

Which steps a round has follows from the sources its arms name (the arms table,
sicog.pipeline.arms): warm-up and sampling only for a task some arm takes self-generated data of.
Round k > 1 starts its warm-up from round k-1's `sicog` model (iterative self-improvement).
"""

from __future__ import annotations

from pathlib import Path

from sicog.config import config_to_dict
from sicog.data.bundle import bundle_files, read_manifest
from sicog.eval.config import EvaluateConfig
from sicog.pipeline import data_steps
from sicog.pipeline.actions import (
    command_config,
    config_command_action,
    mixture_weights,
    record_weights,
    train_action,
    train_config,
)
from sicog.pipeline.arm_data import plan_round_data
from sicog.pipeline.arms import ArmSpec, arm_names, resolve
from sicog.pipeline.checks import check_settings, check_step_inputs, check_work_dir_apart, missing_input
from sicog.pipeline.config import PipelineConfig, PipelineData, StageSpec, expand_env
from sicog.pipeline.hooks import standin_builder
from sicog.pipeline.launch import describe_command
from sicog.pipeline.monitor import plan_heldout_probe, plan_monitor
from sicog.pipeline.post_training import plan_post_training
from sicog.pipeline.step import Step
from sicog.pipeline.tasks import TASKS
from sicog.stages.curation.config import CurateConfig
from sicog.stages.sampling.config import SampleConfig
from sicog.utils.io import SicogError

WORLD_KEYS = ("alignment", "annotated_captions", "annotated_reasoning", "instructions",
              "unlabeled_images", "unlabeled_questions", "text_only", "oracle_captions", "oracle_reasoning")


def _abs(path: str | None, base: Path | None = None) -> str | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_absolute() and base is not None:
        p = base / p
    return str(p.resolve())


def resolve_data(cfg: PipelineConfig) -> PipelineData:
    """Absolute data paths; fields left empty are filled from the world's manifest.json."""
    d = PipelineData(**{k: expand_env(v, f"data.{k}") for k, v in config_to_dict(cfg.data).items()})
    out = PipelineData(**{k: (v if k == "benchmark" and v and v.startswith("world:") else _abs(v))
                          for k, v in config_to_dict(d).items()})
    if out.world:
        try:
            files = bundle_files(out.world, read_manifest(out.world))
        except SicogError as e:
            raise SicogError(f"data.world: {e}") from None
        for key in WORLD_KEYS:
            if getattr(out, key) is None and key in files:
                setattr(out, key, str(files[key]))
        if out.image_folder is None:
            out.image_folder = out.world
        if out.benchmark is None:
            out.benchmark = f"world:{out.world}"
    elif out.benchmark and out.benchmark.startswith("world:"):
        out.benchmark = "world:" + _abs(out.benchmark[len("world:"):])
    return out


class Planner:
    """Builds the ordered list of steps for a PipelineConfig."""

    def __init__(self, cfg: PipelineConfig, config_dir: str | Path | None = None,
                 placement: dict[str, str] | None = None, allow_missing: bool = False):
        check_settings(cfg, config_dir)  # every setting first: no data needed
        self.cfg = cfg
        # step name -> a sub-folder of work_dir for its folder (a sweep's points, sicog.pipeline.sweep)
        self.placement = placement or {}
        self.allow_missing = allow_missing  # `--estimate`: inputs may be absent (their sizes are stated)
        self.config_dir = Path(config_dir).resolve() if config_dir else Path.cwd()
        self.work = Path(expand_env(cfg.work_dir, "work_dir")).resolve()
        self.data = resolve_data(cfg)
        self.models = {k: _abs(expand_env(getattr(cfg.models, k), f"models.{k}"))
                       for k in ("vision_tower", "language_model", "base")}
        check_work_dir_apart(self.work, {**{f"data.{k}": v for k, v in config_to_dict(self.data).items()},
                                         **{f"models.{k}": v for k, v in self.models.items()}}, self.benchmark())
        self.steps: list[Step] = []
        self.arm_checkpoints: dict[tuple[int, str], str] = {}  # (round, arm) -> final checkpoint
        self.evaluations: dict[tuple[int, str], str] = {}  # (round, arm) -> evaluation folder
        self.candidates: dict[tuple[int, str], str] = {}  # (round, task) -> candidates file
        self.greedy: dict[tuple[int, str], str] = {}  # (round, task) -> greedy labels (label_quality)
        self.curated: dict[tuple[int, str], str] = {}  # (round, task) -> curated file
        self.uncurated: dict[tuple[int, str], str] = {}
        self.oracle: dict[tuple[int, str], str] = {}
        self.curate_steps: dict[tuple[int, str], Step] = {}  # (round, task) -> the curate step
        self.pretrain_steps: dict[tuple[int, str], Step] = {}  # (round, arm) -> stage 1.5
        self.dpo_steps: dict[tuple[int, str], Step] = {}  # (round, arm) -> post-training (post_training.py)

    # ------------------------------------------------------------------ helpers
    def need(self, key: str, why: str) -> str:
        value = getattr(self.data, key)
        if not value:
            raise SicogError(f"data.{key} is required ({why}); set it, or data.world to a `sicog world` folder")
        self.check_input(f"data.{key}", value)
        return value

    def check_input(self, key: str, path: str) -> None:
        """`path` (the value of config key `key`) exists, or an earlier step writes it."""
        if not self.allow_missing and missing_input(path, self.steps):
            from_world = key.startswith("data.") and getattr(self.cfg.data, key[5:]) is None and self.data.world
            raise SicogError(f"{key}: {path} not found" + (f" (listed in {self.data.world}/manifest.json)"
                                                            if from_world else ""))

    def benchmark(self) -> tuple[str, str | None]:
        """(the key that gave it, the benchmark): evaluation.benchmark, else data.benchmark."""
        if self.cfg.evaluation.benchmark:
            return "evaluation.benchmark", self.cfg.evaluation.benchmark
        return "data.benchmark", self.data.benchmark

    def round_seed(self, k: int) -> int:
        """The one seed rule: round k's sampling, curation and data draws use the run seed + 1000·k
        (training steps use the run seed itself), so rounds draw apart and a rerun draws the same."""
        return self.cfg.seed + 1000 * k

    def folder(self, name: str) -> str:
        return str(self.work / self.placement.get(name, "") / name)

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        return step

    def train_step(self, name: str, stage_key: str, stage: str, model: dict, sources: list[dict],
                   *, round: int = 0, arm: str | None = None, outputs_extra: dict | None = None,
                   weights=None, task: str | None = None, max_steps: int | None = None) -> Step:
        folder = self.folder(name)
        spec = getattr(self.cfg.stages, stage_key)
        if max_steps is not None:  # an arm's own budget (sicog.pipeline.arms)
            spec = StageSpec(config=spec.config, set={**spec.set, "training.max_steps": max_steps})
        train = train_config(spec, stage=stage, model=model, sources=sources, output_dir=folder,
                             seed=self.cfg.seed, where=f"stages.{stage_key}", config_dir=self.config_dir)
        launcher = self.cfg.launcher_for("train")
        inputs = {f"source{i}": s["path"] for i, s in enumerate(sources)}
        inputs.update({k: v for k, v in model.items() if k in ("checkpoint", "vision_tower", "language_model",
                                                                "mm_projector") and v})
        # image folders are not fingerprinted (large, stable): the records name the image files
        outputs = {"checkpoint": f"{folder}/final", **(outputs_extra or {})}
        return self.add(Step(
            name=name, kind="train", inputs=inputs, outputs=outputs,
            params={"train": train, "mixture": weights.settings if weights else None},
            action=train_action(train, launcher, weights or (record_weights if len(sources) > 1 else None)),
            work_dir=folder, round=round, arm=arm, task=task, role=stage_key,
            describe=describe_command(launcher, ["train", f"{folder}/train.yaml"])))

    # ------------------------------------------------------------------ the graph
    def build(self) -> list[Step]:
        cfg, data = self.cfg, self.data
        vision_tower, language_model = self.models["vision_tower"], self.models["language_model"]
        for key, path in [*((f"models.{k}", v) for k, v in self.models.items()), ("data.image_folder", data.image_folder)]:
            if path:
                self.check_input(key, path)
        if vision_tower is None or language_model is None:
            if not data.world:
                raise SicogError("models.vision_tower and models.language_model are required "
                                 "(stand-ins are built only for a data bundle: data.world)")
            vision_tower, language_model = standin_builder()(self)
        image_folder, parts = data.image_folder, {"vision_tower": vision_tower, "language_model": language_model}
        plan_heldout_probe(self)  # before any step reads data.annotated_reasoning (pipeline/monitor.py)

        align = self.train_step(
            "align", "align", "stage1_align", parts,
            [{"path": self.need("alignment", "stage 1"), "image_folder": image_folder}],
            outputs_extra={"projector": self.folder("align") + "/mm_projector.safetensors"})
        projector = align.outputs["projector"]
        fresh = {**parts, "mm_projector": projector}  # the ORIGINAL LM + the stage-1 projector
        instructions = [{"path": self.need(key, "stage 2 (mixture.sft_data)"), "image_folder": image_folder}
                        for key in cfg.mixture.sft_data]

        base = self.models["base"]
        if base is None:
            base = self.train_step("sft_base", "sft", "stage2_sft", fresh, instructions,
                                   arm="base").outputs["checkpoint"]
        self.arm_checkpoints[(0, "base")] = base
        for arm in resolve(cfg.arms, arm_names(cfg.arms)):
            if not arm.trains():  # the base model itself, evaluated once
                self.arm_checkpoints[(0, arm.name)] = base
                self.evaluate_step(f"evaluate_{arm.name}", base, round=0, arm=arm.name)

        for k in range(1, cfg.rounds + 1):
            arms = [a for a in resolve(cfg.arms, arm_names(cfg.arms) if k == 1 else cfg.round_arms) if a.trains()]
            if not arms:
                continue
            data_by_arm = plan_round_data(self, k, base, arms)
            for arm in arms:
                self.arm_steps(k, arm, data_by_arm[arm.name], fresh, instructions)
            if k == 1 and cfg.post_training.method == "dpo":
                plan_post_training(self, k)
            plan_monitor(self, k)  # r{k}/probe_teacher, r{k}/monitor (pipeline/monitor.py)
            if "sicog" in [a.name for a in arms]:
                base = self.arm_checkpoints[(k, "sicog")]  # the next round's base model
        return self.steps

    def arm_steps(self, k: int, arm: ArmSpec, files: list[str], fresh: dict, instructions: list[dict]) -> None:
        """Stage 1.5 (when the arm has data), stage 2 and the evaluation of one arm in round k."""
        cfg, data, r = self.cfg, self.data, f"r{k}"
        start = fresh
        if arm.sources:
            sources = [{"path": p, "image_folder": data.image_folder} for p in files]
            if cfg.mixture.include_annotations:
                sources += [{"path": self.need(key, "mixture.include_annotations"), "image_folder": data.image_folder}
                            for key in ("annotated_captions", "annotated_reasoning")]
            ratio = cfg.mixture.text_only_ratio if arm.text_only_ratio is None else arm.text_only_ratio
            text = data.text_only if ratio > 0 else None
            if ratio > 0:
                sources.append({"path": self.need("text_only", f"the {arm.name} arm's text-only share > 0")})
            pre = self.train_step(f"{r}/pretrain_{arm.name}", "pretrain", "stage15_pretrain", fresh, sources,
                                  round=k, arm=arm.name, weights=mixture_weights(cfg, text, ratio),
                                  max_steps=arm.pretrain_steps)
            self.pretrain_steps[(k, arm.name)] = pre
            start = {"checkpoint": pre.outputs["checkpoint"]}
        sft = self.train_step(f"{r}/sft_{arm.name}", "sft", "stage2_sft", start, instructions, round=k,
                              arm=arm.name, max_steps=arm.sft_steps)
        self.arm_checkpoints[(k, arm.name)] = sft.outputs["checkpoint"]
        self.evaluate_step(f"{r}/evaluate_{arm.name}", sft.outputs["checkpoint"], round=k, arm=arm.name)

    # ------------------------------------------------------------------ step kinds
    def head_step(self, name: str, path: str, max_items: int | None, *, round: int = 0,
                  task: str | None = None) -> str:
        """The first `max_items` records of a JSONL file (quick runs sample fewer items)."""
        out = self.folder(name) + "/records.jsonl"
        self.add(Step(name=name, kind="data", inputs={"records": path}, outputs={"records": out},
                      params={"max_items": max_items}, action=data_steps.head_action(path, out, max_items),
                      work_dir=self.folder(name), round=round, task=task, role="head",
                      describe=f"first {max_items} records of {path}"))
        return out

    def config_step(self, name: str, command: str, cfg, inputs: dict, outputs: dict, counts_fn, *,
                    round: int = 0, arm: str | None = None, task: str | None = None, role: str | None = None) -> Step:
        """A step that runs `sicog <command> <step folder>/<command>.yaml` with the typed config `cfg`."""
        launcher = self.cfg.launcher_for(command)
        config_path = f"{self.folder(name)}/{command}.yaml"
        return self.add(Step(name=name, kind=command, inputs=inputs, outputs=outputs,
                             params={command: config_to_dict(cfg)},
                             action=config_command_action(command, cfg, launcher, counts_fn, where={
                                 "sample": f"sampling.{task}", "curate": f"curation.{task}"}.get(command, "evaluation")),
                             work_dir=self.folder(name), round=round, arm=arm, task=task, role=role or command,
                             describe=describe_command(launcher, [command, config_path]), diagnostic=role == "greedy"))

    def sample_step(self, name: str, model: str, records: str, mode: str, spec, k: int, task: str,
                    role: str = "sample") -> str:
        if spec.max_items:
            records = self.head_step(f"{name}_input", records, spec.max_items, round=k, task=task)
        out = self.folder(name) + "/candidates.jsonl"
        cfg = command_config(SampleConfig, spec, model=model, data=records, image_folder=self.data.image_folder,
                             out=out, mode=mode, seed=self.round_seed(k))
        self.config_step(name, "sample", cfg, {"model": model, "records": records}, {"candidates": out},
                         lambda step: data_steps.sample_counts(out), round=k, task=task, role=role)
        return out

    def curate_step(self, task: str, candidates: str, k: int) -> str:
        spec = getattr(self.cfg.curation, task)
        name = f"r{k}/curate_{task}"
        folder = self.folder(name)
        out, report = f"{folder}/curated.jsonl", f"{folder}/report"
        cfg = command_config(
            CurateConfig, spec, candidates=candidates, out=out, task=TASKS[task].curate_task,
            encoder=expand_env(spec.encoder, f"curation.{task}.encoder") or "minilm",
            report_dir=report, seed=self.round_seed(k))
        self.curate_steps[(k, task)] = self.config_step(
            name, "curate", cfg, {"candidates": candidates}, {"curated": out, "report": report},
            lambda step: data_steps.curate_counts(out), round=k, task=task)
        return out

    def evaluate_step(self, name: str, model: str, round: int, arm: str) -> None:
        if not self.cfg.evaluation.enabled:
            return
        bench_key, bench = self.benchmark()
        if not bench:
            raise SicogError("evaluation: no benchmark (set evaluation.benchmark or data.benchmark)")
        out = self.folder(name) + "/result"
        ev = self.cfg.evaluation
        cfg = command_config(EvaluateConfig, ev, model=model, benchmark=bench, out=out, shuffled_image_control=(
            ev.shuffled_image_control and (not ev.control_arms or arm in ev.control_arms)))
        # a bundle's manifest records its files' fingerprints: it stands for the whole folder
        bench_input = bench[len("world:"):] + "/manifest.json" if bench.startswith("world:") else bench
        self.check_input(bench_key, bench_input)
        self.config_step(name, "evaluate", cfg, {"model": model, "benchmark": bench_input}, {"result": out},
                         lambda step: data_steps.evaluate_counts(out), round=round, arm=arm)
        self.evaluations[(round, arm)] = out


def build_plan(cfg: PipelineConfig, config_dir: str | Path | None = None,
               placement: dict[str, str] | None = None, allow_missing: bool = False) -> Planner:
    """Validate the config and build its steps (raises SicogError/ConfigError naming the key).

    Relative `stages.*.config` paths are relative to `config_dir` (the pipeline YAML's folder).
    `placement`: step name -> sub-folder of work_dir for that step's folder (default: none).
    `allow_missing`: inputs need not exist yet (`sicog run --estimate` plans the paper's data before
    it is downloaded).
    """
    planner = Planner(cfg, config_dir, placement, allow_missing)
    planner.build()
    if not allow_missing:
        check_step_inputs(planner.steps)
    return planner
