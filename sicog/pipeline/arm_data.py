"""Each arm's stage-1.5 data in round k, planned from its entry of the arms table (sicog.pipeline.arms).

The steps a round needs follow from the sources its arms name, and nothing else:

    r{k}/warmup_*, r{k}/sample_*   for a task some arm takes curated or candidate data of
    r{k}/curate_*                  for a task some arm takes curated data of, matched or kept candidates,
                                   or truth noised like the curated labels
    r{k}/uncurated_*               one seeded random candidate per item (`matched`: as many items as
                                   curation keeps; `kept`: those very items; `_parseable`: among the
                                   candidates curation parses); one step per distinct setting
    oracle_*                       the first max_items truth records when sampling takes only those
    r{k}/noised_*                  truth with a share of its counts / answers made wrong (`noise`,
                                   `noise_from`: curated), one step per distinct share

Shared steps are planned once however many arms read them, so two arms that differ only in their
text-only share or budget train on the very same files.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sicog.config import ConfigError
from sicog.pipeline import data_steps
from sicog.pipeline.arms import ArmSource, ArmSpec
from sicog.pipeline.config import expand_env
from sicog.pipeline.step import Step
from sicog.pipeline.tasks import TASK_NAMES, TASKS


def _items(planner, src: ArmSource) -> str:
    return src.items or planner.cfg.uncurated_items


def plan_round_data(planner, k: int, base: str, arms: list[ArmSpec]) -> dict[str, list[str]]:
    """Warm-up, sampling, curation and data steps of round k; returns each arm's stage-1.5 files."""
    cfg, data, r = planner.cfg, planner.data, f"r{k}"
    sampled = [t for t in TASK_NAMES if any(a.uses("curated", t, k) or a.uses("candidate", t, k)
                                       or any(s.reads_curated() for s in a.uses("truth", t, k)) for a in arms)]
    cand = {}
    for task in sampled:
        t = TASKS[task]
        warm_key, stage, ann_key, unl_key, mode = t.warmup, t.warmup_stage, t.annotations, t.unlabeled, t.sample_mode
        warm = planner.train_step(f"{r}/{warm_key}", warm_key, stage, {"checkpoint": base},
                                  [{"path": planner.need(ann_key, "warm-up"), "image_folder": data.image_folder}],
                                  round=k, task=task)
        spec = getattr(cfg.sampling, task)
        cand[task] = planner.sample_step(f"{r}/sample_{task}", warm.outputs["checkpoint"],
                                         planner.need(unl_key, "sampling"), mode, spec, k, task)
        if cfg.label_quality:  # the teacher's own greedy labels, to compare curated labels with
            greedy = replace(spec, n=1, temperature=0.0, top_p=1.0)
            planner.greedy[(k, task)] = planner.sample_step(f"{r}/greedy_{task}", warm.outputs["checkpoint"],
                                                            planner.need(unl_key, "sampling"), mode, greedy, k,
                                                            task, role="greedy")
        planner.candidates[(k, task)] = cand[task]
    uncurated: dict[tuple[str, str, bool], str] = {}  # (task, items, parseable) -> records
    for task in sampled:
        draws = [(a.name, _items(planner, s), s.parseable) for a in arms for s in a.uses("candidate", task, k)]
        if any(a.uses("curated", task, k) or any(s.reads_curated() for s in a.uses("truth", task, k)) for a in arms) \
                or any(items in ("matched", "kept") for _, items, _p in draws):
            planner.curated[(k, task)] = planner.curate_step(task, cand[task], k)
        for arm, items, parseable in draws:
            if (task, items, parseable) in uncurated:
                continue
            plain = items == cfg.uncurated_items and not parseable
            name = f"{r}/uncurated_{task}" + ("" if plain else f"_{items}") + ("_parseable" if parseable else "")
            uncurated[(task, items, parseable)] = _uncurated_step(
                planner, name, cand[task], k, task, planner.curated[(k, task)] if items in ("matched", "kept") else None,
                arm=arm, items=items, parse_mode=TASKS[task].sample_mode if parseable else None)
            if plain:
                planner.uncurated[(k, task)] = uncurated[(task, items, parseable)]
    truth = {t: _truth(planner, k, t) for t in TASK_NAMES if any(a.uses("truth", t, k) for a in arms)}
    noised: dict[tuple, str] = {}  # (task, share, noise_from, noise_values) -> records
    for arm in arms:
        for src in arm.sources:
            if not src.noised() or src.round not in (None, k):
                continue
            for task in src.tasks():
                key = (task, src.noise, src.noise_from, src.noise_values)
                if key not in noised:
                    name = f"{r}/noised_{task}" + (f"_{src.noise:g}" if src.noise is not None else "") \
                        + ("" if src.noise_values == "uniform" else f"_{src.noise_values}")
                    noised[key] = _noised_step(planner, name, truth[task], k, task, src,
                                               planner.curated[(k, task)] if src.reads_curated() else None,
                                               arm=arm.name)
    out, paired = {}, {}  # paired: a file -> that file with companions (one step per file)
    for arm in arms:
        files = []
        for src in arm.sources:
            if src.kind == "file":
                files.append(_external(planner, arm, src))
                continue
            for task in src.tasks():
                if src.kind == "annotations":  # the annotations have both forms already
                    files.append(planner.need(TASKS[task].annotations, f"the {arm.name} arm"))
                    continue
                if src.kind == "curated":
                    path = _curated(planner, arm, src, k, task)
                elif src.kind == "candidate":
                    path = uncurated[(task, _items(planner, src), src.parseable)]
                elif src.noised():
                    path = noised[(task, src.noise, src.noise_from, src.noise_values)]
                else:
                    path = truth[task]
                if cfg.mixture.companions:
                    if path not in paired:
                        paired[path] = _companions_step(planner, f"{r}/companions_{_tag(planner, path)}", path,
                                                        k, task, arm=arm.name)
                    path = paired[path]
                files.append(path)
        out[arm.name] = files
    return out


