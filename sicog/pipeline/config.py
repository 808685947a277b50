"""Typed config of `sicog run`: one YAML describes the whole loop (data, models, stages, arms).

Loaded with `sicog.config.load_config(PipelineConfig, path, overrides)`, so an unknown key or a
wrong type is an error naming the file and the dotted key, and `--set a.b=value` works as for
`sicog train`. Each setting's choices and range are declared on its field (`setting`, checked by
`sicog.config.check_config`); `PipelineConfig.validate` holds the rules across settings. Training
stages reuse `sicog.config.TrainConfig`: a stage names a TrainConfig YAML
(`config`) and nested overrides (`set`); the pipeline fills in the model source, the data sources
and the output folder, then validates the result as a TrainConfig.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sicog.config import ConfigError
from sicog.eval.config import EvaluateConfig
from sicog.pipeline.arms import ArmSpec, check_arms
from sicog.pipeline.estimate_config import EstimateSpec
from sicog.pipeline.tasks import TASK_NAMES
from sicog.stages.curation.config import CurateConfig
from sicog.stages.sampling.config import SampleConfig
from sicog.utils.fields import setting
from sicog.utils.secrets import is_secret_key, register_secret

POST_TRAINING_ARMS = ("sicog_dpo", "base_dpo")  # added by a post_training section (not listed in arms)
PAIR_SOURCES = ("curated", "corrupted")
MAX_ROUNDS = 20  # the paper runs 1-3 rounds; each round retrains every arm: more is a typo (and minutes to plan)
# the kinds of step a `launchers:` entry may start differently (sicog.pipeline.actions)
LAUNCH_KINDS = ("train", "sample", "curate", "evaluate", "standins", "data", "dpo")


@dataclass
class LauncherConfig:
    """How a step's command is started: `python -m sicog …`, or torchrun with K processes."""

    nproc_per_node: int = setting(1, min=1)  # > 1: torchrun --nproc_per_node K -m sicog …
    nnodes: int = setting(1, min=1)
    node_rank: int = setting(0, min=0)  # and < nnodes (PipelineConfig.validate)
    master_addr: str = "127.0.0.1"
    master_port: int = setting(29500, min=1, max=65535)
    in_process: bool = False  # nproc 1 only: run the subcommand inside this process (no start-up cost)
    # CPU threads of torch per process (OMP_NUM_THREADS); 1 avoids the 10x+ slow-down of OpenMP
    # spin-waiting when other jobs share the cores. None: torch's default.
    threads: int | None = setting(None, min=1)
    env: dict[str, str] = field(default_factory=dict)  # extra environment variables for the command


@dataclass
class PipelineData:
    """Data files. `world` (a `sicog world` folder) fills every empty field from its manifest.json."""

    world: str | None = None
    image_folder: str | None = None  # image paths in the records are relative to this folder
    alignment: str | None = None  # brief image-caption pairs (stage 1)
    annotated_captions: str | None = None  # minimal CoD annotations (perception warm-up)
    annotated_reasoning: str | None = None  # minimal structured-CoT annotations (reasoning warm-up)
    instructions: str | None = None  # stage-2 SFT mix
    unlabeled_images: str | None = None  # images to caption (step 2)
    unlabeled_questions: str | None = None  # image-question pairs to answer (step 2)
    text_only: str | None = None  # text-only records mixed into stage 1.5 (language preservation)
    benchmark: str | None = None  # TSV or world:DIR for `sicog evaluate`
    oracle_captions: str | None = None  # ground-truth CoD for unlabeled_images (oracle arm)
    oracle_reasoning: str | None = None  # ground-truth CoT for unlabeled_questions (oracle arm)


DATA_KEYS = tuple(name for name in PipelineData.__dataclass_fields__ if name != "world")  # what data.* names


@dataclass
class ModelsConfig:
    """Model sources. Null vision_tower/language_model with a world: stand-ins are built."""

    vision_tower: str | None = None  # local CLIP folder (clip-vit-large-patch14-336)
    language_model: str | None = None  # local causal-LM folder (Qwen2-7B-Instruct)
    base: str | None = None  # base MLLM checkpoint; null: built as stage 1 align + stage 2 SFT


@dataclass
class StageSpec:
    """A training stage: a TrainConfig YAML plus nested overrides (pipeline fills model/data/output)."""

    config: str | None = None
    set: dict[str, Any] = field(default_factory=dict)


