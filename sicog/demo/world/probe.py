"""A labelled probe for the round monitor (`monitor.probe`), drawn apart from a world.

`write_probe(world, out, n_images)` draws `n_images` fresh scenes with the world's own settings
under the split name "probe": every scene's seed derives from (world seed, "probe", index), so the
draw is independent of every split of the world, and nothing is written into the world's folder
(its files stay byte-identical, so every figure of the demo stays as it was). It renders the
scenes into OUT/images/probe/ and writes OUT/probe.jsonl, one short-answer question per image with
its true answer as the gpt turn (a multiple-choice layout for the world's `mcq_fraction`, answered
with the option letter), and OUT/questions.jsonl with the truth in the world's layout. No step of
the loop trains on these items.
"""

from __future__ import annotations

import random
from pathlib import Path

from sicog.data.bundle import read_manifest
from sicog.demo.world.generate import WorldSizes, _question_records, _write_bytes
from sicog.demo.world.render import png_bytes, render_scene
from sicog.demo.world.scenes import derive_seed, scene_for
from sicog.utils.io import write_jsonl

SPLIT = "probe"


def write_probe(world_dir: str | Path, out_dir: str | Path, n_images: int) -> dict:
    """Write OUT/probe.jsonl (+ images, questions.jsonl) for the world in `world_dir`; returns counts."""
    from sicog.demo.standins import world_scene_config

    cfg, seed = world_scene_config(world_dir)
    sizes = WorldSizes(**read_manifest(world_dir)["sizes"])
    out = Path(out_dir)
    (out / "images" / SPLIT).mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    truth: list[dict] = []
    for i in range(n_images):
        image_id = f"{SPLIT}-{i:06d}"
        image = f"images/{SPLIT}/{image_id}.png"
        scene = scene_for(seed, SPLIT, i, cfg, image_id)
        _write_bytes(out / image, png_bytes(render_scene(scene, cfg.colour_jitter, cfg.noise_sd)))
        rng = random.Random(derive_seed("sicog-world-text", seed, SPLIT, i))
        records += _question_records(SPLIT, image_id, image, scene, rng, 1, cfg, sizes, "instructions", truth)
    write_jsonl(out / "questions.jsonl", truth)
    write_jsonl(out / "probe.jsonl", records)  # last: the step's output
    return {"images": n_images, "records": len(records),
            "multiple_choice": sum(1 for t in truth if t["answer_letter"])}
