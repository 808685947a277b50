"""`sicog train` on bad input: exit 2, the place named, nothing written, inputs unchanged
(tests/reliability/_harness.py).

Every case starts from a valid stage ({tmp}/stage.yaml: the tiny preset, {tmp}/data/captions.jsonl,
output {tmp}/out; a copy of the tiny checkpoint in {tmp}/prev/final) and changes one thing.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from tests.stages.conftest import stage_config, write_tiny_dataset

from ._harness import BadInput, assert_clean_failure

OUT = ["out"]
ON_CKPT = ["--set", "model.preset=null", "--set", "model.checkpoint={tmp}/prev/final"]


def write_bomb_png(path: Path, side: int = 20000) -> Path:
    """A real, valid 1-bit PNG of side x side pixels (20000: 4e8, past PIL's decompression-bomb
    limit of 2 x Image.MAX_IMAGE_PIXELS; 10000: only past the warning limit) in ~50 KB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return Path(path)


def train(*sets: str, config: str = "{tmp}/stage.yaml") -> list[str]:
    """`sicog train` on the valid stage with `--set` overrides."""
    return ["train", config, *[a for s in sets for a in ("--set", s)]]


def sources(path: str, on_error: str = "raise") -> list[str]:
    return [f"data.sources=[{{path: '{{tmp}}/data/{path}', image_folder: '{{tmp}}/data'}}]",
            f"data.on_error={on_error}"]


CASES = [
    # the output folder against the inputs (nothing of the input may be replaced)
    BadInput("out_is_the_checkpoint", train("model.preset=null", "model.checkpoint={tmp}/prev/final",
                                            "training.output_dir={tmp}/prev/final"),
             r"training\.output_dir \(.*prev/final\) is model\.checkpoint \(.*prev/final\)"),
    BadInput("out_inside_the_checkpoint", train("model.preset=null", "model.checkpoint={tmp}/prev/final",
                                                "training.output_dir={tmp}/prev/final/more"),
             r"training\.output_dir \(.*prev/final/more\) is inside model\.checkpoint", ["prev/final/more"]),
    BadInput("out_contains_the_checkpoint", train("model.preset=null", "model.checkpoint={tmp}/prev/final",
                                                  "training.output_dir={tmp}/prev"),
             r"training\.output_dir \(.*/prev\) contains model\.checkpoint", ["prev/config.yaml"]),
    BadInput("out_contains_the_data", train("training.output_dir={tmp}/data"),
             r"training\.output_dir \(.*/data\) contains data\.sources\[0\]\.path", ["data/config.yaml"]),
    BadInput("out_is_the_projector_folder", train("model.mm_projector={tmp}/proj/mm_projector.safetensors",
                                                  "training.output_dir={tmp}/proj"),
             r"training\.output_dir \(.*/proj\) contains model\.mm_projector", ["proj/config.yaml"]),
    BadInput("out_under_a_file", train("training.output_dir={tmp}/afile/out"),
             r"training\.output_dir: .*afile/out: .*afile is a file, not a folder", ["afile/out"]),
    # data
    BadInput("data_not_utf8", train(*sources("latin1.jsonl")), r"latin1\.jsonl:3: not UTF-8 text", OUT),
    BadInput("json_list_not_utf8", train(*sources("latin1.json")), r"latin1\.json:4: not UTF-8 text", OUT),
    BadInput("bad_json_line", train(*sources("broken.jsonl")), r"broken\.jsonl:4: invalid JSON", OUT),
    # (every record a bomb: the mixture's order puts one in the pre-flight batch, before any output)
    BadInput("decompression_bomb", train(*sources("bomb.jsonl")),
             r"bomb\.jsonl:[12]: image .*bomb\.png is too large to decode safely", OUT),
    BadInput("decompression_bomb_warning_size", train(*sources("bomb_w.jsonl")),
             r"bomb_w\.jsonl:[12]: image .*bomb_w\.png is too large to decode safely", OUT),
    BadInput("only_bombs_with_skip", train(*sources("bombs.jsonl", "skip")),
             r"bombs\.jsonl: every record failed to load \(skipped: \{'unreadable_image': 2\}\)", OUT),
    # the model
    BadInput("corrupt_safetensors_checkpoint", train("model.preset=null", "model.checkpoint={tmp}/corrupt"),
             r"model\.checkpoint: .*corrupt: not a complete checkpoint: model\.safetensors is not a readable "
             r"safetensors file", OUT),
    # settings
    BadInput("batch_size_0", train("training.per_device_train_batch_size=0"),
             r"stage\.yaml.*key training\.per_device_train_batch_size: must be >= 1, got 0", OUT),
    BadInput("negative_learning_rate", train("training.learning_rate=-1e-4"),
             r"key training\.learning_rate: must be >= 0, got -0\.0001", OUT),
    BadInput("max_steps_minus_5", train("training.max_steps=-5"), r"key training\.max_steps: must be -1 or >= 1, got -5",
             OUT),
    BadInput("warmup_ratio_over_1", train("training.warmup_ratio=1.5"),
             r"key training\.warmup_ratio: must be in \[0, 1\), got 1\.5", OUT),
    BadInput("zero_epochs", train("training.num_train_epochs=0"), r"key training\.num_train_epochs: must be > 0, got 0",
             OUT),
    BadInput("source_weight_0", train("data.sources=[{path: '{tmp}/data/captions.jsonl', weight: 0}]"),
             r"key data\.sources\[0\]\.weight: must be > 0, got 0\.0", OUT),
    BadInput("lora_r_0", train("training.lora.r=0"), r"key training\.lora\.r: must be >= 1, got 0", OUT),
    BadInput("unknown_key", train("training.learning_rat=1"), r"key training\.learning_rat: unknown key", OUT),
    BadInput("bad_choice", train("training.lr_scheduler_type=cosin"),
             r"key training\.lr_scheduler_type: must be one of linear, cosine", OUT),
]


