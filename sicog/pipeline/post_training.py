"""The post-training steps of `sicog run` (the pipeline YAML's `post_training` section):

    r1/sample_reasoning_corrupted   the reasoning warm-up model's CoT on corrupted images (pair source `corrupted`)
    r1/pairs                        `sicog pairs`: curated reasoning records (+ corrupted candidates)
    r1/dpo_sicog, r1/dpo_base       `sicog dpo` from the sicog arm's / the base model, on the same pairs
    r1/evaluate_sicog_dpo, r1/evaluate_base_dpo

Both DPO arms train on the pairs the round's warm-up model generated from the base model, so
they differ only in the model they start from: sicog_dpo vs base_dpo isolates what the
self-generated pre-training adds under the same post-training.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

from sicog.config import config_to_dict
from sicog.pipeline.actions import count_lines, train_action, train_config
from sicog.pipeline.config import StageSpec
from sicog.pipeline.launch import describe_command
from sicog.pipeline.step import Step
from sicog.stages.dpo.config import DPOConfig
from sicog.stages.pairs import PairsConfig, build_pairs

log = logging.getLogger(__name__)
HELDOUT_KEYS = ("rewards/accuracy", "rewards/margin", "logps/accuracy", "logps/chosen", "logps/rejected", "pairs")


def plan_post_training(planner, k: int) -> None:
    """Add round k's pair, DPO and evaluation steps (arms sicog_dpo and, with `base`, base_dpo)."""
    cfg, pt, r = planner.cfg, planner.cfg.post_training, f"r{k}"
    corrupted = None
    if "corrupted" in pt.pair_sources:
        warm = next(s for s in planner.steps if s.name == f"{r}/warmup_reasoning").outputs["checkpoint"]
        spec = replace(cfg.sampling.reasoning, corruption=pt.corruption, n=pt.corrupted_candidates)
        corrupted = planner.sample_step(f"{r}/sample_reasoning_corrupted", warm,
                                        planner.need("unlabeled_questions", "post_training"), "cot", spec, k,
                                        "reasoning", role="sample_corrupted")
    pairs, heldout = pairs_step(planner, k, planner.curated[(k, "reasoning")], corrupted)
    starts = [("sicog_dpo", planner.arm_checkpoints[(k, "sicog")])]
    if "base" in cfg.arms:
        starts.append(("base_dpo", planner.arm_checkpoints[(0, "base")]))
    for arm, start in starts:
        step = dpo_step(planner, f"{r}/dpo_{arm.removesuffix('_dpo')}", start, pairs, heldout, k, arm)
        planner.dpo_steps[(k, arm)] = step
        planner.arm_checkpoints[(k, arm)] = step.outputs["checkpoint"]
        planner.evaluate_step(f"{r}/evaluate_{arm}", step.outputs["checkpoint"], round=k, arm=arm)


def pairs_step(planner, k: int, curated: str, corrupted: str | None) -> tuple[str, str]:
    """`sicog pairs` in-process (a data step: one process whatever the launcher); returns
    (training pairs, held-out pairs)."""
    pt, name = planner.cfg.post_training, f"r{k}/pairs"
    folder = planner.folder(name)
    cfg = PairsConfig(curated=curated, corrupted=corrupted, out=f"{folder}/pairs.jsonl",
                      heldout_out=f"{folder}/heldout.jsonl", heldout_fraction=pt.heldout_fraction,
                      curated_pairs="curated" in pt.pair_sources, max_pairs=pt.max_pairs,
                      seed=planner.round_seed(k), allow_empty=pt.on_empty == "skip",
                      overwrite=True)  # the engine decides when to redo

    def action(step, engine) -> dict:
        stats = build_pairs(cfg)
        return {"train_pairs": stats["train_pairs"], "heldout_pairs": stats["heldout_pairs"],
                **{f"skipped_{k}": v for k, v in stats["skipped"].items()},
                **{f"train_{k}": v for k, v in stats["train_by_source"].items()}}

    inputs = {"curated": curated, **({"corrupted": corrupted} if corrupted else {})}
    planner.add(Step(name=name, kind="data", inputs=inputs, outputs={"pairs": cfg.out, "heldout": cfg.heldout_out},
                     params={"pairs": config_to_dict(cfg)}, action=action, work_dir=folder, round=k,
                     task="reasoning", role="pairs",
                     describe=f"sicog pairs --curated {curated}" + (f" --corrupted {corrupted}" if corrupted else "")))
    return cfg.out, cfg.heldout_out


