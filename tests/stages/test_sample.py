"""`sicog sample`: prompts per mode, ids, validation, errors, small images, skips (in-process)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from sicog.cli import main
from sicog.config import save_config
from sicog.data import formats
from sicog.data.records import DataError, Located
from sicog.stages.sampling.config import SampleConfig
from sicog.stages.sampling.items import build_items, parse_corruptions
from sicog.stages.sampling.runner import run_sampling, summary_path
from sicog.utils.io import SicogError
from sicog.utils.shards import parts_dir
from tests.stages._sampling import QUESTION, one_torch_thread, read_jsonl, write_records  # noqa: F401


def _loc(rec, line=1):
    return Located(rec, "d.jsonl", line)


def _rec(i, image=True, q=QUESTION, answer=None):
    conv = [{"from": "human", "value": q}] + ([{"from": "gpt", "value": answer}] if answer else [])
    r = {"id": f"r{i}", "conversations": conv}
    if image:
        r["image"] = f"{i}.png"
    return r


def test_prompts_per_mode():
    recs = [_loc(_rec(0, answer="red"))]
    p = {m: build_items(recs, m, [None])[0].prompt for m in ("cod", "caption", "cot", "direct", "conv")}
    assert p["cod"] == formats.COD_PROMPT
    assert p["caption"] == formats.CAPTION_PROMPT
    assert p["cot"] == "What colour is the circle? Answer the question step-by-step."
    assert p["direct"] == "What colour is the circle? Answer the question using a single word or phrase."
    assert p["conv"] == formats.strip_image_token(QUESTION)
    step = _loc(_rec(1, q="<image>\nHow many? Answer the question step-by-step."))
    assert build_items([step], "direct", [None])[0].prompt == \
        "How many? Answer the question using a single word or phrase."
    assert build_items(recs, "cot", [None])[0].reference == "red"


def test_corruption_ids_are_unique_and_name_the_source():
    recs = [_loc(_rec(i), i + 1) for i in range(3)]
    items = build_items(recs, "cod", parse_corruptions("none,blur,mask"))
    assert [it.id for it in items[:3]] == ["r0", "r0#gaussian_blur", "r0#mask"]
    assert len({it.id for it in items}) == 9
    assert {it.source_id for it in items} == {"r0", "r1", "r2"}
    assert [it.key for it in items] == list(range(9))
    only = build_items(recs, "cod", parse_corruptions("mask"))
    assert [it.id for it in only] == ["r0#mask", "r1#mask", "r2#mask"]
    with pytest.raises(SicogError, match="unknown corruption"):
        parse_corruptions("sharpen")


def test_item_errors_name_file_and_line():
    with pytest.raises(DataError, match=r"d.jsonl:2: key 'id': duplicate id 'r0' \(first at d.jsonl:1\)"):
        build_items([_loc(_rec(0), 1), _loc(_rec(0), 2)], "cot", [None])
    with pytest.raises(DataError, match=r"d.jsonl:1: key 'image': mode 'cod' needs an image"):
        build_items([_loc(_rec(0, image=False))], "cod", [None])
    # text-only records are fine for question modes
    assert build_items([_loc(_rec(0, image=False))], "cot", [None])[0].image is None


@pytest.mark.parametrize("bad, where", [
    ('{"id": "a", "conversations": [{"from": "human", "value": "q"}]}\n{"id": "b", "conv\n', ":2:"),
    ('{"id": "a", "conversations": [{"from": "human", "value": "q"}]}\n{"id": "b"}\n', ":2: key 'conversations'"),
])
def test_malformed_data_file_fails_before_anything_is_written(tmp_path, capsys, bad, where):
    data = tmp_path / "bad.jsonl"
    data.write_text(bad)
    out = tmp_path / "out.jsonl"
    rc = main(["sample", "--model", str(tmp_path / "no-model"), "--data", str(data), "--out", str(out),
               "--mode", "cot", "--no-progress"])
    assert rc == 2
    assert f"{data}{where}" in capsys.readouterr().err
    assert not out.exists() and not parts_dir(out).exists() and not summary_path(out).exists()


def _cfg(ckpt, tmp_path, data, out="out.jsonl", **kw):
    base = dict(model=str(ckpt), data=str(data), out=str(tmp_path / out), mode="cot",
                n=3, image_folder=str(data.parent), temperature=1.0, max_new_tokens=6, batch_size=4,
                progress=False)
    base.update(kw)
    return SampleConfig(**base)


def test_every_record_processed_small_images_included_and_deterministic(tiny_ckpt, tmp_path):
    sizes = [(1, 1), (2, 500), (500, 2), (3, 3), (64, 64), (7, 5)]
    data = write_records(tmp_path, 6, sizes=sizes, answers=True)
    summary = run_sampling(_cfg(tiny_ckpt, tmp_path, data, corruption="none,mask,mirror_rotate"))
    recs = read_jsonl(tmp_path / "out.jsonl")
    assert [r["id"] for r in recs] == [f"r{i}{s}" for i in range(6) for s in ("", "#mask", "#mirror_rotate")]
    for r in recs:
        assert set(r) == {"id", "image", "prompt", "mode", "candidates", "corruption", "meta"}
        assert len(r["candidates"]) == 3 and all(isinstance(c, str) for c in r["candidates"])
        assert r["mode"] == "cot" and r["meta"]["source_id"] == r["id"].split("#")[0]
        assert r["corruption"] == (r["id"].split("#")[1] if "#" in r["id"] else None)
        assert r["meta"]["temperature"] == 1.0 and r["meta"]["seed"] == 0
    assert summary["written"] == 18 and summary["skipped"] == 0 and summary["this_run"]["candidates"] == 54
    assert json.loads(summary_path(tmp_path / "out.jsonl").read_text())["items"] == 18
    assert not parts_dir(tmp_path / "out.jsonl").exists()
    # same seed -> same candidates; another seed -> different ones
    run_sampling(_cfg(tiny_ckpt, tmp_path, data, out="again.jsonl", corruption="none,mask,mirror_rotate"))
    assert read_jsonl(tmp_path / "again.jsonl") == recs
    run_sampling(_cfg(tiny_ckpt, tmp_path, data, out="other.jsonl", corruption="none,mask,mirror_rotate", seed=1))
    other = read_jsonl(tmp_path / "other.jsonl")
    assert [r["candidates"] for r in other] != [r["candidates"] for r in recs]
    # a finished output is left alone
    assert run_sampling(_cfg(tiny_ckpt, tmp_path, data, corruption="none,mask,mirror_rotate"))["written"] == 18


def test_missing_or_unreadable_image_raises_naming_the_record_or_is_skipped(tiny_ckpt, tmp_path):
    data = write_records(tmp_path, 5)
    img = data.parent / "img"
    (img / "1.png").unlink()
    (img / "3.png").write_bytes(b"not a png")
    with pytest.raises(SicogError, match=r"data.jsonl:2: record 'r1': image not found"):
        run_sampling(_cfg(tiny_ckpt, tmp_path, data))
    assert not (tmp_path / "out.jsonl").exists()
    (img / "1.png").write_bytes((img / "0.png").read_bytes())
    with pytest.raises(SicogError, match=r"data.jsonl:4: record 'r3': unreadable image"):
        run_sampling(_cfg(tiny_ckpt, tmp_path, data))
    assert not (tmp_path / "out.jsonl").exists()
    (img / "1.png").unlink()
    summary = run_sampling(_cfg(tiny_ckpt, tmp_path, data, on_error="skip"))
    assert [r["id"] for r in read_jsonl(tmp_path / "out.jsonl")] == ["r0", "r2", "r4"]
    assert summary["skipped"] == 2
    assert sorted(s["id"] for s in summary["skipped_items"]) == ["r1", "r3"]
    on_disk = json.loads(summary_path(tmp_path / "out.jsonl").read_text())
    assert on_disk["skipped"] == 2 and "data.jsonl:4" in json.dumps(on_disk["skipped_items"])


def test_stock_llava_folder_without_sicog_meta_is_sampled(tiny, tmp_path):
    """`sicog sample --model` takes a folder written by plain transformers (no sicog_meta.json)."""
    model, processor = tiny
    stock = tmp_path / "llava-hf"
    model.save_pretrained(stock)
    processor.save_pretrained(stock)
    data = write_records(tmp_path, 2)
    summary = run_sampling(_cfg(stock, tmp_path, data, n=1, max_new_tokens=2))
    assert summary["written"] == 2 and not (stock / "sicog_meta.json").exists()
    assert [r["meta"]["model"] for r in read_jsonl(tmp_path / "out.jsonl")] == [str(stock)] * 2


def test_config_yaml_is_the_command_and_flags_override_it(tiny_ckpt, tmp_path):
    """`sicog sample sample.yaml --n 1`: a saved SampleConfig is a complete command line."""
    data = write_records(tmp_path, 2)
    cfg = _cfg(tiny_ckpt, tmp_path, data, out="yaml.jsonl", mode="caption", n=2, max_new_tokens=3)
    save_config(cfg, tmp_path / "sample.yaml")
    assert main(["sample", str(tmp_path / "sample.yaml"), "--n", "1"]) == 0
    recs = read_jsonl(tmp_path / "yaml.jsonl")
    assert [r["id"] for r in recs] == ["r0", "r1"] and [len(r["candidates"]) for r in recs] == [1, 1]
    assert recs[0]["mode"] == "caption" and recs[0]["meta"]["max_new_tokens"] == 3
    summary = json.loads(summary_path(tmp_path / "yaml.jsonl").read_text())
    assert summary["config"] == asdict(replace(cfg, n=1))


@pytest.mark.parametrize("argv, message", [
    (["--data", "d.jsonl", "--out", "o.jsonl", "--mode", "cot"], "--model is required (or `model:` in CONFIG.yaml)"),
    (["--model", "m", "--data", "d.jsonl", "--out", "o.jsonl"], "--mode is required (or `mode:` in CONFIG.yaml)"),
    (["--model", "m", "--data", "d.jsonl", "--out", "o.jsonl", "--mode", "cot", "--top-p", "0"], "--top-p (top_p): must be in (0, 1], got 0.0"),
    (["--model", "m", "--data", "d.jsonl", "--out", "o.jsonl", "--mode", "cot", "--temperature", "-1"],
     "--temperature (temperature): must be >= 0, got -1.0"),
])
def test_missing_or_bad_settings_are_clean_errors(tmp_path, capsys, argv, message):
    assert main(["sample", *argv]) == 2
    assert message in capsys.readouterr().err


def test_flag_names_and_defaults_are_the_cli_contract():
    """The flags (and aliases) scripts and the pipeline pass; their defaults."""
    import argparse

    from sicog.stages.sample import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    flags = {s: a.dest for a in p._actions for s in a.option_strings if s not in ("-h", "--help")}
    assert flags == {
        "--model": "model", "--data": "data", "--image-folder": "image_folder", "--out": "out", "--mode": "mode",
        "--n": "n", "--num-candidates": "n", "--temperature": "temperature", "--top-p": "top_p", "--top-k": "top_k",
        "--num-beams": "num_beams", "--max-new-tokens": "max_new_tokens", "--batch-size": "batch_size",
        "--corruption": "corruption", "--seed": "seed", "--backend": "backend", "--api-base": "api_base",
        "--api-key-env": "api_key_env", "--concurrency": "concurrency", "--max-retries": "max_retries",
        "--retry-delay": "retry_delay", "--request-timeout": "request_timeout", "--on-error": "on_error",
        "--device": "device", "--dtype": "dtype", "--no-progress": "progress",
        "--allow-images-outside-folder": "allow_images_outside_folder", "--overwrite": "overwrite"}
    d = SampleConfig()
    assert (d.n, d.temperature, d.top_p, d.top_k, d.num_beams, d.max_new_tokens, d.batch_size, d.seed) == \
        (6, 0.7, 0.9, 0, 1, 1200, 32, 0)
    assert (d.backend, d.api_key_env, d.concurrency, d.max_retries, d.retry_delay, d.request_timeout,
            d.on_error, d.device, d.dtype, d.progress) == ("hf", "OPENAI_API_KEY", 8, 6, 1.0, 600.0, "raise",
                                                          "auto", "auto", True)
    assert (d.allow_images_outside_folder, d.overwrite) == (False, False)


def test_ids_made_unique_by_convert_can_be_sampled_with_corruptions():
    """`sicog convert` writes a repeated id as `<id>#2`: such a pool is sampled with corruptions;
    only an id that ends like a corrupted copy's (`<id>#mask`) is refused."""
    def rec(rid):
        return Located({"id": rid, "image": "a.png", "conversations": [{"from": "human", "value": "<image>\nQ?"}]},
                       "pool.jsonl", 1)

    items = build_items([rec("x"), rec("x#2")], "cot", [None, "mask"])
    assert [it.id for it in items] == ["x", "x#mask", "x#2", "x#2#mask"]
    with pytest.raises(DataError, match=r"'x#mask' ends with '#mask'"):
        build_items([rec("x#mask")], "cot", [None, "mask"])