def _record(i: int, image: str) -> str:
    return json.dumps({"id": f"r{i}", "image": image, "conversations": [
        {"from": "human", "value": "<image>\nWhat colour is the square?"},
        {"from": "gpt", "value": "The square is red."}]}) + "\n"


@pytest.fixture
def stage(tmp_path, tiny_ckpt):
    """A valid stage in tmp_path plus every bad input the cases point at."""
    data = write_tiny_dataset(tmp_path / "data", n=8)
    stage_config(tmp_path, data, "stage", output_dir=str(tmp_path / "out"), max_steps=2)
    shutil.copytree(tiny_ckpt, tmp_path / "prev" / "final")
    shutil.copytree(tiny_ckpt, tmp_path / "corrupt")
    weights = tmp_path / "corrupt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a copy cut short
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "mm_projector.safetensors").write_bytes(b"not read: the paths are checked first")
    (tmp_path / "afile").write_text("a regular file, not a folder\n")
    d = tmp_path / "data"
    good = (d / "captions.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    latin1 = good[2].replace("square", "squ\xe9re").encode("latin-1")  # \xe9 alone is no UTF-8
    (d / "latin1.jsonl").write_bytes("".join(good[:2]).encode() + latin1 + "".join(good[3:]).encode())
    listed = "[\n" + ",\n".join(line.rstrip("\n") for line in good[:2]) + ",\n" + latin1.decode("latin-1")
    (d / "latin1.json").write_bytes((listed.rstrip("\n") + "\n]\n").encode("latin-1"))  # the bad line is 4
    (d / "broken.jsonl").write_text("".join(good[:3]) + good[3][:-5] + "\n" + "".join(good[4:]))
    write_bomb_png(d / "images" / "bomb.png")
    write_bomb_png(d / "images" / "bomb_w.png", side=10000)
    (d / "bomb.jsonl").write_text(_record(0, "images/bomb.png") + _record(1, "images/bomb.png"))
    (d / "bomb_w.jsonl").write_text(_record(0, "images/bomb_w.png") + _record(1, "images/bomb_w.png"))
    (d / "bombs.jsonl").write_text(_record(0, "images/bomb.png") + _record(1, "images/bomb.png"))
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_train_bad_input_fails_cleanly(stage, case):
    assert_clean_failure(case, stage)


def test_train_unwritable_output_folder_fails_before_building(stage):
    """A parent folder without write permission (meaningless as root: root writes anyway)."""
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod does not stop root from writing (see out_under_a_file)")
    locked = stage / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert_clean_failure(BadInput("out_not_writable", train("training.output_dir={tmp}/locked/out"),
                                      r"training\.output_dir: .*locked/out: .*locked is not writable",
                                      ["locked/out"]), stage)
    finally:
        locked.chmod(0o755)
