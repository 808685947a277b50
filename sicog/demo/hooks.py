"""The demo's plug-ins: stand-in models for a world in `sicog run`, scene-graph caption scoring.

`register()` (called by `sicog.cli.load_plugins`) fills three generic extension points:
- `sicog.pipeline.hooks.register_standin_builder`: when a pipeline YAML gives no pretrained models
  and its data is a world, a `standins` step pre-trains a tiny CLIP tower and LM for it
  (sicog.demo.standins), configured by the YAML's `standins:` section (`StandinsSpec`);
- `sicog.pipeline.hooks.register_model_configs`: the stand-ins' configs, so `sicog run --estimate`
  sizes them before they are built;
- `sicog.eval.captions.register_caption_scorer`: `sicog evaluate` scores descriptions of a
  world's benchmark images against their scene graphs (sicog.demo.scoring);
- `sicog.pipeline.hooks.register_label_noiser`: a truth source with `noise` (the oracle_noised arm)
  gets wrong in-range counts / answers from sicog.demo.label_noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sicog.config import config_from_mapping, config_to_dict
from sicog.pipeline.launch import python_action
from sicog.pipeline.step import Step


@dataclass
class StandinsSpec:
    """The `standins:` section of a pipeline YAML: stand-in CLIP tower and LM for a world."""

    cache_dir: str | None = None  # share stand-ins between runs (keyed by world + these settings)
    seed: int = 0
    corpus_scenes: int = 2000  # fresh scenes whose texts pre-train the LM
    lm_steps: int = 300
    lm_batch_size: int = 32
    lm_learning_rate: float = 2e-3
    vision_images: int = 2000  # fresh images whose cell attributes pre-train the vision tower
    vision_steps: int = 300
    vision_batch_size: int = 32
    vision_learning_rate: float = 2e-3
    # train the tower in a second process while the LM trains: the same models, ~half
    # the wall time on two free cores
    parallel: bool = False
    text_only_records: int = 400  # text-only records written for stage 1.5 language preservation
    tiny: dict[str, Any] = field(default_factory=dict)  # TinyModelConfig overrides (sizes)


def plan_standins(planner) -> tuple[str, str]:
    """Add the `standins` step to the plan; returns (vision_tower, language_model) folders."""
    from sicog.pipeline.config import expand_env

    spec = config_to_dict(config_from_mapping(StandinsSpec, planner.cfg.standins, "standins"))
    cache = expand_env(spec["cache_dir"], "standins.cache_dir")
    spec["cache_dir"] = str(Path(cache).expanduser().resolve()) if cache else None
    world, folder = planner.data.world, planner.folder("standins")
    outputs = {"vision_tower": f"{folder}/vision_tower", "language_model": f"{folder}/language_model",
               "text_only": f"{folder}/text_only.jsonl"}

    def build(step):
        from sicog.demo.standins import build_standins  # imports torch: only when it runs

        return build_standins(world, step.work_dir, spec)

    threads = planner.cfg.launcher_for("standins").threads
    planner.add(Step(name="standins", kind="standins", inputs={"world": f"{world}/manifest.json"},
                     outputs=outputs, params={"standins": spec},
                     action=python_action(build, "stand-ins: sicog.demo.standins.build_standins", threads),
                     work_dir=folder, role="standins",
                     describe="stand-in CLIP tower + Qwen2 LM pre-trained on the world"))
    if planner.data.text_only is None:
        planner.data.text_only = outputs["text_only"]
    return outputs["vision_tower"], outputs["language_model"]


def standin_configs(step) -> dict:
    """The configs of the stand-ins a `standins` step writes, from its tiny sizes (`sicog run --estimate`
    sizes them before they exist; the vocabulary is the tokenizer's target size)."""
    from sicog.config import TinyModelConfig
    from sicog.model.assembly import tiny_part_configs

    tiny = TinyModelConfig(**step.params["standins"].get("tiny") or {})
    vision, text = tiny_part_configs(tiny, tiny.vocab_size)
    return {step.outputs["vision_tower"]: vision, step.outputs["language_model"]: text}


def register() -> None:
    """Register the demo's stand-in builder, its models' configs, caption scorer and label noiser (idempotent)."""
    from sicog.demo.label_noise import NOISER
    from sicog.demo.scoring import SCENE_GRAPH_SCORER
    from sicog.eval.captions import register_caption_scorer
    from sicog.pipeline.hooks import register_label_noiser, register_model_configs, register_standin_builder

    register_standin_builder(plan_standins)
    register_model_configs("standins", standin_configs)
    register_caption_scorer(SCENE_GRAPH_SCORER)
    register_label_noiser(NOISER)
