"""Extension points of `sicog run` that plugins fill (the built-in demo is one; see sicog.cli).

A pipeline YAML whose `models.vision_tower` / `models.language_model` are null and whose data is a
bundle folder (`data.world`) asks for *stand-in models*: small models pre-trained for that data,
standing in for the public CLIP tower and LLM. The pipeline does not know how to make them; a
plugin registers a builder that adds its own step(s) to the plan:

    def plan_standins(planner) -> tuple[str, str]:   # (vision_tower path, language_model path)
        planner.add(Step(kind="standins", ...))       # settings: planner.cfg.standins (validate them)
        ...
    register_standin_builder(plan_standins)

A user's own synthetic world can register its builder the same way (entry point group
`sicog.plugins`, loaded by `sicog.cli.load_plugins`).

A truth source with `noise` (the `oracle_noised` arm, sicog.pipeline.arms) asks for a *label noiser*:
the pipeline does not know what a stated count is in someone's data, so the data's owner registers
one (`register_label_noiser`, a `LabelNoiser`; the demo's is sicog.demo.label_noise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Generic, Mapping, Protocol, TypeVar

from sicog.utils.io import SicogError

if TYPE_CHECKING:  # the planner imports this module
    from sicog.pipeline.plan import Planner

StandinBuilder = Callable[["Planner"], "tuple[str, str]"]

T = TypeVar("T")


class _LastRegistered(Generic[T]):
    """A hook a plugin fills: the last one registered is used; registering again is idempotent."""

    def __init__(self, missing: str):
        self.items: list[T] = []
        self.missing = missing  # the error when none is registered: how to get one

    def register(self, item: T) -> None:
        if item in self.items:
            self.items.remove(item)
        self.items.append(item)

    def get(self) -> T:
        if not self.items:
            raise SicogError(self.missing)
        return self.items[-1]


_standin_builders: _LastRegistered[StandinBuilder] = _LastRegistered(
    "models.vision_tower and models.language_model are null and no stand-in builder is registered: give both "
    "model paths, or load a plugin that builds stand-ins (sicog.cli.load_plugins loads the built-in demo's)")
_STANDIN_BUILDERS = _standin_builders.items


def register_standin_builder(builder: StandinBuilder) -> None:
    """Register the builder of stand-in models (the last one registered is used; idempotent)."""
    _standin_builders.register(builder)


def standin_builder() -> StandinBuilder:
    """The registered stand-in builder; an error says how to get one or to give real models."""
    return _standin_builders.get()


# Model configs of the folders a plugin's step writes (`sicog run --estimate` sizes models before they
# exist): kind -> fn(step) -> {output path: a transformers config of that part}
ModelConfigs = Callable[[Any], "dict[str, Any]"]

_MODEL_CONFIGS: dict[str, ModelConfigs] = {}


def register_model_configs(kind: str, fn: ModelConfigs) -> None:
    """Register how to tell, at plan time, the model configs of the folders written by steps of `kind`."""
    _MODEL_CONFIGS[kind] = fn


def model_configs_of(step) -> dict[str, Any]:
    """{output path: config} of the model folders `step` writes, when its kind registered them; else {}."""
    fn = _MODEL_CONFIGS.get(step.kind)
    return fn(step) if fn else {}


class LabelNoiser(Protocol):
    """What a truth source's `noise` needs from the data's owner (sicog.pipeline.arms): only the
    world knows what a stated count is and which wrong values are in range.

        wrong(text, prompt, task, rng, like) -> str | None
                                                the label (answering `prompt`, the record's human turn)
                                                with its stated counts / final answer replaced by a
                                                wrong in-range value (None: it states none); `like`
                                                (None or {stated value: weight}): draw the wrong value
                                                with these weights among those in range, if any is
        stated(label, task) -> str | None      the count / answer a label states (None: none), the
                                                values `like` and `is_wrong` speak of
        is_wrong(label, truth, task) -> bool   a label states another count / answer than the truth
                                                label of the same item (or none at all)

    `task` is captions or reasoning; `rng` a random.Random seeded per item.
    """

    def wrong(self, text: str, prompt: str, task: str, rng, like: Mapping[str, int] | None = None) -> str | None: ...

    def stated(self, label: str, task: str) -> str | None: ...

    def is_wrong(self, label: str, truth: str, task: str) -> bool: ...


_label_noisers: _LastRegistered[LabelNoiser] = _LastRegistered(
    "a truth source with noise / noise_from (e.g. the oracle_noised arm) needs a label noiser that knows how to "
    "make a stated count or answer wrong, and none is registered: load a plugin that registers one "
    "(sicog.pipeline.hooks.register_label_noiser; the built-in demo's is sicog.demo.label_noise)")
_LABEL_NOISERS = _label_noisers.items


def register_label_noiser(noiser: LabelNoiser) -> None:
    """Register the label noiser of truth sources with `noise` (the last one registered is used; idempotent)."""
    _label_noisers.register(noiser)


def label_noiser() -> LabelNoiser:
    """The registered label noiser; an error says how to get one."""
    return _label_noisers.get()
