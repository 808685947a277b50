"""Fast batched generation with a Hugging Face MLLM (used by `sicog sample` and evaluation).

Speed comes from what the paper's batch-1 loop lacks: prompts are batched (left-padded, so
every row's last prompt token sits at the same position and one forward pass per step serves
the whole batch with a KV cache), prompts of similar length share a batch (little padding), the
N candidates of a prompt come from ONE prefill (the prompt's KV cache is computed once and
repeated N times; stock `num_return_sequences` would encode image and prompt N times), and the
nucleus cut-off avoids a full index sort on the CPU (`SamplingWarper`), and the KV cache grows
into a buffer instead of being copied at every step (`kv_cache.py`). The samples drawn are
exactly those of stock `generate(num_return_sequences=N, temperature, top_p, top_k)` for the
same seed (tests/model/test_generation.py).

Determinism: each batch re-seeds torch's RNG with a seed derived from the run seed and a key of
the batch (see `batch_seed`), so the same batch gives the same candidates whatever ran before.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from transformers import LogitsProcessor, LogitsProcessorList

from sicog.data.formats import strip_image_token
from sicog.data.images import centre_square_for_crop, to_rgb
from sicog.model.kv_cache import growing_dynamic_cache

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplingParams:
    """How to decode: temperature 0 (or less) is greedy; num_beams > 1 is beam search."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k cut (docs/method.md: temperature + top-p only)
    num_beams: int = 1
    max_new_tokens: int = 64

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0


def batch_seed(seed: int, key: int) -> int:
    """The RNG seed of one batch: a fixed mix of the run seed and the batch's key."""
    return (int(seed) * 1_000_003 + int(key) * 7919 + 17) % (2**63 - 1)


def render_prompt(processor, user_text: str, has_image: bool) -> str:
    """The full chat prompt (system + user turn + generation prompt) for one user text."""
    text = strip_image_token(user_text)
    content = [{"type": "image"}, {"type": "text", "text": text}] if has_image else text
    return processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )


def _tokenizer(processor):
    return getattr(processor, "tokenizer", processor)


def plan_batches(lengths: Sequence[int], has_image: Sequence[bool], batch_size: int) -> list[list[int]]:
    """Group indices into batches of similar prompt length (longest first), images apart from text.

    Longest first means an out-of-memory error shows up in the first batch, not hours in.
    Ties keep input order, so the plan is a pure function of its inputs. `batch_size` >= 1 (the
    config's range).
    """
    order = sorted(range(len(lengths)), key=lambda i: (not has_image[i], -lengths[i], i))
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and has_image[batches[-1][0]] == has_image[i]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def prompt_lengths(processor, prompts: Sequence[str]) -> list[int]:
    """Token counts of the user texts (what batches are grouped by)."""
    if not prompts:
        return []
    enc = _tokenizer(processor)([strip_image_token(p) for p in prompts], add_special_tokens=False)
    return [len(ids) for ids in enc["input_ids"]]


def _count_generated(gen: torch.Tensor, eos_ids: set[int], pad_id: int | None) -> int:
    """Tokens actually generated: up to and including each row's first EOS, pads excluded."""
    total = 0
    for row in gen.tolist():
        k = 0
        for tok in row:
            if pad_id is not None and tok == pad_id and pad_id not in eos_ids:
                break
            k += 1
            if tok in eos_ids:
                break
        total += k
    return total


