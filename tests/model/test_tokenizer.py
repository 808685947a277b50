"""The offline tiny tokenizer and the ChatML chat template."""

from __future__ import annotations

import pytest

from sicog.data import formats
from sicog.model.tokenizer import CHAT_TEMPLATE, IM_END, IMAGE_TOKEN, SPECIAL_TOKENS, build_tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


def test_deterministic_and_special_tokens(tok):
    again = build_tiny_tokenizer()
    assert tok.get_vocab() == again.get_vocab()
    assert len(tok) == 1024
    ids = tok.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    assert ids == [0, 1, 2, 3]
    assert tok.pad_token == "<|endoftext|>" and tok.eos_token == IM_END
    assert tok.encode(f"{IMAGE_TOKEN}\nhi", add_special_tokens=False)[0] == ids[3]
    assert tok.chat_template == CHAT_TEMPLATE


def test_roundtrip_any_text_and_compact_prompts(tok):
    text = "héllo wörld — 123 ✓\n\tThe answer is 7."
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    # the corpus makes the project's own prompts cheap: far fewer tokens than bytes
    n = len(tok.encode(formats.COD_PROMPT, add_special_tokens=False))
    assert n < len(formats.COD_PROMPT.encode()) / 3
    extra = build_tiny_tokenizer(["zorblax zorblax zorblax"], vocab_size=1100)
    assert len(extra.tokenize(" zorblax")) < len(tok.tokenize(" zorblax"))


def test_string_and_multimodal_content_render_alike(tok):
    plain = [{"role": "user", "content": "<image>\nHow many circles?"}, {"role": "assistant", "content": "Two."}]
    parts = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many circles?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Two."}]},
    ]
    a = tok.apply_chat_template(plain, tokenize=False)
    b = tok.apply_chat_template(parts, tokenize=False)
    assert a == b
    assert b == (
        f"<|im_start|>system\n{formats.SYSTEM_PROMPT}<|im_end|>\n"
        "<|im_start|>user\n<image>\nHow many circles?<|im_end|>\n"
        "<|im_start|>assistant\nTwo.<|im_end|>\n"
    )
    # the training text of an image record (docs/method.md: "<image>\n" then the question)
    text_only = [{"role": "user", "content": [{"type": "text", "text": "How many circles?"}]}]
    assert tok.apply_chat_template(text_only, tokenize=False) == a.replace("<image>\n", "").split("<|im_start|>assistant")[0]


def test_system_prompt_and_generation_prompt(tok):
    custom = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    out = tok.apply_chat_template(custom, tokenize=False, add_generation_prompt=True)
    assert out == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert formats.SYSTEM_PROMPT not in out
    no_gen = tok.apply_chat_template(custom, tokenize=False)
    assert not no_gen.endswith("<|im_start|>assistant\n")


def test_assistant_mask_covers_replies_and_im_end(tok):
    msgs = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Count."}]},
        {"role": "assistant", "content": "Step 1: three."},
        {"role": "user", "content": "Sure?"},
        {"role": "assistant", "content": "The answer is 3."},
    ]
    out = tok.apply_chat_template(msgs, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    supervised = tok.decode([i for i, m in zip(ids, mask) if m])
    assert supervised == "Step 1: three.<|im_end|>The answer is 3.<|im_end|>"
    unsupervised = tok.decode([i for i, m in zip(ids, mask) if not m])
    assert "Count." in unsupervised and "Sure?" in unsupervised and "three" not in unsupervised


def test_tokenizer_corpus_is_pinned():
    """The tiny tokenizer's fixed corpus decides every tiny model's vocabulary (and the cached
    demo stand-ins): a new constant in sicog.data.formats must not change it by accident. When
    the corpus is changed on purpose, update this digest (and expect different demo figures)."""
    import hashlib
    import json

    from sicog.model.tokenizer import tokenizer_corpus

    assert hashlib.sha256(json.dumps(tokenizer_corpus()).encode()).hexdigest()[:16] == "d4e5116ff89260d9"