@dataclass
class StagesConfig:
    align: StageSpec = field(default_factory=StageSpec)  # stage 1: projector only
    warmup_perception: StageSpec = field(default_factory=StageSpec)  # stage 0: CoD
    warmup_reasoning: StageSpec = field(default_factory=StageSpec)  # stage 0: CoT
    pretrain: StageSpec = field(default_factory=StageSpec)  # stage 1.5: all parts
    sft: StageSpec = field(default_factory=StageSpec)  # stage 2


_EXTRA_ARGS_MOVED = ("settings are keys of this section now, spelled as in the command's CONFIG.yaml "
                     "(e.g. batch_size: 64, progress: false); see `sicog {cmd} --help`")


@dataclass
class SampleSpec(SampleConfig):
    """`sampling.captions` / `sampling.reasoning`: any `sicog sample` setting (sicog.stages.sampling.config).

    The pipeline sets model, data, image_folder, out, mode and seed of each sampling step itself.
    """

    max_items: int | None = setting(None, min=1)  # use only the first K unlabeled records (quick runs); null: every item

    MOVED_KEYS: ClassVar[dict[str, str]] = {"extra_args": _EXTRA_ARGS_MOVED.format(cmd="sample")}
    PIPELINE_KEYS: ClassVar[tuple[str, ...]] = ("model", "data", "image_folder", "out", "mode", "seed")


@dataclass
class SamplingConfig:
    captions: SampleSpec = field(default_factory=SampleSpec)  # mode cod on unlabeled_images
    reasoning: SampleSpec = field(default_factory=SampleSpec)  # mode cot on unlabeled_questions


@dataclass
class CurateSpec(CurateConfig):
    """`curation.captions` / `curation.reasoning`: any `sicog curate` setting (sicog.stages.curation.config).

    The pipeline sets candidates, out, task, report_dir and seed of each curation step.
    """

    MOVED_KEYS: ClassVar[dict[str, str]] = {**CurateConfig.MOVED_KEYS,
                                            "extra_args": _EXTRA_ARGS_MOVED.format(cmd="curate")}
    PIPELINE_KEYS: ClassVar[tuple[str, ...]] = ("candidates", "out", "task", "report_dir", "seed")


@dataclass
class CurationConfig:
    captions: CurateSpec = field(default_factory=CurateSpec)
    reasoning: CurateSpec = field(default_factory=CurateSpec)


@dataclass
class MixtureConfig:
    """Stage-1.5 data: the arm's self-generated data plus text-only data."""

    # fraction of stage-1.5 samples that are text-only (0: none)
    text_only_ratio: float = setting(0.1, min=0, max=1, max_exclusive=True)
    include_annotations: bool = False  # also the warm-up annotations (the paper: curated data only)
    # each CoD / CoT record of a curated, candidate or truth source followed by its direct description /
    # short answer, the two forms the warm-up annotations have (the paper: the CoD / CoT form only)
    companions: bool = False
    # stage-2 data of every arm, as data.* keys (the paper's LLaVA-665K also holds detailed captions;
    # add annotated_captions when `instructions` alone has none)
    sft_data: list[str] = setting(choices=DATA_KEYS, default_factory=lambda: ["instructions"])
    # every self-generated file empty: error | text_only (smoke runs of weak models)
    on_empty: str = setting("error", choices=("error", "text_only"))


@dataclass
class EvaluationConfig(EvaluateConfig):
    """`evaluation`: any `sicog evaluate` setting (sicog.eval.config); `benchmark` defaults to data.benchmark.

    The pipeline sets model and out of each evaluation step.
    """

    enabled: bool = True
    # the report audits each arm's stage-1.5 data against the benchmarks (sicog data overlap)
    overlap: bool = True
    # arms whose evaluation also runs the shuffled-image control (with shuffled_image_control on); empty: every arm
    control_arms: list[str] = field(default_factory=list)

    MOVED_KEYS: ClassVar[dict[str, str]] = {"extra_args": _EXTRA_ARGS_MOVED.format(cmd="evaluate")}
    PIPELINE_KEYS: ClassVar[tuple[str, ...]] = ("model", "out")


