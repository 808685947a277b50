"""Lazy dataset, mixture of sources, collator, pre-flight and record-level faults (raise / skip)."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
import torch

from sicog.config import DataConfig, DataSource
from sicog.data.chat import IGNORE_INDEX, encode_conversation
from sicog.data.dataset import (
    DataCollator,
    MixtureDataset,
    SupervisedDataset,
    build_train_dataset,
    read_source,
    run_preflight,
)
from sicog.data.records import DataError

from ._samples import image_record, text_record, write_image, write_jsonl


@pytest.fixture
def sources(tmp_path):
    """An image source (8 records, images on disk) and a text-only source (5 records)."""
    imgs = tmp_path / "imgs"
    for i in range(8):
        write_image(imgs / f"{i}.png", seed=i)
    img_file = write_jsonl(tmp_path / "img.jsonl", [image_record(i) for i in range(8)])
    txt_file = write_jsonl(tmp_path / "txt.jsonl", [text_record(i) for i in range(5)])
    return img_file, txt_file, str(imgs)


def _cfg(sources, **kw):
    img_file, txt_file, imgs = sources
    weights = kw.pop("weights", (1.0, 1.0))
    return DataConfig(sources=[DataSource(path=img_file, image_folder=imgs, weight=weights[0]),
                               DataSource(path=txt_file, weight=weights[1])], **kw)


def test_mixture_ratios_hold_and_are_deterministic(sources, processor, caplog):
    with caplog.at_level(logging.INFO, logger="sicog.data.dataset"):
        mix = build_train_dataset(_cfg(sources, weights=(3.0, 1.0), num_samples=400), processor, seed=1)
    per_source = Counter(k for k, _ in mix.index)
    assert len(mix) == 400 and per_source == {0: 300, 1: 100}
    # each source is covered evenly: 300 draws of 8 records -> every record 37 or 38 times
    assert set(Counter(j for k, j in mix.index if k == 0).values()) <= {37, 38}
    assert "weight 3 -> 300 samples" in caplog.text and "weight 1 -> 100 samples" in caplog.text
    again = build_train_dataset(_cfg(sources, weights=(3.0, 1.0), num_samples=400), processor, seed=1)
    other = build_train_dataset(_cfg(sources, weights=(3.0, 1.0), num_samples=400), processor, seed=2)
    assert again.index == mix.index and other.index != mix.index


def test_default_epoch_size_is_the_sum_of_the_sources(sources, processor):
    mix = build_train_dataset(_cfg(sources), processor)  # equal weights -> equal shares of 13
    assert len(mix) == 13 and mix.quotas == [7, 6]
    assert sorted(Counter(j for k, j in mix.index if k == 1).values()) == [1, 1, 1, 1, 2]  # 5 records, 6 draws
    single = build_train_dataset(DataConfig(sources=[DataSource(path=sources[0], image_folder=sources[2])]),
                                 processor)
    assert sorted(single.index) == [(0, j) for j in range(8)]  # one source: every record once


def test_uneven_ratio_rounds_to_the_requested_total(processor, sources):
    mix = build_train_dataset(_cfg(sources, weights=(1.0, 2.0), num_samples=10), processor)
    assert mix.quotas == [3, 7] and len(mix) == 10  # 3.33 / 6.67 -> largest remainder


def test_lengths_estimate_close_to_exact_without_loading_images(sources, processor):
    mix = build_train_dataset(_cfg(sources), processor)
    exact = [len(encode_conversation(processor, mix.record_for(i), 10**6).input_ids) for i in range(len(mix))]
    assert all(abs(a - b) <= 3 for a, b in zip(mix.lengths, exact)), (mix.lengths, exact)
    assert all(n > 16 for n, i in zip(mix.lengths, range(len(mix))) if mix.has_image(i))


def test_collated_mixed_batch_runs_the_tiny_model(sources, tiny):
    model, processor = tiny
    mix = build_train_dataset(_cfg(sources), processor)
    idx = [next(i for i in range(len(mix)) if mix.has_image(i)), next(i for i in range(len(mix)) if not mix.has_image(i))]
    idx.append(next(i for i in range(len(mix)) if mix.has_image(i) and i != idx[0]))
    examples = [mix[i] for i in idx]
    assert examples[1]["pixel_values"] is None and examples[0]["pixel_values"].shape == (3, 64, 64)
    batch = DataCollator(processor, pad_to_multiple_of=8)(examples)
    assert batch["pixel_values"].shape == (2, 3, 64, 64)
    assert batch["input_ids"].shape[1] % 8 == 0
    n = len(examples[1]["input_ids"])  # the text-only row is the shortest: right padding after it
    assert batch["attention_mask"][1, :n].all() and not batch["attention_mask"][1, n:].any()
    assert (batch["labels"][1, n:] == IGNORE_INDEX).all()
    assert (batch["input_ids"][1, n:] == processor.tokenizer.pad_token_id).all()
    with torch.no_grad():
        loss = model(**batch).loss
    assert torch.isfinite(loss) and loss.item() > 0


def test_run_preflight_passes_and_includes_an_image(sources, tiny):
    model, processor = tiny
    mix = build_train_dataset(_cfg(sources, weights=(1.0, 20.0), num_samples=50), processor)
    assert mix.quotas == [2, 48] and not any(mix.has_image(i) for i in range(2))
    summary = run_preflight(mix, DataCollator(processor), processor, model, batch_size=2)
    assert summary["images"] >= 1 and summary["image_tokens_per_image"] == 16


# ---------------------------------------------------------------- record-level faults
def test_malformed_jsonl_line(tmp_path, processor):
    path = write_jsonl(tmp_path / "d.jsonl", [text_record(0), '{"id": "x", "conversations": [', text_record(2),
                                               {"id": "y", "conversations": [{"from": "gpt", "value": "hi"}]}])
    with pytest.raises(DataError, match=r"d\.jsonl:2: invalid JSON"):
        read_source(path, "raise")
    counts = Counter()
    records = read_source(path, "skip", counts)
    assert [r.line for r in records] == [1, 3] and counts == {"malformed_record": 2}
    mix = build_train_dataset(DataConfig(sources=[DataSource(path=path)], on_error="skip"), processor)
    assert len(mix) == 2 and mix.skip_counts == {"malformed_record": 2}


def test_missing_image_raise_or_skip_counted_upfront(sources, processor, tmp_path):
    img_file, _, imgs = sources
    (tmp_path / "imgs" / "3.png").unlink()
    with pytest.raises(DataError, match=r"img\.jsonl:4: image not found: .*3\.png"):
        build_train_dataset(DataConfig(sources=[DataSource(path=img_file, image_folder=imgs)]), processor)
    mix = build_train_dataset(DataConfig(sources=[DataSource(path=img_file, image_folder=imgs)], on_error="skip"),
                              processor)
    assert len(mix) == 7 and mix.skip_counts == {"missing_image": 1}
    assert all(mix.record_for(i).line != 4 for i in range(len(mix)))


def test_unreadable_image_raise_or_replaced_and_counted(sources, processor, tmp_path):
    img_file, _, imgs = sources
    (tmp_path / "imgs" / "2.png").write_bytes(b"\x89PNG broken")
    from sicog.data.records import read_records

    records = read_records(img_file)
    ds = SupervisedDataset(records, processor, imgs, 512, "raise")
    with pytest.raises(DataError, match=r"img\.jsonl:3: unreadable image .*2\.png"):
        ds[2]
    ds = SupervisedDataset(records, processor, imgs, 512, "skip")
    example = ds[2]
    assert ds.skip_counts == {"unreadable_image": 1} and example["pixel_values"] is not None
    assert ds.record_for(2).line == 4  # replaced by the next record


def test_over_long_record_raise_or_skip(tmp_path, processor):
    recs = [text_record(0), text_record(1, answer="many words " * 200), text_record(2)]
    path = write_jsonl(tmp_path / "long.jsonl", recs)
    with pytest.raises(DataError, match=r"long\.jsonl:2: record is \d+ tokens long .*data.max_length=128"):
        build_train_dataset(DataConfig(sources=[DataSource(path=path)], max_length=128), processor)
    mix = build_train_dataset(DataConfig(sources=[DataSource(path=path)], max_length=128, on_error="skip"), processor)
    assert len(mix) == 2 and mix.skip_counts == {"too_long": 1}
    assert all(len(mix[i]["input_ids"]) <= 128 for i in range(len(mix)))


def test_bad_settings_are_errors(sources, processor):
    with pytest.raises(Exception, match=r"data.on_error: expected one of"):
        build_train_dataset(_cfg(sources, on_error="ignore"), processor)
    with pytest.raises(Exception, match=r"data.sources\[1\].weight: must be > 0"):
        build_train_dataset(_cfg(sources, weights=(1.0, 0.0)), processor)
    with pytest.raises(Exception, match=r"one weight per source"):
        MixtureDataset([], [])


def test_share_is_the_fraction_of_samples_and_the_rest_goes_by_weight(sources, processor):
    img_file, txt_file, imgs = sources
    cfg = DataConfig(sources=[DataSource(path=img_file, image_folder=imgs, weight=3.0),
                              DataSource(path=txt_file, share=0.1),
                              DataSource(path=img_file, image_folder=imgs, weight=1.0)], num_samples=1000)
    mix = build_train_dataset(cfg, processor)
    assert mix.quotas == [675, 100, 225]  # 10% text-only, the other 90% split 3:1
    cfg.sources[1].share, cfg.sources[0].share, cfg.sources[0].weight = 0.3, 0.2, 1.0  # two shares
    assert build_train_dataset(cfg, processor).quotas == [200, 300, 500]


def test_share_weight_is_bit_identical_to_the_pipeline_computation():
    from sicog.data.dataset import source_weights

    image = [0.3, 0.1, 0.7]
    ratio = 0.1
    total = sum(image)  # what the pipeline's mixture step does by hand, in source order
    expected = total * ratio / (1.0 - ratio)
    # the expression order matters in floats: these would be off in the last bit
    assert expected != total * (ratio / (1.0 - ratio)) and expected != sum(reversed(image)) * ratio / (1.0 - ratio)
    got = source_weights([DataSource(path="a", weight=0.3), DataSource(path="t", share=ratio),
                          DataSource(path="b", weight=0.1), DataSource(path="c", weight=0.7)])
    assert got == [0.3, expected, 0.1, 0.7]


@pytest.mark.parametrize("shares, weight, needle", [
    ((0.0,), 1.0, r"data.sources\[1\].share: must be a fraction of the samples in \(0, 1\), got 0.0"),
    ((1.5,), 1.0, r"data.sources\[1\].share: must be a fraction of the samples in \(0, 1\), got 1.5"),
    ((0.1,), 2.0, r"data.sources\[1\].share: give a source a weight or a share, not both"),
    ((0.6, 0.4), 1.0, r"data.sources\[2\].share: the shares sum to 1, must be below 1"),
])
def test_bad_shares_are_refused_at_load_and_at_build(tmp_path, processor, shares, weight, needle):
    from sicog.config import ConfigError, TrainConfig, load_config

    extra = ", ".join(f"{{path: t{k}.jsonl, share: {s}, weight: {weight}}}" for k, s in enumerate(shares))
    with pytest.raises(ConfigError, match="key " + needle):
        load_config(TrainConfig, None, [f"data.sources=[{{path: a.jsonl}}, {extra}]"])
    srcs = [DataSource(path="a.jsonl")] + [DataSource(path=f"t{k}.jsonl", share=s, weight=weight)
                                           for k, s in enumerate(shares)]
    with pytest.raises(ConfigError, match="^" + needle):
        build_train_dataset(DataConfig(sources=srcs), processor)  # built in code: checked again


def test_every_source_with_a_share_is_refused():
    from sicog.config import ConfigError, TrainConfig, load_config

    with pytest.raises(ConfigError, match=r"key data.sources\[1\].share: every source has a share"):
        load_config(TrainConfig, None, ["data.sources=[{path: a, share: 0.5}, {path: b, share: 0.2}]"])
