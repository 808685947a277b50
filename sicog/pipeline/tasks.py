"""The two tasks of the loop and every name each goes by: one table.

A pipeline YAML names a task by its section (`sampling.captions`, `curation.reasoning`); the
commands it runs have their own words for the same task (`sicog sample --mode cod`, `sicog curate
--task caption`), and its data and stages are keyed by it too. Every translation between these
names reads `TASKS` here, so a third task would be one more row.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """One task: its pipeline name and what it is called elsewhere."""

    name: str  # pipeline sections and step names: sampling.<name>, r1/sample_<name>
    sample_mode: str  # `sicog sample --mode`: the prompt of the self-generated labels
    curate_task: str  # `sicog curate --task`: the extraction and encoder lengths
    warmup: str  # the stages.<warmup> key and the r{k}/<warmup> step
    warmup_stage: str  # the stage name of that warm-up's training config
    annotations: str  # data key of the warm-up annotations
    unlabeled: str  # data key of the unlabeled pool sampled from
    truth: str  # data key of the ground truth (the oracle arms), where a data bundle has it


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("captions", "cod", "caption", "warmup_perception", "stage0_warmup_perception", "annotated_captions",
         "unlabeled_images", "oracle_captions"),
    Task("reasoning", "cot", "reasoning", "warmup_reasoning", "stage0_warmup_reasoning", "annotated_reasoning",
         "unlabeled_questions", "oracle_reasoning"),
)}
TASK_NAMES = tuple(TASKS)
