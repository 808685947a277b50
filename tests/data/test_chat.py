"""Chat formatting and label masking through the processor's chat template; pre-flight check."""

from __future__ import annotations

import copy

import pytest
import torch

from sicog.data.chat import (
    IGNORE_INDEX,
    TooLongError,
    encode_conversation,
    image_token_count,
    to_messages,
)
from sicog.data.dataset import DataCollator
from sicog.data.preflight import preflight_check
from sicog.data.records import DataError, Located
from sicog.model import tokenizer as tiny_tok
from sicog.utils.io import SicogError

from ._samples import image_record, text_record, write_image

IM_END = tiny_tok.IM_END


def labelled_text(processor, enc) -> str:
    return processor.tokenizer.decode([t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE_INDEX])


def masked_text(processor, enc) -> str:
    return processor.tokenizer.decode([t for t, lab in zip(enc.input_ids, enc.labels) if lab == IGNORE_INDEX])


MULTI = {"id": "m", "image": "m.png", "conversations": [
    {"from": "system", "value": "You answer about shapes."},
    {"from": "human", "value": "<image>\nHow many circles are there?"},
    {"from": "gpt", "value": "There are 3 circles."},
    {"from": "human", "value": "Which colour is the largest one?"},
    {"from": "gpt", "value": "Step 1: the largest circle is red."}]}


# ---------------------------------------------------------------- to_messages
def test_to_messages_image_record_keeps_system_and_strips_placeholder():
    msgs = to_messages(MULTI)
    assert msgs[0] == {"role": "system", "content": "You answer about shapes."}
    assert msgs[1] == {"role": "user", "content": [{"type": "image"},
                                                    {"type": "text", "text": "How many circles are there?"}]}
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert msgs[3]["content"] == "Which colour is the largest one?"


def test_to_messages_text_only_plain_strings():
    assert to_messages(text_record(1)) == [{"role": "user", "content": "What is two plus two?"},
                                           {"role": "assistant", "content": "The answer is 1."}]


def test_stray_image_placeholder_is_an_error():
    rec = text_record(1, question="<image>\nWhat?")
    with pytest.raises(DataError, match=r"d\.jsonl:4: key 'conversations\[0\]\.value'.*without 'image'"):
        to_messages(Located(rec, "d.jsonl", 4))
    rec = copy.deepcopy(MULTI)
    rec["conversations"][3]["value"] += " <image>"
    with pytest.raises(DataError, match=r"conversations\[3\].*other than the first human turn"):
        to_messages(rec)


# ---------------------------------------------------------------- label masking
def test_single_turn_only_reply_and_im_end_are_labelled(processor):
    rec = image_record(3, answer="Step 1: there are 3 red circles.")
    enc = encode_conversation(processor, rec, 512)
    assert enc.has_image and enc.n_image_tokens == 16
    assert labelled_text(processor, enc) == "Step 1: there are 3 red circles." + IM_END
    masked = masked_text(processor, enc)
    assert "Describe the image." in masked and "red circles" not in masked
    assert len(enc.input_ids) == len(enc.labels)


def test_multi_turn_labels_each_reply_with_its_end_token(processor):
    enc = encode_conversation(processor, MULTI, 512)
    assert labelled_text(processor, enc) == ("There are 3 circles." + IM_END + "Step 1: the largest circle is red."
                                             + IM_END)
    masked = masked_text(processor, enc)
    for text in ("You answer about shapes.", "How many circles are there?", "Which colour is the largest one?"):
        assert text in masked
    assert "3 circles." not in masked and "is red" not in masked
    # exactly two labelled runs, each ending in <|im_end|>
    im_end = processor.tokenizer.convert_tokens_to_ids(IM_END)
    ends = [i for i, lab in enumerate(enc.labels) if lab == im_end]
    assert len(ends) == 2 and all(enc.labels[i + 1] == IGNORE_INDEX for i in ends)


def test_text_only_record_has_no_image_tokens(processor):
    enc = encode_conversation(processor, text_record(7), 512)
    assert not enc.has_image and enc.n_image_tokens == 0
    assert processor.image_token_id not in enc.input_ids
    assert labelled_text(processor, enc) == "The answer is 7." + IM_END