@dataclass
class PostTrainingConfig:
    """`post_training`: preference optimisation after stage 2 of round 1. With method dpo, the
    round's reasoning curation (and, for `corrupted`, candidates its warm-up model samples from
    corrupted images) gives pairs (`sicog pairs`), and `sicog dpo` trains the sicog arm's model
    (arm sicog_dpo) and, when `base` is an arm, the base model on the same pairs (arm base_dpo)."""

    method: str = setting("none", choices=("none", "dpo"))
    dpo: StageSpec = field(default_factory=StageSpec)  # a `sicog dpo` YAML + overrides (model/data/output: the pipeline's)
    pair_sources: list[str] = setting(choices=PAIR_SOURCES, default_factory=lambda: list(PAIR_SOURCES))
    corruption: str = "gaussian_blur,mask"  # `sicog sample --corruption` for the corrupted-image negatives
    corrupted_candidates: int = setting(2, min=1)  # candidates sampled per corrupted image (one is drawn as rejected)
    max_pairs: int | None = setting(None, min=1)  # budget: training pairs per DPO step (a seeded pick)
    # share of records whose pairs are held out for the reward accuracy
    heldout_fraction: float = setting(0.1, min=0, max=1, max_exclusive=True)
    # no training pair at all: error, or skip (the DPO arms keep their starting model, reported with
    # 0 pairs; smoke runs of models too weak to write a parseable CoT)
    on_empty: str = setting("error", choices=("error", "skip"))


@dataclass
class MonitorConfig:
    """`monitor`: each round's teacher accuracy on a labelled probe and collapse signals of its curated
    labels, with a warning when a signal crosses its threshold (docs/round_monitor.md)."""

    enabled: bool = True
    # labelled question records the round's reasoning warm-up model (the teacher) answers greedily, step
    # by step; null: no probe (the collapse signals are still measured)
    probe: str | None = None
    probe_image_folder: str | None = None  # image paths of the probe records are relative to it (null: data.image_folder)
    # or: hold out this many images of data.annotated_reasoning (all their records) as the probe; the
    # warm-up and every other use of the annotations then reads the rest (0: none)
    probe_heldout: int = setting(0, min=0)
    # warning thresholds (docs/round_monitor.md)
    max_probe_drop: float = setting(0.05, min=0, max=1)  # teacher accuracy below the previous round's by more
    min_distinct_2: float = setting(0.03, min=0, max=1)  # distinct word bigrams / all, over a task's first 50 labels
    max_length_change: float = setting(0.5, min=0)  # |mean words / previous round's - 1|
    min_answer_entropy: float = setting(1.0, min=0)  # bits, of the curated CoT labels' final answers
    max_copied_share: float = setting(0.25, min=0, max=1)  # labels identical to one of the previous round's


@dataclass
class DemoSpec:
    """Read by a plugin's front end (`sicog demo`): how to write its data, and the report's notes."""

    world_args: list[str] = field(default_factory=list)  # flags of `sicog world` (sizes …)
    # images of a probe drawn apart from the world (no file of it changes), for monitor.probe; 0: none
    probe_images: int = setting(0, min=0)
    notes: list[str] = field(default_factory=list)  # where the demo departs from the real recipe


