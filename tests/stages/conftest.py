"""Fixtures for training tests: a small image+text dataset and stage configs on the tiny preset."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}


def write_tiny_dataset(root: Path, n: int = 24, seed: int = 0) -> dict:
    """n images (a coloured square on grey) with caption records, plus a text-only file."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    recs, text = [], []
    names = list(COLOURS)
    for i in range(n):
        colour = names[i % len(names)]
        arr = np.full((64, 64, 3), 128, np.uint8)
        x, y = rng.integers(0, 40, size=2)
        arr[y:y + 20, x:x + 20] = COLOURS[colour]
        Image.fromarray(arr).save(root / "images" / f"{i}.png")
        recs.append({"id": f"img-{i}", "image": f"images/{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is the square?"},
            {"from": "gpt", "value": f"The square is {colour}."}]})
        text.append({"id": f"txt-{i}", "conversations": [
            {"from": "human", "value": f"Name colour number {i % 4}."},
            {"from": "gpt", "value": f"Colour number {i % 4} is {colour}."}]})
    data = root / "captions.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in recs))
    text_path = root / "text.jsonl"
    text_path.write_text("".join(json.dumps(r) + "\n" for r in text))
    return {"captions": data, "text": text_path, "image_folder": root}


TINY = {"image_size": 64, "patch_size": 16, "vision_hidden_size": 32, "vision_layers": 1,
        "vision_heads": 2, "hidden_size": 64, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2,
        "intermediate_size": 128, "vocab_size": 512}


def stage_config(tmp: Path, data: dict, name: str, **training) -> Path:
    """Write a stage YAML on the tiny preset; returns its path."""
    cfg = {
        "stage": name,
        "model": {"preset": "tiny", "tiny": TINY},
        "training": {"output_dir": str(tmp / name), "learning_rate": 5e-3, "per_device_train_batch_size": 4,
                     "max_steps": 4, "warmup_ratio": 0.0, "logging_steps": 2, "save_steps": 2,
                     "seed": 0, **training},
        "data": {"sources": [{"path": str(data["captions"]), "image_folder": str(data["image_folder"])}],
                 "max_length": 128},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def tiny_data(tmp_path):
    return write_tiny_dataset(tmp_path / "data")


def write_tiny_pairs(root: Path, data: dict, n: int = 8) -> dict:
    """Preference pairs on `write_tiny_dataset`'s images: chosen names the square's colour,
    rejected dodges the question (a preference a few steps can learn); the first n in
    pairs.jsonl, the rest in heldout.jsonl."""
    names = list(COLOURS)
    pairs = []
    for line in data["captions"].read_text().splitlines()[: n + 4]:
        rec = json.loads(line)
        i = int(rec["id"].split("-")[1])
        pairs.append({"id": rec["id"], "image": rec["image"], "prompt": "What colour is the square?",
                      "chosen": f"The square is {names[i % 4]}.", "rejected": "I cannot tell, sorry.",
                      "source": "curated", "corruption": None})
    train, heldout = root / "pairs.jsonl", root / "heldout.jsonl"
    train.write_text("".join(json.dumps(p) + "\n" for p in pairs[:n]))
    heldout.write_text("".join(json.dumps(p) + "\n" for p in pairs[n:]))
    return {"pairs": train, "heldout": heldout, "image_folder": data["image_folder"]}


def dpo_config(tmp: Path, pairs: dict, name: str, dpo: dict | None = None, **training) -> Path:
    """Write a DPO stage YAML on the tiny preset over `write_tiny_pairs`' files; returns its path."""
    path = stage_config(tmp, {"captions": pairs["pairs"], "image_folder": pairs["image_folder"]}, name, **training)
    cfg = yaml.safe_load(path.read_text())
    cfg["dpo"] = {"heldout": str(pairs["heldout"]), **(dpo or {})}
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def tiny_pairs(tiny_data, tmp_path):
    return write_tiny_pairs(tmp_path / "data", tiny_data)