def test_ids_equal_what_the_processor_gives_at_inference(processor, tmp_path):
    """The tokens are those of `processor(text=template(messages), images=...)`: same expansion."""
    from PIL import Image

    enc = encode_conversation(processor, MULTI, 512)
    text = processor.apply_chat_template(to_messages(MULTI), tokenize=False)
    out = processor(text=text, images=[Image.open(write_image(tmp_path / "m.png"))])
    assert out["input_ids"][0] == enc.input_ids
    assert image_token_count(processor) == 16 == enc.input_ids.count(processor.image_token_id)
    # the prompt part equals the generation prompt's tokens (train/inference consistency)
    prompt = processor.apply_chat_template(to_messages(MULTI)[:2], tokenize=False, add_generation_prompt=True)
    prompt_ids = processor(text=prompt, images=[Image.open(tmp_path / "m.png")])["input_ids"][0]
    assert enc.input_ids[: len(prompt_ids)] == prompt_ids
    assert enc.labels[len(prompt_ids) - 1] == IGNORE_INDEX and enc.labels[len(prompt_ids)] != IGNORE_INDEX


def test_over_long_record_is_an_error_naming_the_line(processor):
    loc = Located(image_record(1, answer="word " * 300), "train.jsonl", 12)
    with pytest.raises(TooLongError, match=r"train\.jsonl:12: record is \d+ tokens long \(16 image tokens\), "
                                           r"longer than data.max_length=64"):
        encode_conversation(processor, loc, 64)


# ---------------------------------------------------------------- pre-flight
def _batch(processor, records, tmp_path):
    examples = []
    for r in records:
        enc = encode_conversation(processor, r, 512)
        pv = None
        if enc.has_image:
            from PIL import Image
            img = Image.open(write_image(tmp_path / "p.png"))
            pv = processor.image_processor(images=[img], return_tensors="pt")["pixel_values"][0]
        examples.append({"input_ids": enc.input_ids, "labels": enc.labels, "pixel_values": pv})
    return DataCollator(processor)(examples)


def _with_template(processor, old: str, new: str, count: int = -1):
    assert old in processor.chat_template, old
    bad = copy.deepcopy(processor)
    bad.chat_template = processor.chat_template.replace(old, new, count)
    return bad


def test_preflight_passes_on_a_good_mixed_batch(tiny, tmp_path):
    model, processor = tiny
    records = [MULTI, text_record(2), image_record(5)]
    summary = preflight_check(_batch(processor, records, tmp_path), processor, model, records)
    assert summary["images"] == 2 and summary["image_tokens_per_image"] == 16 and summary["trained_tokens"] > 0


def test_preflight_template_without_generation_prompt(processor, tmp_path):
    gen = "{%- if add_generation_prompt -%}{{ '" + tiny_tok.IM_START + "assistant\\n' }}{%- endif -%}"
    bad = _with_template(processor, gen, "")
    records = [image_record(1)]
    with pytest.raises(SicogError, match=r"labelled tokens of assistant turn 0 decode to 'assistant Step 1.*"
                                         r"expected exactly the reply"):
        preflight_check(_batch(bad, records, tmp_path), bad, None, records)


def test_preflight_template_that_puts_the_reply_in_the_user_turn(processor, tmp_path):
    header = "{{ '" + tiny_tok.IM_START + "assistant\\n' }}"
    bad = _with_template(processor, header, "{{ '" + tiny_tok.IM_START + "user\\n' }}", 1)  # reply as a user block
    with pytest.raises(SicogError, match=r"chat template renders the conversation up to assistant turn 2 .*"
                                         r"differently from the full conversation"):
        _batch(bad, [MULTI], tmp_path)


def test_preflight_batch_with_reply_inside_masked_prompt(processor, tmp_path):
    """Labels computed wrongly (reply masked, prompt labelled) are caught by the masked-text check."""
    records = [image_record(1, answer="There are four large blue squares.")]
    batch = _batch(processor, records, tmp_path)
    lab = batch["labels"][0]
    reply = lab != IGNORE_INDEX
    inverted = torch.where(reply | (batch["input_ids"][0] == processor.image_token_id), IGNORE_INDEX,
                           batch["input_ids"][0])
    batch["labels"][0] = inverted
    with pytest.raises(SicogError, match="puts the assistant reply inside the masked prompt"):
        preflight_check(batch, processor, None, records)
    with pytest.raises(SicogError, match="does not end with an end-of-turn token"):
        preflight_check(batch, processor, None, None)  # without the records: caught by the span-end check


