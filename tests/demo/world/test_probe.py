"""The round monitor's probe: drawn apart from the world, the world's files untouched, answers true."""

import hashlib
import json
from pathlib import Path

from sicog.data import formats as F
from sicog.data.records import read_records
from sicog.demo.world.generate import WorldSizes, generate_world
from sicog.demo.world.probe import write_probe

SMALL = WorldSizes(n_align=4, n_annotated=3, n_reasoning=3, n_instructions=4, n_unlabeled_images=3,
                   n_unlabeled_questions=3, n_benchmark=4, mcq_fraction=0.5)


def _hashes(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_probe_leaves_the_world_byte_identical_and_is_its_own_draw(tmp_path):
    world = tmp_path / "world"
    generate_world(world, seed=3, sizes=SMALL, progress=False)
    before = _hashes(world)
    counts = write_probe(world, tmp_path / "probe", 12)
    assert _hashes(world) == before  # not a byte of the world changes (so no figure of the demo does)
    assert counts == {"images": 12, "records": 12, "multiple_choice": counts["multiple_choice"]}
    assert 0 < counts["multiple_choice"] < 12  # the world's mcq_fraction 0.5
    records = read_records(tmp_path / "probe" / "probe.jsonl")
    assert len(records) == 12
    world_ids = {json.loads(line)["id"] for line in (world / "scenes.jsonl").read_text().splitlines()}
    truth = {json.loads(line)["id"]: json.loads(line)
             for line in (tmp_path / "probe" / "questions.jsonl").read_text().splitlines()}
    world_images = {p.read_bytes() for p in (world / "images").rglob("*.png")}
    for loc in records:
        rec = loc.record
        assert rec["id"].startswith("probe-") and rec["id"].rsplit("-q", 1)[0] not in world_ids
        assert (tmp_path / "probe" / rec["image"]).read_bytes() not in world_images
        human, gpt = rec["conversations"][0]["value"], rec["conversations"][1]["value"]
        t = truth[rec["id"]]
        assert gpt == (t["answer_letter"] or t["answer"])  # the true short answer is the label
        assert bool(F.read_mcq_options(human)) == bool(t["answer_letter"])
    # the same world and count give the same probe
    write_probe(world, tmp_path / "again", 12)
    assert _hashes(tmp_path / "again") == _hashes(tmp_path / "probe")
