"""The task table (sicog.pipeline.tasks): every name a task goes by is one the rest of sicog knows."""

from __future__ import annotations

import dataclasses

from sicog.pipeline.config import CurationConfig, PipelineData, SamplingConfig, StagesConfig
from sicog.pipeline.tasks import TASK_NAMES, TASKS
from sicog.stages.curation.items import TASK_MODES
from sicog.stages.curation.items import TASKS as CURATE_TASKS
from sicog.stages.sampling.items import MODES


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_each_task_maps_to_names_that_exist():
    assert TASK_NAMES == ("captions", "reasoning")
    for task in TASKS.values():
        assert task.name in _fields(SamplingConfig) and task.name in _fields(CurationConfig)
        assert task.sample_mode in MODES and task.curate_task in CURATE_TASKS
        # curate reads the sampled mode's texts with the extraction of its own task
        assert task.sample_mode in TASK_MODES[task.curate_task]
        assert task.warmup in _fields(StagesConfig)
        assert {task.annotations, task.unlabeled, task.truth} <= _fields(PipelineData)


def test_the_names_are_one_to_one():
    for attr in ("sample_mode", "curate_task", "warmup", "warmup_stage", "annotations", "unlabeled", "truth"):
        values = [getattr(t, attr) for t in TASKS.values()]
        assert len(set(values)) == len(values), attr