def test_preflight_template_omitting_the_image_token(processor, tmp_path):
    bad = _with_template(processor, "{{ '" + tiny_tok.IMAGE_TOKEN + "\\n' }}", "")
    with pytest.raises(SicogError, match=r"rendered 0 image placeholder\(s\) '<image>' for a record with 1 image"):
        _batch(bad, [image_record(1)], tmp_path)


def test_preflight_template_without_end_of_turn_token(processor, tmp_path):
    old = "{{ render_content(message['content']) + '" + IM_END + "' }}"
    bad = _with_template(processor, old, "{{ render_content(message['content']) }}")
    with pytest.raises(SicogError, match="does not end with an end-of-turn token"):
        preflight_check(_batch(bad, [text_record(1)], tmp_path), bad, None, [text_record(1)])


def test_preflight_image_tokens_disagree_with_vision_tower(tiny, tmp_path):
    model, processor = tiny
    bad = copy.deepcopy(processor)
    bad.patch_size = 8  # processor expands <image> to 64 tokens; the 16-px-patch tower gives 16 features
    records = [image_record(1)]
    with pytest.raises(SicogError, match=r"example 0 has 64 image tokens but the model's vision tower gives 16"):
        preflight_check(_batch(bad, records, tmp_path), bad, model, records)
    with pytest.raises(SicogError, match=r"has 64 image tokens but the model config .* gives 16"):
        preflight_check(_batch(bad, records, tmp_path), bad, model.config, records)


def test_preflight_all_labels_masked(processor, tmp_path):
    batch = _batch(processor, [text_record(1)], tmp_path)
    batch["labels"][:] = IGNORE_INDEX
    with pytest.raises(SicogError, match="every label is masked"):
        preflight_check(batch, processor)


def test_preflight_image_count_mismatch(processor, tmp_path):
    batch = _batch(processor, [image_record(1), text_record(2)], tmp_path)
    batch["pixel_values"] = torch.cat([batch["pixel_values"]] * 2)
    with pytest.raises(SicogError, match=r"2 image\(s\) in pixel_values but 1 example\(s\) contain image tokens"):
        preflight_check(batch, processor)


# ---------------------------------------------------------------- cross-checks
def _collapse_image_tokens(ids, image_id):
    out = []
    for t in ids:
        if not (t == image_id and out and out[-1] == image_id):
            out.append(t)
    return out


def test_labels_agree_with_the_templates_generation_markers(processor):
    """The prefix-diff masking equals the template's own {% generation %} assistant mask."""
    for rec in (MULTI, text_record(4), image_record(2)):
        enc = encode_conversation(processor, rec, 512)
        out = processor.tokenizer.apply_chat_template(to_messages(rec), tokenize=True, return_dict=True,
                                                      return_assistant_tokens_mask=True)
        image_id = processor.image_token_id
        ids = _collapse_image_tokens(enc.input_ids, image_id)
        keep = [lab != IGNORE_INDEX for t, lab in zip(enc.input_ids, enc.labels)]
        keep = [k for i, k in enumerate(keep) if not (enc.input_ids[i] == image_id and i and
                                                      enc.input_ids[i - 1] == image_id)]
        assert ids == list(out["input_ids"])
        assert keep == [bool(m) for m in out["assistant_masks"]]


QWEN2_STOCK_TEMPLATE = (  # Qwen2-Instruct's template: no {% generation %} markers, text content only
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def test_masking_works_with_a_template_without_generation_markers(processor, tmp_path):
    stock = copy.deepcopy(processor)
    stock.chat_template = QWEN2_STOCK_TEMPLATE
    rec = {"conversations": [{"from": "human", "value": "Hi there"}, {"from": "gpt", "value": "Hello you."},
                             {"from": "human", "value": "More?"}, {"from": "gpt", "value": "No."}]}
    enc = encode_conversation(stock, rec, 512)
    assert labelled_text(stock, enc) == "Hello you." + IM_END + "No." + IM_END
    preflight_check(_batch(stock, [rec], tmp_path), stock, None, [rec])


def test_two_image_placeholders_in_one_turn_are_an_error():
    rec = {"id": "x", "image": "a.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat is here? <image>"}, {"from": "gpt", "value": "A cat."}]}
    with pytest.raises(DataError, match=r"conversations\[0\]\.value': 2 <image> placeholders"):
        to_messages(rec)
