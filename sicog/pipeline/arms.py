"""The arms of `sicog run` as data: each arm names its stage-1.5 sources, text-only share and budget.

An arm is one model trained the same way as every other arm except for what its entry says:

    name             the arm's name (step names r{k}/pretrain_<name>, r{k}/sft_<name>, the report's rows)
    sources          its stage-1.5 data, in order (each expands to one file per task, captions first):
                       curated      the round's self-consistency-curated candidates (curation.*)
                       candidate    one seeded random candidate per item, uncurated (items: matched | all |
                                    kept; `parseable`: only among the candidates curation can parse)
                       annotations  the warm-up annotations (data.annotated_captions / annotated_reasoning)
                       truth        ground truth of the unlabeled items (data.oracle_captions / oracle_reasoning);
                                    `noise` / `noise_from`: a share of them with the stated counts / final
                                    answer made wrong by the registered label noiser (pipeline/hooks.py);
                                    `noise_values`: the wrong values drawn uniformly or like the curated ones
                       file         an external JSONL of LLaVA records (`path`: teacher-distilled, plain captions …)
                     `task` keeps one task's file (captions | reasoning); null: both; `round` (curated):
                     that round's curated data instead of the arm's own round's
    text_only_ratio  share of text-only samples in its stage 1.5 (null: mixture.text_only_ratio)
    pretrain_steps   its stage-1.5 optimizer steps (null: stages.pretrain's max_steps)
    sft_steps        its stage-2 optimizer steps (null: stages.sft's)
    against          arms the report compares it with, question by question (besides the paper's pairs)

An arm with no sources and no budget of its own trains nothing: it is the base model, evaluated
once (round 0). An arm with no sources but `sft_steps` is stage 2 alone, from the stage-1 model.

The four arms of the paper's comparison are entries of BUILTIN_ARMS, named in `arms:` by their
name; other arms are declared in place as mappings (configs/pipeline/ablations/). The planner
(sicog.pipeline.arm_data) reads only these entries: no arm is a code path of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sicog.config import ConfigError
from sicog.pipeline.tasks import TASK_NAMES
from sicog.utils.fields import setting

SOURCE_KINDS = ("curated", "candidate", "annotations", "truth", "file")
NOISE_VALUES = ("uniform", "like_curated")


@dataclass
class ArmSource:
    """One stage-1.5 source of an arm (see the module docstring for the kinds)."""

    kind: str = setting("curated", choices=SOURCE_KINDS)
    task: str | None = setting(None, choices=TASK_NAMES)  # one task's data only; null: captions then reasoning
    path: str | None = None  # kind file: a JSONL / JSON of LLaVA records (${VAR} expanded)
    # kind candidate: `matched` (a seeded random subset as large as what curation keeps), `all`
    # (every item) or `kept` (the very items curation kept); null: the pipeline's uncurated_items
    items: str | None = setting(None, choices=("matched", "all", "kept"))
    # kind candidate: draw only among the candidates curation's extractor parses (a CoD with its
    # Step-5 description, a CoT with a final answer); items with none are left out
    parseable: bool = False
    # kind truth: the share of its items (seeded) whose stated counts / final answer the registered
    # label noiser (sicog.pipeline.hooks) replaces with a wrong value
    noise: float | None = setting(None, min=0.0, max=1.0)
    # kind truth: take the share instead from the round's curated labels of the task: the share of
    # them the noiser judges wrong against the truth of the same item (a positive control: correct
    # labels against labels as often wrong as the self-generated ones)
    noise_from: str | None = setting(None, choices=("curated",))
    # kind truth with noise / noise_from: how a noised label's wrong value is drawn: `uniform` (any
    # in-range wrong value) or `like_curated` (as the round's curated labels' wrong values are spread
    # for the same true value: wrong the way the self-generated labels are, near misses included)
    noise_values: str = setting("uniform", choices=NOISE_VALUES)
    # kind curated: the curated data of that round (<= the round the arm trains in, e.g. round 2
    # training on round 1's data as well as its own); null: the arm's own round
    round: int | None = setting(None, min=1)

    def tasks(self) -> tuple[str, ...]:
        return (self.task,) if self.task else TASK_NAMES

    def noised(self) -> bool:
        """Whether it is truth with a share of its labels made wrong."""
        return self.kind == "truth" and (self.noise is not None or self.noise_from is not None)

    def reads_curated(self) -> bool:
        """Whether its data is made from the round's curated labels (a noised truth's share or values)."""
        return self.noised() and (self.noise_from is not None or self.noise_values != "uniform")


@dataclass
class ArmSpec:
    """One arm (an entry of `arms:`); see the module docstring."""

    name: str = ""
    sources: list[ArmSource] = field(default_factory=list)
    text_only_ratio: float | None = setting(None, min=0.0, max=1.0, max_exclusive=True)
    pretrain_steps: int | None = setting(None, min=1)
    sft_steps: int | None = setting(None, min=1)
    against: list[str] = field(default_factory=list)  # arms the report compares it with (paired differences)
    note: str = ""  # what the arm measures, in a line

    def trains(self) -> bool:
        """Whether the arm trains a model of its own (False: it is the base model)."""
        return bool(self.sources) or self.sft_steps is not None

    def uses(self, kind: str, task: str, k: int) -> list[ArmSource]:
        """Its sources of `kind` for `task` that read round k's own data."""
        return [s for s in self.sources if s.kind == kind and task in s.tasks() and s.round in (None, k)]


