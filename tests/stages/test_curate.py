"""`sicog curate` end to end: real bundled MiniLM, outputs, report, errors, sharding, resume."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from sicog.cli import main
from sicog.config import save_config
from sicog.data import formats
from sicog.data.records import validate_training_record
from sicog.stages.curation.config import CurateConfig
from sicog.stages.curation.encoders import load_encoder
from sicog.stages.curation.runner import run_curation
from sicog.utils.io import SicogError
from sicog.utils.shards import parts_dir

CONSENSUS = ["A red circle sits on the left side of the image.",
             "On the left there is a red circle.",
             "The image shows a red circle at the left.",
             "A red round circle is placed on the left."]
OUTLIER = "A large blue square fills the upper right corner."


def cod(description: str, step1: str = "Shapes on a grey background.") -> str:
    return formats.format_cod([step1, "Flat colours.", "One object.", "Nothing else.", description])


def write_jsonl(path: Path, recs) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                            for r in recs), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines() if x.strip()]


def cand(i, cands, mode="cod", image=True, prompt=formats.COD_PROMPT):
    return {"id": i, "image": f"{i}.png" if image else None, "prompt": prompt, "mode": mode,
            "candidates": cands, "corruption": None, "meta": {"seed": 0}}


def caption_records():
    consensus = [cod(t, step1=f"Variant {k}.") for k, t in enumerate(CONSENSUS)]
    return [
        cand("consensus", [consensus[0], cod(OUTLIER), *consensus[1:]]),
        cand("identical", [cod("A green triangle.")] * 3),
        cand("unicode", [cod("Un cercle rouge à gauche, très net."), cod("Un cercle rouge à gauche."),
                         cod("红色的圆在左边。")]),
        cand("single", [cod("Only one candidate.")]),
        cand("none", []),
        cand("empty", ["", "   ", "no steps at all"]),
    ]


@pytest.fixture(scope="module")
def minilm():
    return load_encoder("minilm", device="cpu")


def _cfg(tmp_path: Path, src: Path, **kw) -> CurateConfig:
    base = {"candidates": str(src), "out": str(tmp_path / "curated.jsonl"), "task": "caption",
            "report_dir": str(tmp_path / "report"),
            "progress": False, "batch_size": 16}
    return CurateConfig(**{**base, **kw})


def test_cli_caption_end_to_end_with_bundled_minilm(tmp_path):
    src = write_jsonl(tmp_path / "cands.jsonl", caption_records())
    out = tmp_path / "curated.jsonl"
    rc = main(["curate", "--candidates", str(src), "--out", str(out), "--task", "caption",
               "--threshold", "0.5", "--report-dir", str(tmp_path / "report"), "--seed", "7", "--no-progress"])
    assert rc == 0
    kept = {r["id"]: r for r in read_jsonl(out)}
    assert set(kept) == {"consensus", "identical", "unicode"}
    c = kept["consensus"]
    assert c["chosen_index"] != 1 and c["scores"][1] == min(c["scores"])  # the outlier is last
    ranking = sorted(range(5), key=lambda i: (-c["scores"][i], i))
    assert c["chosen_index"] == ranking[0] and c["rejected_index"] in ranking[3:]  # lower half: last 2
    assert c["conversations"][0]["value"] == formats.with_image_token(formats.COD_PROMPT)
    assert formats.parse_cod(c["conversations"][1]["value"]) is not None  # the FULL candidate
    assert c["score"] == max(c["scores"]) and c["mode"] == "cod" and c["corruption"] is None
    for r in kept.values():
        validate_training_record(r, "out")
    assert kept["identical"]["chosen_index"] == 0 and kept["identical"]["score"] == pytest.approx(1.0)
    assert "à gauche" in kept["unicode"]["conversations"][1]["value"]
    assert c["rejected"] not in (None, c["conversations"][1]["value"])  # `sicog pairs` makes the DPO pair of it
    stats = json.loads((tmp_path / "report" / "stats.json").read_text())
    assert stats["items"] == 6 and stats["kept"] == 3 and stats["threshold"] == 0.5
    assert stats["keep_fraction"] is None and stats["score_cut"] == min(r["score"] for r in kept.values())
    assert stats["degenerate"]["no_candidates"] == 1
    assert stats["degenerate"]["all_extractions_failed"] == 1
    assert stats["degenerate"]["too_few_valid_candidates"] == 1
    assert stats["degenerate"]["single_candidate_records"] == 1
    assert stats["degenerate"]["identical_candidates"] == 1
    assert stats["extraction_failures_by_kind"] == {"empty": 2, "no_description": 1, "no_answer": 0}
    assert set(stats["at_threshold"]) == {"0.5", "0.8", "0.85", "0.9"}
    assert stats["throughput"]["texts_encoded"] < stats["candidates"]  # deduplicated
    assert stats["encoder_info"]["encoder"] == "minilm"
    assert (tmp_path / "report" / "best_scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not parts_dir(out).exists()


def test_config_yaml_is_the_command_and_flags_override_it(tmp_path):
    """`sicog curate curate.yaml --threshold 0.99`: a saved CurateConfig is a complete command line."""
    src = write_jsonl(tmp_path / "cands.jsonl", caption_records())
    cfg = _cfg(tmp_path, src, threshold=0.5, seed=7)
    save_config(cfg, tmp_path / "curate.yaml")
    assert main(["curate", str(tmp_path / "curate.yaml")]) == 0
    assert {r["id"] for r in read_jsonl(cfg.out)} == {"consensus", "identical", "unicode"}
    stats = json.loads((tmp_path / "report" / "stats.json").read_text())
    assert stats["config"] == asdict(cfg) and stats["threshold"] == 0.5
    assert main(["curate", str(tmp_path / "curate.yaml"), "--threshold", "0.99"]) == 2  # other settings: refused
    assert main(["curate", str(tmp_path / "curate.yaml"), "--threshold", "0.99", "--overwrite"]) == 0
    assert {r["id"] for r in read_jsonl(cfg.out)} == {"identical"}  # only 1.0 scores pass 0.99
    assert json.loads((tmp_path / "report" / "stats.json").read_text())["config"]["threshold"] == 0.99


@pytest.mark.parametrize("argv, message", [
    (["--out", "o.jsonl", "--task", "caption"], "--candidates is required (or `candidates:` in CONFIG.yaml)"),
    (["--candidates", "c.jsonl", "--out", "o.jsonl"], "--task is required (or `task:` in CONFIG.yaml)"),
    (["--candidates", "c.jsonl", "--out", "c.jsonl", "--task", "caption"], ") is --candidates ("),
    (["--candidates", "c.jsonl", "--out", "o.jsonl", "--task", "caption", "--threshold", "0.8",
      "--keep-fraction", "0.5"], "--threshold (threshold): 0.8 given with --keep-fraction 0.5: the two are exclusive, give one"),
    (["--candidates", "c.jsonl", "--out", "o.jsonl", "--task", "caption", "--keep-fraction", "0"],
     "--keep-fraction (keep_fraction): must be in (0, 1], got 0.0"),
    (["--candidates", "c.jsonl", "--out", "o.jsonl", "--task", "caption", "--threshold", "2"], "--threshold (threshold): must be in [-1, 1], got 2.0"),
])
def test_missing_or_bad_settings_are_clean_errors(tmp_path, capsys, argv, message):
    assert main(["curate", *argv]) == 2
    assert message in capsys.readouterr().err


def test_flag_names_and_defaults_are_the_cli_contract():
    import argparse

    from sicog.stages.curate import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    flags = sorted(s for a in p._actions for s in a.option_strings if s not in ("-h", "--help"))
    assert flags == sorted(["--candidates", "--out", "--task", "--encoder", "--threshold", "--batch-size",
                            "--keep-fraction", "--report-dir", "--seed", "--min-candidates", "--chunk-items",
                            "--device", "--dtype", "--max-seq-length", "--instruction", "--no-progress",
                            "--overwrite"])
    assert [a.choices for a in p._actions if a.dest in ("task", "dtype")] == \
        [("caption", "reasoning"), ("auto", "float32", "float16", "bfloat16")]
    d = CurateConfig()
    assert (d.encoder, d.threshold, d.batch_size, d.seed, d.min_candidates, d.chunk_items, d.device, d.dtype,
            d.max_seq_length, d.instruction, d.progress) == ("minilm", None, 256, 0, 2, 20000, "auto", "auto",
                                                              None, None, True)


def test_reasoning_consensus_keeps_full_cot(tmp_path, minilm):
    def cot(answer, why):
        return formats.format_cot("Find the colour.", "A shape.", why, formats.answer_sentence(answer))
    rec = cand("q1", [cot("Red", "The circle is red."), cot("Blue", "It looks blue to me."),
                      cot("Blue", "The pixels are blue."), cot("Blue", "Blue dominates."),
                      "no structure and no answer"], mode="cot", prompt="What colour? Answer the question step-by-step.")
    src = write_jsonl(tmp_path / "c.jsonl", [rec])
    stats = run_curation(_cfg(tmp_path, src, task="reasoning", threshold=0.9), encoder=minilm)
    (out,) = read_jsonl(tmp_path / "curated.jsonl")
    assert out["chosen_index"] == 1 and out["scores"][4] is None  # ties among "Blue": lowest index
    assert formats.parse_cot(out["conversations"][1]["value"]) is not None
    assert out["rejected_index"] in (0, 3)  # n=4 usable: lower half = last 2 of the ranking
    assert stats["extraction_failures_by_kind"]["no_answer"] == 1


def test_thresholds_and_rejected_picks_reproduce(tmp_path, minilm):
    src = write_jsonl(tmp_path / "c.jsonl", caption_records())
    a = run_curation(_cfg(tmp_path / "a", src, threshold=0.5, seed=3), encoder=minilm)
    b = run_curation(_cfg(tmp_path / "b", src, threshold=0.5, seed=3), encoder=minilm)
    assert (tmp_path / "a" / "curated.jsonl").read_bytes() == (tmp_path / "b" / "curated.jsonl").read_bytes()
    assert b["at_threshold"] == a["at_threshold"] and b["best_score_quantiles"] == a["best_score_quantiles"]
    hi = run_curation(_cfg(tmp_path / "c", src, threshold=0.99, seed=3), encoder=minilm)
    kept_hi = {r["id"] for r in read_jsonl(tmp_path / "c" / "curated.jsonl")}
    assert kept_hi == {"identical"}  # only 1.0 scores pass 0.99
    assert a["at_threshold"]["0.9"] == hi["at_threshold"]["0.9"]  # same scores, whatever the threshold
    best = [r["score"] for r in read_jsonl(tmp_path / "a" / "curated.jsonl")]
    assert a["at_threshold"]["0.5"]["kept"] == a["kept"] == len(best)


class Fake:
    """Deterministic character-trigram encoder: cheap stand-in for sharding tests."""

    def encode(self, texts, batch_size, progress=False):
        out = np.zeros((len(texts), 64), np.float32)
        for i, t in enumerate(texts):
            for k in range(len(t) - 2):
                out[i, hash(t[k:k + 3]) % 64] += 1
        return out


def test_rank_sharding_merges_exactly_once(tmp_path, monkeypatch):
    recs = [cand(f"r{i}", [cod(f"A red circle number {i}."), cod(f"A red circle, number {i}."),
                           cod("Something else entirely.")]) for i in range(9)]
    src = write_jsonl(tmp_path / "c.jsonl", recs)
    single = run_curation(_cfg(tmp_path / "one", src, threshold=0.0), encoder=Fake())
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("RANK", "1")
    cfg = _cfg(tmp_path / "two", src, threshold=0.0, wait_timeout=5)
    assert run_curation(cfg, encoder=Fake()) is None
    assert not Path(cfg.out).exists() and parts_dir(cfg.out).is_dir()
    monkeypatch.setenv("RANK", "0")
    two = run_curation(cfg, encoder=Fake())
    one_out = read_jsonl(tmp_path / "one" / "curated.jsonl")
    two_out = read_jsonl(cfg.out)
    assert [r["id"] for r in two_out] == [f"r{i}" for i in range(9)]
    assert one_out == two_out
    assert two["world_size"] == 2 and len(two["throughput"]["per_rank"]) == 2 and single["items"] == 9
    assert not parts_dir(cfg.out).exists()


def test_keep_fraction_keeps_the_top_items_over_every_rank(tmp_path, monkeypatch):
    """--keep-fraction: the round(F * n) scored items with the highest best score (ties: input order),
    decided after the ranks merge, so one rank or two give the same file; stats name the real cut."""
    recs = [cand(f"r{i}", [cod(f"A red circle number {i}."), cod(f"A {'blue ' * (i % 4)}circle, number {i}."),
                           cod("Something else entirely.")]) for i in range(9)]
    src = write_jsonl(tmp_path / "c.jsonl", recs)
    every = run_curation(_cfg(tmp_path / "all", src, threshold=-1.0), encoder=Fake())
    scores = {r["id"]: r["score"] for r in read_jsonl(tmp_path / "all" / "curated.jsonl")}
    assert every["kept"] == len(scores) == 9
    top = sorted(scores, key=lambda i: (-scores[i], int(i[1:])))[:4]  # round(0.45 * 9) = 4
    one = run_curation(_cfg(tmp_path / "one", src, keep_fraction=0.45), encoder=Fake())
    kept = read_jsonl(tmp_path / "one" / "curated.jsonl")
    assert [r["id"] for r in kept] == [i for i in scores if i in top]  # input order
    assert one["kept"] == 4 and one["threshold"] is None and one["keep_fraction"] == 0.45
    assert one["score_cut"] == min(scores[i] for i in top) and one["degenerate"]["below_threshold"] == 5
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("RANK", "1")
    cfg = _cfg(tmp_path / "two", src, keep_fraction=0.45, wait_timeout=5)
    assert run_curation(cfg, encoder=Fake()) is None
    monkeypatch.setenv("RANK", "0")
    two = run_curation(cfg, encoder=Fake())
    assert (tmp_path / "two" / "curated.jsonl").read_bytes() == (tmp_path / "one" / "curated.jsonl").read_bytes()
    assert two["score_cut"] == one["score_cut"] and two["kept"] == 4


def test_default_threshold_is_the_papers(tmp_path):
    cfg = _cfg(tmp_path, write_jsonl(tmp_path / "c.jsonl", caption_records()))
    assert cfg.cut() == {"threshold": 0.9} and cfg.run_key()["threshold"] == 0.9
    assert _cfg(tmp_path, cfg.candidates, keep_fraction=0.5).cut() == {"keep_fraction": 0.5}


def test_resume_refuses_parts_of_other_settings(tmp_path, monkeypatch):
    src = write_jsonl(tmp_path / "c.jsonl", caption_records())
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    cfg = _cfg(tmp_path, src, threshold=0.5)
    run_curation(cfg, encoder=Fake())
    monkeypatch.setenv("RANK", "0")
    other = _cfg(tmp_path, src, threshold=0.6)
    with pytest.raises(SicogError, match="other settings .*threshold"):
        run_curation(other, encoder=Fake())
    run_curation(cfg, encoder=Fake())  # same settings: rank 1's part is reused
    assert len(read_jsonl(cfg.out)) == 3


@pytest.mark.parametrize("line, message", [
    ('{"id": "a", "prompt": "p", "candidates": "not a list"}', r"c\.jsonl:2: field 'candidates'"),
    ('{"id": "a", "prompt": "p", "candidates": ["ok", 3]}', r"c\.jsonl:2: field 'candidates\[1\]'"),
    ('{"id": "a", "prompt": "p", "candidates": ["x"', r"c\.jsonl:2: invalid JSON"),
    ('{"id": "a", "candidates": ["x"]}', r"c\.jsonl:2: field 'prompt'"),
    ('{"id": "a", "prompt": "p", "mode": "cot", "candidates": ["x"]}', r"c\.jsonl:2: field 'mode'"),
    ('{"id": "ok", "prompt": "p", "candidates": ["x"]}', r"c\.jsonl:2: field 'id': duplicate"),
    ('[1, 2]', r"c\.jsonl:2: field '<record>'"),
])
def test_malformed_input_names_file_line_field_and_leaves_nothing(tmp_path, capsys, line, message):
    src = write_jsonl(tmp_path / "c.jsonl", ['{"id": "ok", "prompt": "p", "candidates": ["x", "y"]}', line])
    out = tmp_path / "o" / "curated.jsonl"
    rc = main(["curate", "--candidates", str(src), "--out", str(out), "--task", "caption",
               "--report-dir", str(tmp_path / "o" / "rep")])
    assert rc == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("encoder, message", [
    ("no-such-encoder", "Registry: minilm"),
    ("nv-embed-v2", "needs a local folder"),
    ("nv-embed-v2:/nonexistent/NV-Embed-v2", "not found"),
])
def test_encoder_errors_are_clear(tmp_path, capsys, encoder, message):
    src = write_jsonl(tmp_path / "c.jsonl", caption_records())
    out = tmp_path / "o" / "curated.jsonl"
    rc = main(["curate", "--candidates", str(src), "--out", str(out), "--task", "caption",
               "--encoder", encoder, "--no-progress"])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not parts_dir(out).exists()


def test_nvembed_folder_given_as_plain_path_is_refused(tmp_path):
    from sicog.stages.curation.encoders import parse_encoder_spec

    (tmp_path / "nv").mkdir()
    (tmp_path / "nv" / "config.json").write_text('{"model_type": "nvembed"}')
    with pytest.raises(SicogError, match="nv-embed-v2:"):
        parse_encoder_spec(str(tmp_path / "nv"))
    assert parse_encoder_spec(f"nv-embed-v2:{tmp_path / 'nv'}").kind == "nv-embed-v2"


def test_encoder_spec_is_exact_never_a_path_substring(tmp_path, minilm):
    from sicog.stages.curation.encoders import parse_encoder_spec

    folder = tmp_path / "NV-Embed-v2-minilm"  # names that would fool substring matching
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    assert parse_encoder_spec(str(folder)).kind == "sentence-transformers"
    with pytest.raises(SicogError, match="Registry|registry|choose one of"):
        parse_encoder_spec("")
    # the bundled folder given as a plain path loads as a sentence-transformers folder, same vectors
    plain = load_encoder(minilm.spec.path, device="cpu")
    assert plain.info["encoder"] == "sentence-transformers" and minilm.info["encoder"] == "minilm"
    np.testing.assert_allclose(plain.encode(["a red circle"], 4), minilm.encode(["a red circle"], 4), atol=1e-6)
