"""Pre-flight check of a collated batch: image tokens vs. vision features, labels present, the
masked part exactly the user/system text. It raises instead of warning, before any training step."""

from __future__ import annotations

from typing import Any

from sicog.data import formats, slices
from sicog.data.chat import (
    IGNORE_INDEX,
    image_token_count,
    image_token_id_of,
    message_text,
    to_messages,
    tokenizer_of,
)
from sicog.data.packing import is_packed, packed_problem, unpack_batch
from sicog.data.records import Located
from sicog.utils.io import SicogError


def _norm(text: str) -> str:
    return " ".join(text.split())


def expected_image_features(processor: Any, model: Any = None, pixel_values: Any = None) -> tuple[int, str]:
    """(features per image, where the number comes from): the vision tower's output when a model
    is given, else its config, else LlavaProcessor's rule applied to the pixel_values' size."""
    sharded = model is not None and hasattr(model, "parameters") and any(
        p.numel() == 0 for p in model.parameters())  # ZeRO-3 partitions: use the config instead
    if model is not None and hasattr(model, "get_image_features") and pixel_values is not None and not sharded:
        import torch

        cfg = model.config
        param = next(model.parameters())
        with torch.no_grad():
            out = model.get_image_features(
                pixel_values=pixel_values[:1].to(param.device, param.dtype),
                vision_feature_layer=getattr(cfg, "vision_feature_layer", -2),
                vision_feature_select_strategy=getattr(cfg, "vision_feature_select_strategy", "default"),
                return_dict=True)
        feats = out.pooler_output if hasattr(out, "pooler_output") else out
        return int(feats[0].shape[0]), "the model's vision tower"
    cfg = getattr(model, "config", model)
    vcfg = getattr(cfg, "vision_config", None)
    if vcfg is not None and getattr(vcfg, "image_size", None) and getattr(vcfg, "patch_size", None):
        n = (vcfg.image_size // vcfg.patch_size) ** 2 + 1  # CLIP: patches + CLS
        if getattr(cfg, "vision_feature_select_strategy", "default") == "default":
            n -= 1
        return n, "the model config (vision_config.image_size / patch_size)"
    patch = getattr(processor, "patch_size", None)
    if pixel_values is not None and patch:
        h, w = pixel_values.shape[-2:]
        n = (h // patch) * (w // patch) + int(getattr(processor, "num_additional_image_tokens", 0) or 0)
        if getattr(processor, "vision_feature_select_strategy", None) == "default":
            n -= 1
        return n, "the pixel_values size and processor.patch_size"
    return image_token_count(processor), "the processor"


def _runs(mask: list[bool]) -> list[tuple[int, int]]:
    """[start, end) of each run of True values."""
    runs, start = [], None
    for i, m in enumerate([*mask, False]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _check_span_ends(tok: Any, row: list[int], spans: list[tuple[int, int]], special: set, where: str) -> None:
    for k, (s, e) in enumerate(spans):
        if row[e - 1] not in special:
            raise SicogError(f"pre-flight: {where}: labelled span {k} does not end with an end-of-turn token (it "
                             f"ends with {tok.decode(row[max(s, e - 3):e])!r}); the model would never learn to "
                             f"stop. The chat template must close assistant replies with a special token such "
                             f"as <|im_end|>")


def preflight_check(batch: dict, processor: Any, model: Any = None,
                    records: list[dict | Located] | None = None) -> dict:
    """Check the first collated batch; raise SicogError saying exactly what is wrong.

    Checks: image tokens per example == image features per image (from the model's vision
    tower when `model` is given, else its config / the processor), and the examples with image
    tokens match the images in pixel_values; some labels unmasked; labels never on image or
    padding tokens and equal to input_ids where set; every labelled span closes with a special
    end-of-turn token; and, when `records` (the batch's source records, in order) are given, the
    masked part decodes to text containing every user/system text and no assistant reply, while
    the labelled spans decode to exactly the replies. A packed batch (`sicog.data.packing`) must
    also have positions restarting per sample and no label on a sample's first token; its samples
    are then checked one by one. Returns a summary dict for the log.
    """
    tok = tokenizer_of(processor)
    if is_packed(batch):  # a padding-free row: its layout first, then each sample as a padded row
        if why := packed_problem(batch):
            raise SicogError(f"pre-flight: packed batch: {why}")
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        batch = unpack_batch(batch, int(pad if pad is not None else 0))
    ids, labels = batch["input_ids"], batch["labels"]
    attn = batch.get("attention_mask")
    img_id = image_token_id_of(processor)
    pv = batch.get("pixel_values")
    grids = batch.get("image_grids")  # sliced images: several tensors per image (sicog.data.slices)
    n_images = int(grids.shape[0]) if grids is not None else 0 if pv is None else int(pv.shape[0])
    per_row = (ids == img_id).sum(dim=1).tolist()
    rows_with_image = [i for i, n in enumerate(per_row) if n > 0]
    if len(rows_with_image) != n_images:
        raise SicogError(f"pre-flight: the batch has {n_images} image(s) in pixel_values but {len(rows_with_image)} "
                         f"example(s) contain image tokens (per example: {per_row})")
    if grids is not None:
        sliced_counts = slices.tokens_per_image(processor, grids)
        for i, n in zip(rows_with_image, sliced_counts):
            if per_row[i] != n:
                raise SicogError(f"pre-flight: example {i} has {per_row[i]} image tokens but its slice grid "
                                 f"{grids.tolist()} gives {n} image features")
        rows_with_image = []
    n_feat, source = expected_image_features(processor, model, pv) if n_images and grids is None else (0, "")
    if grids is not None:
        n_feat = sliced_counts  # (reported per image: they differ with the image size)
    for i in rows_with_image:
        if per_row[i] != n_feat:
            raise SicogError(f"pre-flight: example {i} has {per_row[i]} image tokens but {source} gives {n_feat} "
                             f"image features per image; processor (patch_size, image size, "
                             f"vision_feature_select_strategy) and model disagree")
    set_ = labels != IGNORE_INDEX
    if not bool(set_.any()):
        raise SicogError("pre-flight: every label is masked (-100): no assistant reply would be trained; "
                         "the records have no gpt turn or the chat template hides the replies")
    if bool((set_ & (ids == img_id)).any()):
        raise SicogError("pre-flight: image tokens carry labels; only assistant replies may be trained")
    if attn is not None and bool((set_ & (attn == 0)).any()):
        raise SicogError("pre-flight: padding positions carry labels")
    if bool((labels[set_] != ids[set_]).any()):
        raise SicogError("pre-flight: labels differ from input_ids where set (labels must not be shifted: "
                         "the model shifts them)")
    special = set(tok.all_special_ids)
    n_trained = 0
    for i in range(ids.shape[0]):
        row = ids[i].tolist()
        keep = [bool(a) for a in (attn[i].tolist() if attn is not None else [1] * len(row))]
        mask_row = set_[i].tolist()
        spans = _runs(mask_row)
        n_trained += sum(e - s for s, e in spans)
        masked_ids = [t for t, m, a in zip(row, mask_row, keep) if a and not m and t != img_id]
        masked_text = _norm(tok.decode(masked_ids, skip_special_tokens=True))
        if records is None or i >= len(records):
            for s, e in spans:  # without the records: a reply must not also appear in the prompt
                reply = _norm(tok.decode(row[s:e], skip_special_tokens=True))
                if len(reply) >= 8 and reply in masked_text:
                    raise SicogError(f"pre-flight: example {i}: chat template puts the assistant reply inside the "
                                     f"masked prompt: {reply[:120]!r} appears in {masked_text[:300]!r}")
            _check_span_ends(tok, row, spans, special, f"example {i}")
            continue
        rec = records[i]
        where = rec.where if isinstance(rec, Located) else f"example {i}"
        messages = to_messages(rec)
        prompt_texts = [_norm(message_text(m)) for m in messages if m["role"] != "assistant"]
        replies = [_norm(message_text(m)) for m in messages if m["role"] == "assistant"]
        boiler = " ".join([*prompt_texts, formats.SYSTEM_PROMPT])
        for reply in replies:
            if len(reply) >= 4 and masked_text.count(reply) > boiler.count(reply):
                raise SicogError(f"pre-flight: {where}: chat template puts the assistant reply inside the masked "
                                 f"prompt: {reply[:120]!r} appears in the masked part {masked_text[:300]!r}")
        for text in prompt_texts:
            if text not in masked_text:
                raise SicogError(f"pre-flight: {where}: the masked (label -100) part does not contain the "
                                 f"user/system text {text[:120]!r}; masked part decodes to {masked_text[:300]!r}")
        _check_span_ends(tok, row, spans, special, where)
        if len(spans) != len(replies):
            raise SicogError(f"pre-flight: {where}: {len(spans)} labelled span(s) for {len(replies)} assistant "
                             f"turn(s)")
        for k, ((s, e), reply) in enumerate(zip(spans, replies)):
            got = _norm(tok.decode(row[s:e], skip_special_tokens=True))
            if got != reply:
                raise SicogError(f"pre-flight: {where}: labelled tokens of assistant turn {k} decode to {got[:200]!r}, "
                                 f"expected exactly the reply {reply[:200]!r} (+ its end-of-turn token); the "
                                 f"chat template's generation prompt and reply rendering disagree")
    return {"examples": int(ids.shape[0]), "images": n_images, "image_tokens_per_image": n_feat,
            "trained_tokens": n_trained, "tokens": int(attn.sum()) if attn is not None else int(ids.numel())}