class SamplingWarper(LogitsProcessor):
    """Temperature, then top-k, then top-p (nucleus), as transformers' warpers apply them.

    One processor instead of transformers' three because (a) generate() runs custom processors
    BEFORE its own warpers, so a custom top-p alone would act before the temperature, and (b)
    the nucleus cut-off is found by sorting probability VALUES only (NumPy's vectorised sort on
    a CPU) instead of values plus indices: torch.sort of a (batch x vocab) matrix costs more
    than a tiny model's whole decoding step. The rule is TopPLogitsWarper's (drop the least
    likely tokens whose cumulative mass is <= 1 - top_p); ties at the cut-off are all kept.
    """

    def __init__(self, temperature: float, top_k: int = 0, top_p: float = 1.0, min_tokens_to_keep: int = 1):
        self.temperature, self.top_k, self.top_p = float(temperature), int(top_k), float(top_p)
        self.min_tokens_to_keep = min_tokens_to_keep

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores / self.temperature
        if 0 < self.top_k < scores.shape[-1]:
            kth = torch.topk(scores, max(self.top_k, self.min_tokens_to_keep), dim=-1).values[..., -1:]
            scores = scores.masked_fill(scores < kth, -float("inf"))
        if self.top_p >= 1.0:
            return scores
        probs = scores.float().softmax(dim=-1)
        if probs.device.type == "cpu":
            ascending = torch.from_numpy(np.sort(probs.numpy(), axis=-1))
        else:
            ascending = probs.sort(dim=-1).values
        dropped = (ascending.cumsum(dim=-1) <= (1.0 - self.top_p)).sum(dim=-1, keepdim=True)
        dropped = dropped.clamp(max=probs.shape[-1] - self.min_tokens_to_keep)
        threshold = ascending.gather(-1, dropped)
        return scores.masked_fill(probs < threshold, -float("inf"))


def _can_share_prefill(model) -> bool:
    """Stock LLaVA (and plain causal LMs) accept a pre-filled, expanded DynamicCache."""
    return getattr(model.config, "model_type", None) in ("llava", "sicog_uhd", "qwen2", "llama")


def _cache_keyword(model) -> str:
    """The name under which this model's forward (and generate) takes a KV cache.

    transformers 5.x renamed `past_key_values` to `cache`; a model whose forward names `cache`
    explicitly (the uhd arch) silently drops a cache passed as `past_key_values`.
    """
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _generate_shared_prefill(model, inputs: dict, gen_kwargs: dict, params: SamplingParams) -> torch.Tensor:
    """Sample n continuations per prompt from ONE prefill of the prompt.

    `num_return_sequences` copies every prompt n times before the forward pass, so the vision
    tower and the prompt run n times. Here the prompt (all but its last token, which generate
    feeds itself) is encoded once into a KV cache, the cache is repeated n times along the
    batch, and generate continues from it. Same RNG draws, same outputs as the stock path.
    """
    n = params.n
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    position_ids = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    cache = growing_dynamic_cache(model.config)
    extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    key = _cache_keyword(model)
    model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=position_ids[:, :-1],
          use_cache=True, **{key: cache}, **extra)
    cache.batch_repeat_interleave(n)
    kwargs = dict(gen_kwargs, num_return_sequences=1)
    return model.generate(input_ids=ids.repeat_interleave(n, dim=0),
                          attention_mask=mask.repeat_interleave(n, dim=0),
                          **{key: cache}, **kwargs)


@torch.inference_mode()
def generate_batch(model, processor, prompts: Sequence[str], images: Sequence[Image.Image | None],
                   params: SamplingParams, seed: int) -> tuple[list[list[str]], int]:
    """Generate `params.n` texts for each prompt of ONE batch; returns (texts, generated tokens).

    All prompts of a batch must either all have an image or all have none.
    """
    has_image = [im is not None for im in images]
    if any(has_image) and not all(has_image):
        raise ValueError("a batch must not mix prompts with and without an image")
    texts = [render_prompt(processor, p, h) for p, h in zip(prompts, has_image)]
    tok = _tokenizer(processor)
    kwargs = {"text": texts, "padding": True, "return_tensors": "pt", "padding_side": "left"}
    if all(has_image) and images:
        kwargs["images"] = [centre_square_for_crop(processor, to_rgb(im)) for im in images]
        inputs = processor(**kwargs)
    else:
        kwargs.pop("images", None)
        inputs = tok(**kwargs) if processor is tok else processor(**kwargs)
    device = model.device
    inputs = {k: v.to(device) for k, v in inputs.items() if isinstance(v, torch.Tensor)}
    if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)

    gen_kwargs: dict = {"max_new_tokens": params.max_new_tokens, "use_cache": True,
                        "num_beams": params.num_beams}
    # Greedy decoding cannot return distinct sequences: decode once and repeat the result.
    repeat = 1
    if params.do_sample:
        # transformers' own warpers are switched off (also any defaults in the checkpoint's
        # generation_config); SamplingWarper applies temperature, top-k and top-p instead.
        gen_kwargs.update(do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                          num_return_sequences=params.n,
                          logits_processor=LogitsProcessorList([SamplingWarper(
                              params.temperature, params.top_k, params.top_p)]))
    elif params.num_beams > 1:
        gen_kwargs.update(do_sample=False, num_beams=max(params.num_beams, params.n),
                          num_return_sequences=params.n)
    else:
        gen_kwargs.update(do_sample=False)
        repeat = params.n
    gc = model.generation_config
    if gc.pad_token_id is None and tok.pad_token_id is not None:
        gen_kwargs["pad_token_id"] = tok.pad_token_id
    if gc.eos_token_id is None and tok.eos_token_id is not None:
        gen_kwargs["eos_token_id"] = tok.eos_token_id

    torch.manual_seed(seed)
    if params.do_sample and params.num_beams == 1 and _can_share_prefill(model):
        out = _generate_shared_prefill(model, inputs, gen_kwargs, params)
    else:
        if _can_share_prefill(model):
            # generate adopts a cache passed in (and expands it for beams / return sequences).
            gen_kwargs[_cache_keyword(model)] = growing_dynamic_cache(model.config)
        out = model.generate(**inputs, **gen_kwargs)
    gen = out[:, inputs["input_ids"].shape[1]:]
    eos = gen_kwargs.get("eos_token_id", gc.eos_token_id)
    eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
    n_tokens = _count_generated(gen, eos_ids, gen_kwargs.get("pad_token_id", gc.pad_token_id)) * repeat
    decoded = [t.strip() for t in tok.batch_decode(gen, skip_special_tokens=True)]
    per = len(decoded) // len(prompts)
    grouped = [decoded[i * per:(i + 1) * per] * repeat for i in range(len(prompts))]
    return grouped, n_tokens


