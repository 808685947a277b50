"""The vLLM plugin's view of a `uhd` checkpoint (sicog.model.vllm_uhd.uhd_layout) against the hf
processor, and the plugin's packaging; no vLLM needed (the served parity is in
tests/stages/test_sample_vllm.py, `pytest -m vllm`)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sicog.model.uhd.image_processing_uhd import SicogUhdImageProcessor
from sicog.model.vllm_uhd import ARCHITECTURE, MODEL_CLASS
from sicog.model.vllm_uhd.uhd_layout import image_processor_settings, largest_image, layout_ids

REPO = Path(__file__).resolve().parents[3]


def test_the_saved_settings_rebuild_the_checkpoints_image_processor(tiny_uhd, tiny_uhd_ckpt):
    _, processor = tiny_uhd
    rebuilt = SicogUhdImageProcessor(**image_processor_settings(tiny_uhd_ckpt))
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8))
    want, got = processor.image_processor.slice_image(image), rebuilt.slice_image(image)
    assert want[1:] == got[1:] and want[1] != (0, 0)  # grid and token count; sliced
    assert len(want[0]) == len(got[0]) and all(np.array_equal(a, b) for a, b in zip(want[0], got[0]))


def test_settings_missing_are_named(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path)):
        image_processor_settings(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"max_slices": 4, "auto_map": {}}))
    assert image_processor_settings(tmp_path) == {"max_slices": 4}


@pytest.mark.parametrize("grid", [(0, 0), (2, 1), (1, 3), (3, 2), (7, 1)])
def test_layout_ids_equal_the_processors_expansion(tiny_uhd, tiny_uhd_ckpt, grid):
    _, processor = tiny_uhd
    config = json.loads((tiny_uhd_ckpt / "config.json").read_text())
    side = processor.image_processor.query_side
    want = processor.tokenizer(processor.layout_text(grid, side), add_special_tokens=False)["input_ids"]
    got = layout_ids(grid, side, config["image_token_id"], config["row_token_id"], config["slice_token_id"])
    assert got == want


def test_the_largest_image_has_the_longest_layout(tiny_uhd):
    proc = tiny_uhd[1].image_processor
    width, height = largest_image(proc)
    most = proc.num_tokens(width, height)
    rng = random.Random(0)
    sizes = [(rng.randint(1, 3000), rng.randint(1, 3000)) for _ in range(500)] + [(1, 4000), (4000, 1)]
    assert max(proc.num_tokens(w, h) for w, h in sizes) <= most
    unresized = SicogUhdImageProcessor(scale_resolution=64, patch_size=16, query_side=4, inference_longest_side=None)
    w, h = largest_image(unresized)
    # without the resize, seven slices in one column are possible: 28 rows of 4 + separators + overview
    assert unresized.num_tokens(w, h) == 28 * 5 + 1 + 16
    assert max(unresized.num_tokens(*s) for s in sizes) <= unresized.num_tokens(w, h)


def test_the_plugin_is_declared_and_imports_without_vllm(tiny_uhd_ckpt):
    declared = '[project.entry-points."vllm.general_plugins"]\nsicog_uhd = "sicog.model.vllm_uhd:register"\n'
    assert declared in (REPO / "pyproject.toml").read_text()
    module, cls = MODEL_CLASS.split(":")
    assert f"class {cls}(" in (REPO / (module.replace(".", "/") + ".py")).read_text()
    assert json.loads((tiny_uhd_ckpt / "config.json").read_text())["architectures"] == [ARCHITECTURE]
    # `import sicog` and the plugin's registration module load no vLLM; registering needs it
    probe = ("import sys, sicog, sicog.model.vllm_uhd as p, sicog.model.vllm_uhd.uhd_layout; "
             "assert 'vllm' not in sys.modules; p.register()")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert res.returncode != 0 and "No module named 'vllm'" in res.stderr, res.stderr[-2000:]