@dataclass
class PipelineConfig:
    """The whole loop. See configs/pipeline/*.yaml."""

    name: str = "sicog"
    work_dir: str = "runs/pipeline"
    seed: int = 0
    rounds: int = setting(1, min=1, max=MAX_ROUNDS)
    # compared in round 1: built-in arms by name (sicog.pipeline.arms.BUILTIN_ARMS) or arms declared in
    # place ({name, sources, text_only_ratio, pretrain_steps, sft_steps}: sicog.pipeline.arms.ArmSpec)
    arms: list[str | ArmSpec] = field(default_factory=lambda: ["base", "sicog"])
    round_arms: list[str] = field(default_factory=lambda: ["sicog"])  # repeated in rounds >= 2 (names)
    # items of the `candidate` sources (the uncurated arm) that leave `items` unset: `matched` (a seeded random subset as large as what curation keeps:
    # curation against chance at equal data) or `all` (every item, one random candidate each)
    uncurated_items: str = setting("matched", choices=("matched", "all"))
    data: PipelineData = field(default_factory=PipelineData)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    # settings of the registered stand-in builder (sicog.pipeline.hooks), validated by it at plan time
    standins: dict[str, Any] = field(default_factory=dict)
    stages: StagesConfig = field(default_factory=StagesConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    curation: CurationConfig = field(default_factory=CurationConfig)
    mixture: MixtureConfig = field(default_factory=MixtureConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    post_training: PostTrainingConfig = field(default_factory=PostTrainingConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    # per kind of step (LAUNCH_KINDS): train, sample …
    launchers: dict[str, LauncherConfig] = setting(choices=LAUNCH_KINDS, default_factory=dict)
    # steps run at once when their inputs are ready (sicog.pipeline.schedule); > 1 needs commands run as
    # child processes (launcher.in_process false). For machines one step cannot fill, like the CPU demo.
    parallel_steps: int = setting(1, min=1)
    label_quality: bool = False  # world only: also greedy labels of the warm-up models, scored vs truth
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    demo: DemoSpec = field(default_factory=DemoSpec)
    estimate: EstimateSpec = field(default_factory=EstimateSpec)  # sizes `sicog run --estimate` cannot read

    def launcher_for(self, kind: str) -> LauncherConfig:
        return self.launchers.get(kind, self.launcher)

    def validate(self) -> None:
        """Rules across settings, run by `sicog.config.check_config` after each setting's own choices and
        range (declared on the fields above)."""
        check_arms(self.arms, self.round_arms, self.evaluation.control_arms, POST_TRAINING_ARMS)
        launchers = [("launcher", self.launcher), *((f"launchers.{k}", v) for k, v in self.launchers.items())]
        in_process = [name for name, lc in launchers if lc.in_process]
        if self.parallel_steps > 1 and in_process:
            raise ConfigError(f"key parallel_steps: {self.parallel_steps} steps at once need commands run as child "
                              f"processes; set {in_process[0]}.in_process: false")
        if self.rounds > 1 and "sicog" not in self.arms:  # a declared entry may not take a built-in's name
            raise ConfigError("key rounds: rounds > 1 needs the 'sicog' arm (its model is the next base)")
        owned = [(f"sampling.{t}", getattr(self.sampling, t)) for t in TASK_NAMES]
        owned += [(f"curation.{t}", getattr(self.curation, t)) for t in TASK_NAMES]
        owned.append(("evaluation", self.evaluation))
        for where, spec in owned:
            for key in type(spec).PIPELINE_KEYS:
                if getattr(spec, key) != getattr(type(spec), key, None) and getattr(spec, key) is not None:
                    raise ConfigError(f"key {where}.{key}: the pipeline sets it for every step; remove it")
        if not self.mixture.sft_data:
            raise ConfigError(f"key mixture.sft_data: data keys expected (e.g. instructions), got {self.mixture.sft_data}")
        for name, lc in launchers:
            if lc.in_process and (lc.nproc_per_node > 1 or lc.nnodes > 1):
                raise ConfigError(f"key {name}.in_process: only with one process")
            if lc.node_rank >= lc.nnodes:
                raise ConfigError(f"key {name}.node_rank: must be in [0, nnodes={lc.nnodes}), got {lc.node_rank}")
            launcher_env(lc, f"{name}.env")  # an unset ${VAR} fails here, at plan time, naming the key
        if expand_env(self.monitor.probe, "monitor.probe") and self.monitor.probe_heldout:
            raise ConfigError("key monitor.probe_heldout: a probe file (monitor.probe) or a held-out count, not both")
        if self.post_training.method != "none" and "sicog" not in self.arms:
            raise ConfigError("key post_training.method: post-training needs the 'sicog' arm (its curation gives the pairs)")
        if not self.post_training.pair_sources:
            raise ConfigError(f"key post_training.pair_sources: a non-empty list of {list(PAIR_SOURCES)}, got []")
        # the keys of estimate.data are those of the data section
        unknown_data = sorted(k for k in self.estimate.data if k not in DATA_KEYS)
        if unknown_data:
            raise ConfigError(f"key estimate.data: not data keys: {unknown_data} (e.g. alignment, instructions)")


_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: str | None, where: str, what: str = "PATH") -> str | None:
    """`${VAR}` / `${VAR:-default}` from the environment; an unset or empty VAR without default is an error.

    An empty result is None (so `base: ${BASE_MODEL:-}` means "not given").
    """
    if value is None:
        return None

    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            if os.environ[name] == "" and default is None:  # `${VAR:-}` says "may be empty"; `${VAR}` does not
                raise ConfigError(f"{where}: environment variable {name} is empty (give it a value, write "
                                  f"${{{name}:-}} where empty means \"not given\", or --set {where}={what})")
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set (set it, or --set {where}={what})")

    return _ENV_RE.sub(sub, value) or None


def launcher_env(launcher: LauncherConfig, where: str = "launcher.env") -> dict[str, str]:
    """The launcher's `env` with `${VAR}` / `${VAR:-default}` expanded, for the command's environment only.

    The expanded values are never stored: saved configs and manifests keep the `${VAR}` text. The
    values of secret-looking names (sicog.utils.secrets) are registered, so that this process's logs
    and error messages redact them too.
    """
    out = {}
    for name, raw in launcher.env.items():
        value = expand_env(raw, f"{where}.{name}", what="VALUE") or ""
        if is_secret_key(name):
            register_secret(value)
        out[name] = value
    return out