#: the paper's comparison and its two references, as table entries
BUILTIN_ARMS: dict[str, ArmSpec] = {
    "base": ArmSpec("base", note="no stage 1.5: the base model"),
    "sicog": ArmSpec("sicog", [ArmSource("curated")], note="curated self-generated CoD + CoT"),
    "uncurated": ArmSpec("uncurated", [ArmSource("candidate")],
                         note="one random candidate per item, parseable or not (curation against chance and against "
                              "unparseable labels at once; uncurated_valid isolates the first)"),
    "oracle": ArmSpec("oracle", [ArmSource("truth")], note="ground-truth CoD + CoT of the same items"),
    # controls of the mechanism (docs/ablations.md)
    "uncurated_valid": ArmSpec("uncurated_valid", [ArmSource("candidate", items="kept", parseable=True)],
                               note="a random parseable candidate of the items curation kept (selection vs chance)"),
    "oracle_noised": ArmSpec("oracle_noised", [ArmSource("truth", noise_from="curated", noise_values="like_curated")],
                             note="ground truth with as many wrong counts / answers as the curated labels, wrong "
                                  "the way they are (does label correctness matter?)"),
    "annotated": ArmSpec("annotated", [ArmSource("annotations")],
                         note="stage 1.5 on the warm-up annotations alone (the seed labels, no self-generated data)"),
}
ARMS = tuple(BUILTIN_ARMS)


def arm_table(arms: list) -> dict[str, ArmSpec]:
    """name -> ArmSpec: the built-in entries, then those `arms:` declares in place (in its order)."""
    table = dict(BUILTIN_ARMS)
    for entry in arms:
        if isinstance(entry, ArmSpec):
            table[entry.name] = entry
    return table


def arm_names(arms: list) -> list[str]:
    """The names `arms:` lists (a name or a declared entry), in its order."""
    return [a.name if isinstance(a, ArmSpec) else a for a in arms]


def declared_comparisons(arms: list) -> tuple[tuple[str, str], ...]:
    """(arm, against) pairs the declared arms ask for (`against`)."""
    return tuple((a.name, b) for a in arms if isinstance(a, ArmSpec) for b in a.against)


def resolve(arms: list, names: list[str]) -> list[ArmSpec]:
    """The entries of `names` (checked by check_arms)."""
    table = arm_table(arms)
    return [table[n] for n in names]


