"""Chat formatting and label masking: only assistant replies (and their end-of-turn token) train.

A LLaVA record becomes Hugging Face chat messages (`to_messages`), which the processor's own
chat template renders — no hand-built ChatML, so the text the model trains on is exactly the
text `apply_chat_template(..., add_generation_prompt=True)` gives it at inference.

Where the assistant replies are is found without trusting template-specific markers: for each
assistant turn k, the conversation up to k rendered with `add_generation_prompt=True` must be a
prefix of the full rendering, and so must the conversation up to and including turn k. The text
between those two prefixes (minus trailing whitespace) is the reply plus its closing token
(`<|im_end|>` for ChatML). Every segment is tokenized on its own, so the prompt tokens are
exactly the tokens the model sees at inference and the reply tokens are what it must generate.

The first collated batch is then verified end to end by `sicog.data.preflight.preflight_check`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from sicog.data import formats
from sicog.data.records import ROLES, DataError, Located
from sicog.utils.io import SicogError

IGNORE_INDEX = -100


class TooLongError(DataError):
    """A record has more tokens than data.max_length (it is never truncated)."""


@dataclass
class EncodedExample:
    """Token ids and labels of one conversation (images not loaded: only their token count)."""

    input_ids: list[int]
    labels: list[int]
    has_image: bool
    n_image_tokens: int


def tokenizer_of(processor: Any) -> Any:
    """The tokenizer of a processor (or the argument itself when it is a tokenizer)."""
    return getattr(processor, "tokenizer", processor)


def image_token_of(processor: Any) -> str:
    """The image placeholder token string of a processor (LLaVA: `<image>`)."""
    return getattr(processor, "image_token", None) or formats.IMAGE_TOKEN


def image_token_id_of(processor: Any) -> int:
    """The id of the image placeholder token; SicogError when the tokenizer lacks it as one token."""
    tid = getattr(processor, "image_token_id", None)
    if tid is not None:
        return int(tid)
    token = image_token_of(processor)
    ids = tokenizer_of(processor).encode(token, add_special_tokens=False)
    if len(ids) != 1:
        raise SicogError(f"the tokenizer does not have the image token {token!r} as one token (got ids {ids})")
    return ids[0]


def image_token_count(processor: Any) -> int:
    """How many image tokens one image expands to (what LlavaProcessor inserts per `<image>`).

    `image_seq_length` when the processor declares it; otherwise LlavaProcessor's rule:
    (crop height // patch) * (crop width // patch) + additional tokens (CLS), minus one with
    the `default` feature strategy (CLS dropped).
    """
    seq = getattr(processor, "image_seq_length", None)
    if isinstance(seq, int) and seq > 0:
        return seq
    patch = getattr(processor, "patch_size", None)
    ip = getattr(processor, "image_processor", None)
    if not patch or ip is None:
        raise SicogError("cannot tell how many image tokens an image takes: the processor has neither "
                         "image_seq_length nor patch_size + image_processor")
    crop = getattr(ip, "crop_size", None) if getattr(ip, "do_center_crop", True) else None
    crop = crop or getattr(ip, "size", None) or {}
    height, width = crop.get("height"), crop.get("width")
    if height is None or width is None:  # {"shortest_edge": s} without a crop: a square s x s
        height = width = crop.get("shortest_edge")
    if not height:
        raise SicogError(f"cannot tell the image size from the image processor (crop_size/size = {crop!r})")
    n = (height // patch) * (width // patch) + int(getattr(processor, "num_additional_image_tokens", 0) or 0)
    if getattr(processor, "vision_feature_select_strategy", None) == "default":
        n -= 1
    return n


def to_messages(record: dict | Located, where: str | None = None) -> list[dict]:
    """LLaVA conversations -> HF chat messages.

    System turns are kept. In an image record the first user turn becomes
    `[{"type": "image"}, {"type": "text", "text": ...}]` with the `<image>` placeholder removed
    from its text; all other turns (and text-only records) keep plain string content. An
    `<image>` placeholder anywhere else (a later turn, or a record without an image) is a
    DataError: LLaVA records carry one image, shown in the first user turn.
    """
    if where is None:
        where = record.where if isinstance(record, Located) else f"record {record.get('id')!r}"
    rec = record.record if isinstance(record, Located) else record
    has_image = bool(rec.get("image"))
    messages: list[dict] = []
    image_placed = False
    for i, turn in enumerate(rec["conversations"]):
        role = ROLES[turn["from"]]
        text = turn["value"]
        if role == "user" and has_image and not image_placed:
            if text.count(formats.IMAGE_TOKEN) > 1:
                raise DataError(f"{where}: key 'conversations[{i}].value': {text.count(formats.IMAGE_TOKEN)} "
                                f"{formats.IMAGE_TOKEN} placeholders; a record carries one image, shown once")
            messages.append({"role": "user", "content": [
                {"type": "image"}, {"type": "text", "text": formats.strip_image_token(text)}]})
            image_placed = True
            continue
        if formats.IMAGE_TOKEN in text:
            why = "a record without 'image'" if not has_image else "a turn other than the first human turn"
            raise DataError(f"{where}: key 'conversations[{i}].value': the {formats.IMAGE_TOKEN} placeholder "
                            f"appears in {why}")
        messages.append({"role": role, "content": text})
    return messages


def message_text(message: dict) -> str:
    """The text of a message (text parts joined; image parts left out)."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def _render(processor: Any, messages: list[dict], add_generation_prompt: bool) -> str:
    return processor.apply_chat_template(copy.deepcopy(messages), tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def render_segments(processor: Any, messages: list[dict]) -> list[tuple[str, bool]]:
    """The rendered conversation as consecutive (text, trained) segments.

    trained=True segments are assistant replies with their closing token. Raises SicogError when
    the chat template renders prefixes inconsistently (the replies cannot be located then).
    """
    full = _render(processor, messages, add_generation_prompt=False)
    segments: list[tuple[str, bool]] = []
    pos = 0
    for k, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        prompt = _render(processor, messages[:k], add_generation_prompt=True)
        upto = _render(processor, messages[: k + 1], add_generation_prompt=False)
        if not full.startswith(prompt) or not full.startswith(upto) or len(upto) <= len(prompt):
            raise SicogError(
                f"chat template renders the conversation up to assistant turn {k} (with the generation prompt) "
                f"differently from the full conversation, so the reply cannot be located for label masking.\n"
                f"prefix: {prompt[-200:]!r}\nfull:   {full[:len(prompt) + 80][-280:]!r}")
        start = len(prompt)
        end = start + len(upto[start:].rstrip())
        reply = message_text(msg).strip()
        if reply and reply not in full[start:end]:
            raise SicogError(f"chat template does not put assistant turn {k} right after the generation prompt: "
                             f"expected {reply[:80]!r} in {full[start:end][:200]!r}")
        if start < pos:
            raise SicogError(f"chat template: assistant turn {k} starts inside the previous turn")
        segments.append((full[pos:start], False))
        segments.append((full[start:end], True))
        pos = end
    segments.append((full[pos:], False))
    return [(t, trained) for t, trained in segments if t]


def encode_conversation(processor: Any, record: dict | Located, max_length: int,
                        where: str | None = None, image_text: str | None = None) -> EncodedExample:
    """Tokenize one record: input_ids with the image placeholder expanded, labels on replies only.

    `image_text` replaces the placeholder when an image's tokens depend on the image (a sliced
    image's layout, `sicog.data.slices`); otherwise it becomes the processor's fixed count of
    image tokens.

    Labels are IGNORE_INDEX (-100) everywhere except the assistant reply tokens including their
    closing end-of-turn token. A record longer than `max_length` is a DataError naming `where`:
    it is never truncated (a cut could drop image tokens or the end of a reply).
    """
    if isinstance(record, Located):
        where = where or record.where
        record = record.record
    where = where or f"record {record.get('id')!r}"
    messages = to_messages(record, where)
    has_image = isinstance(messages[0]["content"], list) or any(isinstance(m["content"], list) for m in messages)
    segments = render_segments(processor, messages)
    token = image_token_of(processor)
    n_placeholders = sum(t.count(token) for t, _ in segments)
    if n_placeholders != int(has_image):
        raise SicogError(f"{where}: chat template rendered {n_placeholders} image placeholder(s) {token!r} for a "
                         f"record with {int(has_image)} image(s); the template must render an image part as "
                         f"{token!r}")
    if has_image and image_text is None:
        image_text = token * image_token_count(processor)
    n_img = image_text.count(token) if has_image else 0
    tok = tokenizer_of(processor)
    input_ids: list[int] = []
    labels: list[int] = []
    for text, trained in segments:
        if has_image and not trained and token in text:
            text = text.replace(token, image_text)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        input_ids += ids
        labels += ids if trained else [IGNORE_INDEX] * len(ids)
    if has_image:
        got = input_ids.count(image_token_id_of(processor))
        if got != n_img:
            raise SicogError(f"{where}: expected {n_img} image tokens after expansion, the tokenizer produced {got}")
    if len(input_ids) > max_length:
        raise TooLongError(f"{where}: record is {len(input_ids)} tokens long ({n_img} image tokens), longer than "
                           f"data.max_length={max_length}; it is not truncated (that could cut image tokens or a "
                              f"reply): raise data.max_length, shorten the record, or set data.on_error: skip to drop it")
    return EncodedExample(input_ids, labels, has_image, n_img)