def dpo_step(planner, name: str, start: str, pairs: str, heldout: str, k: int, arm: str) -> Step:
    """`sicog dpo` from checkpoint `start` on the round's pairs, scored on its held-out pairs."""
    pt, folder = planner.cfg.post_training, planner.folder(name)
    image_folder = planner.data.image_folder
    spec = StageSpec(config=pt.dpo.config, set={**pt.dpo.set, "dpo.heldout": heldout,
                                                 "dpo.heldout_image_folder": image_folder})
    train = train_config(spec, stage=arm, model={"checkpoint": start, **_start_architecture(planner, start, pt.dpo.set)},
                         sources=[{"path": pairs, "image_folder": image_folder}], output_dir=folder,
                         seed=planner.cfg.seed, where="post_training.dpo", config_dir=planner.config_dir,
                         cls=DPOConfig)
    cfg = planner.cfg
    launcher = cfg.launchers.get("dpo", cfg.launcher_for("train"))
    run = train_action(train, launcher, command="dpo")

    def action(step, engine) -> dict:
        if pt.on_empty == "skip" and count_lines(pairs) == 0:
            return keep_start(start, folder)
        counts = run(step, engine)
        summary = json.loads(Path(folder, "train_summary.json").read_text(encoding="utf-8"))
        for when in ("before", "after"):
            held = summary.get(f"heldout_{when}") or {}
            counts.update({f"heldout_{when}_{key.replace('/', '_')}": held[key] for key in HELDOUT_KEYS if key in held})
        return counts

    return planner.add(Step(
        name=name, kind="dpo", inputs={"checkpoint": start, "pairs": pairs, "heldout": heldout},
        outputs={"checkpoint": f"{folder}/final"}, params={"dpo": train}, action=action, work_dir=folder,
        round=k, arm=arm, role="dpo", describe=describe_command(launcher, ["dpo", f"{folder}/train.yaml"])))


def _start_architecture(planner, start: str, dpo_set: dict) -> dict:
    """`model.arch` / `model.uhd` of the step that trained `start` (a uhd arm's DPO is a uhd DPO),
    unless post_training.dpo sets them itself."""
    source = next((s for s in planner.steps if s.outputs.get("checkpoint") == start), None)
    trained = ((source.params.get("train") or {}).get("model") or {}) if source is not None else {}
    user = set(dpo_set.get("model") or {}) | {k.split(".")[1] for k in dpo_set if k.startswith("model.")}
    return {k: trained[k] for k in ("arch", "uhd") if k in trained and k not in user}


def keep_start(start: str, folder: str) -> dict:
    """post_training.on_empty: skip with no pairs - the arm's model is its starting model, copied
    (atomically) so that the arm is evaluated and reported, with 0 pairs and 0 steps."""
    import shutil

    from sicog.utils.io import atomic_dir, write_json

    with atomic_dir(Path(folder, "final")) as tmp:
        shutil.copytree(start, tmp, dirs_exist_ok=True)
    write_json(Path(folder, "train_summary.json"), {"steps": 0, "train_pairs": 0,
                                                    "note": "no preference pairs: the starting model, unchanged"})
    log.warning("%s: no preference pairs (post_training.on_empty: skip): the arm keeps %s", folder, start)
    return {"steps": 0, "train_pairs": 0}


def dpo_result(step: Step | None) -> dict:
    """An arm's DPO figures for the report: the training summary's held-out metrics and loss."""
    if step is None:
        return {}
    try:
        summary = json.loads(Path(step.work_dir, "train_summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {"note": summary.get("note"), "reference": summary.get("reference"), "loss_type": summary.get("loss_type"),
            "beta": summary.get("beta"), "steps": summary.get("global_step", summary.get("steps")),
            "train_pairs": summary.get("train_pairs"), "heldout_pairs": summary.get("heldout_pairs"), "train_loss": summary.get("train_loss"),
            "heldout_before": summary.get("heldout_before"), "heldout_after": summary.get("heldout_after")}