def _uncurated_step(planner, name: str, candidates: str, k: int, task: str, match: str | None, *,
                   arm: str, items: str, parse_mode: str | None = None) -> str:
    out, seed = planner.folder(name) + "/records.jsonl", planner.round_seed(k)
    params = {"seed": seed, "items": items, **({"parseable": parse_mode} if parse_mode else {})}
    what = {"matched": " of as many items as curation keeps", "kept": " of the items curation kept"}
    planner.add(Step(name=name, kind="data", inputs={"candidates": candidates} | ({"curated": match} if match else {}),
                  outputs={"records": out}, params=params,
                  action=data_steps.uncurated_action(candidates, out, seed, match, items, parse_mode),
                  work_dir=planner.folder(name), round=k, arm=arm, task=task, role="uncurated",
                  describe=f"one random {'parseable ' if parse_mode else ''}candidate per item"
                           + (what.get(items, "") if match else "")))
    return out


def _noised_step(planner, name: str, truth: str, k: int, task: str, src: ArmSource, labels: str | None, *,
                arm: str) -> str:
    """Truth with a share of its stated counts / answers made wrong (`src.noise`, or the share `labels`
    get wrong), the wrong values drawn uniformly or as `labels`' are (`src.noise_values`)."""
    out, seed, share = planner.folder(name) + "/records.jsonl", planner.round_seed(k), src.noise
    like = src.noise_values != "uniform"
    params = {"seed": seed, "share": share, "share_of": "labels" if src.noise_from else None}
    if like:  # only then: the steps of runs made before the setting keep their digests
        params["values"] = src.noise_values
    planner.add(Step(name=name, kind="data", inputs={"truth": truth} | ({"labels": labels} if labels else {}),
                  outputs={"records": out}, params=params,
                  action=data_steps.noised_truth_action(truth, out, task, seed, share,
                                                        labels if src.noise_from else None, labels if like else None),
                  work_dir=planner.folder(name), round=k, arm=arm, task=task, role="noised",
                  describe="ground truth, " + (f"{share:.0%} of its items" if share is not None else "as many items as "
                           "the curated labels get wrong") + " with a wrong count / answer"
                           + (", drawn as the curated labels' wrong values are" if like else "")))
    return out


def _companions_step(planner, name: str, records: str, k: int, task: str, *, arm: str) -> str:
    """`records` with each CoD / CoT record followed by its direct description / short answer."""
    out = planner.folder(name) + "/records.jsonl"
    planner.add(Step(name=name, kind="data", inputs={"records": records}, outputs={"records": out},
                  params={"task": task}, action=data_steps.companions_action(records, out, task),
                  work_dir=planner.folder(name), round=k, arm=arm, task=task, role="companions",
                  describe=f"each record of {records} followed by its "
                           + ("direct description" if task == "captions" else "short answer")))
    return out


def _tag(planner, path: str) -> str:
    """A step-name part for a data file: the folder of the step that wrote it (r1_curate_reasoning),
    else the file's own name (a world's oracle_reasoning)."""
    p = Path(path)
    try:
        return str(p.parent.relative_to(planner.work)).replace("/", "_")
    except ValueError:
        return p.stem


def _curated(planner, arm: ArmSpec, src: ArmSource, k: int, task: str) -> str:
    """The curated file of the source's round (the arm's own round k when it names none)."""
    r = src.round or k
    where = f"arms.{arm.name}.sources[{arm.sources.index(src)}].round"
    if r > k:
        raise ConfigError(f"key {where}: round {r} comes after round {k}, where the arm trains")
    if (r, task) not in planner.curated:
        raise ConfigError(f"key {where}: round {r} curated no {task} (no arm of round {r} reads curated {task})")
    return planner.curated[(r, task)]


def _truth(planner, k: int, task: str) -> str:
    """The ground truth of the task's unlabeled items (its first max_items when sampling takes those)."""
    key = TASKS[task].truth
    path = planner.need(key, "the truth source of an arm (e.g. the oracle arm)")
    max_items = getattr(planner.cfg.sampling, task).max_items
    if max_items:
        name = f"oracle_{task}"  # of round 0: the same records whichever round reads them
        done = next((s for s in planner.steps if s.name == name), None)
        path = done.outputs["records"] if done else planner.head_step(name, path, max_items, task=task)
    planner.oracle[(k, task)] = path
    return path


def _external(planner, arm: ArmSpec, src: ArmSource) -> str:
    """A `file` source: ${VAR} expanded, absolute, present (or written by an earlier step)."""
    i = arm.sources.index(src)
    where = f"arms.{arm.name}.sources[{i}].path"
    path = str(Path(expand_env(src.path, where)).expanduser().resolve())
    planner.check_input(where, path)
    return path