def check_arms(arms: list, round_arms: list[str], control_arms: list[str], post_training_arms: tuple) -> None:
    """Names unique and known, declared entries complete; errors name the key (arms[i]...)."""
    seen: set[str] = set()
    for i, entry in enumerate(arms):
        where = f"arms[{i}]"
        if isinstance(entry, ArmSpec):
            if not entry.name or not entry.name.replace("_", "").isalnum():
                raise ConfigError(f"key {where}.name: a name of letters, digits and _ expected, got {entry.name!r}")
            if entry.name in BUILTIN_ARMS or entry.name in post_training_arms:
                raise ConfigError(f"key {where}.name: {entry.name!r} is a built-in arm; name it by its name alone "
                                  f"(arms: [{entry.name}]) or give the new arm a name of its own")
            for j, src in enumerate(entry.sources):
                if (src.kind == "file") != bool(src.path):
                    raise ConfigError(f"key {where}.sources[{j}].path: " + (
                        "a source of kind file needs a path" if src.kind == "file" else
                        f"only a source of kind file has a path (this one is {src.kind})"))
                if src.kind == "file" and src.task:
                    raise ConfigError(f"key {where}.sources[{j}].task: a file source is one file; remove task")
                if src.items is not None and src.kind != "candidate":
                    raise ConfigError(f"key {where}.sources[{j}].items: only for kind candidate")
                if src.round is not None and src.kind != "curated":
                    raise ConfigError(f"key {where}.sources[{j}].round: only for kind curated")
                if src.parseable and src.kind != "candidate":
                    raise ConfigError(f"key {where}.sources[{j}].parseable: only for kind candidate")
                for key in ("noise", "noise_from"):
                    if getattr(src, key) is not None and src.kind != "truth":
                        raise ConfigError(f"key {where}.sources[{j}].{key}: only for kind truth")
                if src.noise is not None and src.noise_from is not None:
                    raise ConfigError(f"key {where}.sources[{j}].noise: give a share or noise_from, not both")
                if src.noise_values != "uniform" and not src.noised():
                    raise ConfigError(f"key {where}.sources[{j}].noise_values: only for a truth source with noise "
                                      "or noise_from")
            if entry.pretrain_steps is not None and not entry.sources:
                raise ConfigError(f"key {where}.pretrain_steps: the arm has no stage-1.5 sources")
            if entry.text_only_ratio is not None and not entry.sources:
                raise ConfigError(f"key {where}.text_only_ratio: the arm has no stage-1.5 sources")
            name = entry.name
        else:
            name = entry
            if name not in BUILTIN_ARMS:
                raise ConfigError(f"key {where}: unknown arm {name!r} (built-in: {', '.join(ARMS)}; "
                                  "declare a new arm as a mapping: {name: ..., sources: [...]})")
        if name in seen:
            raise ConfigError(f"key {where}: arm {name!r} listed twice")
        seen.add(name)
    table = arm_table(arms)
    bases = [n for n in arm_names(arms) if not table[n].trains()]
    if len(bases) > 1:
        raise ConfigError(f"key arms: {bases} all train nothing (no sources, no budget): the same base model")
    for i, name in enumerate(round_arms):
        if name not in table:
            raise ConfigError(f"key round_arms[{i}]: unknown arm {name!r} (known: {', '.join(table)})")
    for i, entry in enumerate(arms):
        for j, other in enumerate(entry.against if isinstance(entry, ArmSpec) else []):
            if other not in table and other not in post_training_arms or other == entry.name:
                raise ConfigError(f"key arms[{i}].against[{j}]: {other!r} is not another arm")
    unknown = [a for a in control_arms if a not in table and a not in post_training_arms]
    if unknown:
        raise ConfigError(f"key evaluation.control_arms: unknown arms {unknown} "
                          f"(known: {list(table) + list(post_training_arms)})")