def iter_generate(model, processor, prompts: Sequence[str],
                  load_images: Callable[[list[int]], list[Image.Image | None]] | Sequence[Image.Image | None],
                  params: SamplingParams, batch_size: int = 32, seed: int = 0,
                  has_image: Sequence[bool] | None = None,
                  ) -> Iterator[tuple[list[int], list[list[str]], int]]:
    """Yield (indices, texts per index, generated tokens) batch by batch, longest prompts first.

    `load_images` is either the list of images or a function mapping a batch's indices to its
    images (so that 100K images are never in memory at once). The batch seed is derived from
    `seed` and the batch's smallest index.
    """
    if has_image is None:
        if callable(load_images):
            raise ValueError("has_image is required when images are loaded lazily")
        has_image = [im is not None for im in load_images]
    lengths = prompt_lengths(processor, prompts)
    for batch in plan_batches(lengths, has_image, batch_size):
        images = load_images(batch) if callable(load_images) else [load_images[i] for i in batch]
        texts, n_tok = generate_batch(model, processor, [prompts[i] for i in batch], images,
                                      params, batch_seed(seed, min(batch)))
        yield batch, texts, n_tok


def generate_texts(model, processor, prompts: list[str], images: list[Image.Image | None], *,
                   n: int = 1, temperature: float = 0.0, top_p: float = 1.0, num_beams: int = 1,
                   max_new_tokens: int = 64, batch_size: int = 32, seed: int = 0,
                   progress: bool = True, top_k: int = 0) -> list[list[str]]:
    """`n` generated texts for every (user text, image) pair, in input order.

    `prompts` are user texts without the `<image>` placeholder (any is removed); an image, when
    given, is added as an image part of the user turn. temperature 0 is greedy decoding (the
    n texts are then identical); sampling uses temperature and top-p.
    """
    if len(prompts) != len(images):
        raise ValueError(f"{len(prompts)} prompts but {len(images)} images")
    params = SamplingParams(n=n, temperature=temperature, top_p=top_p, top_k=top_k,
                            num_beams=num_beams, max_new_tokens=max_new_tokens)
    model.eval()
    results: list[list[str] | None] = [None] * len(prompts)
    from tqdm.auto import tqdm

    with tqdm(total=len(prompts) * n, unit="cand", desc="generate", disable=not progress,
              dynamic_ncols=True) as bar:
        for batch, texts, _ in iter_generate(model, processor, prompts, images, params,
                                             batch_size=batch_size, seed=seed):
            for i, t in zip(batch, texts):
                results[i] = t
            bar.update(len(batch) * n)
    return results  # type: ignore[return-value]
