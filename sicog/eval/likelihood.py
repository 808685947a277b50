"""Multiple choice by likelihood: pick the option whose text the model finds most probable.

Generation-based scoring (`sicog.eval.mcq.evaluate_mcq`) asks for the option's letter, which
tests two things at once: knowing the answer and mapping it to a letter. Large models do the
second for free; tiny ones (the synthetic-world demo) often do not, and then every model sits at
chance whatever it knows. Likelihood scoring, as in SEED-Bench's original protocol and the
multiple-choice tasks of lm-evaluation-harness, asks the open question (no option list) and
compares log p(option text + end of turn | image, question) across the options. It measures
what the model knows about the image, not whether it can read an option list.
"""

from __future__ import annotations

import inspect
import logging
from typing import Sequence

import torch

from sicog.data import slices
from sicog.data.formats import SHORT_ANSWER_INSTRUCTION
from sicog.data.images import centre_square_for_crop
from sicog.eval.mcq import ChunkCallback, McqItem, McqPrediction, chunks_with_progress
from sicog.utils.io import SicogError

log = logging.getLogger(__name__)


def open_question(item: McqItem) -> str:
    """The item asked as an open short-answer question: hint, question, short-answer instruction."""
    parts = [item.hint] if item.hint else []
    parts += [item.question, SHORT_ANSWER_INSTRUCTION]
    return "\n".join(parts)


class OptionScorer:
    """Sums the log-probabilities a (model, processor) pair gives to candidate replies.

    Each candidate is scored as the complete assistant turn: its tokens plus the end-of-turn
    token, so that a prefix of a longer option ("red" vs "red square") does not win for free.
    """

    def __init__(self, model, processor, *, batch_size: int = 32):
        self.model, self.processor, self.batch_size = model, processor, batch_size
        self.tokenizer = getattr(processor, "tokenizer", processor)
        end = self.tokenizer.eos_token
        if end is None:
            raise SicogError("likelihood scoring needs the tokenizer's end-of-turn token (eos_token)")
        self.end_text = end
        self._prompt_lengths: dict = {}   # the options of one question share their prompt

    def _prompt_length(self, prompt: str, image) -> int:
        """Tokens of the rendered prompt, image tokens included (computed once per prompt)."""
        key = (prompt, None if image is None else image.size)
        if key not in self._prompt_lengths:
            enc = self.processor(text=[prompt], images=[image], return_tensors="pt") if image is not None \
                else self.tokenizer([prompt], add_special_tokens=False)
            self._prompt_lengths[key] = len(enc["input_ids"][0])
        return self._prompt_lengths[key]

    def _render(self, question: str, has_image: bool) -> str:
        from sicog.model.generation import render_prompt

        return render_prompt(self.processor, question, has_image)

    @torch.no_grad()
    def score(self, requests: Sequence[tuple[str, object, Sequence[str]]]) -> list[list[float]]:
        """For each (question, image or None, candidates): the summed log-prob of every candidate."""
        shared = all(image is not None for _, image, _ in requests) and not slices.slices_images(self.processor)
        if requests and shared:   # sliced (UHD) images and text-only items: one sequence per candidate
            per_pass = max(1, self.batch_size // max(len(c) for _, _, c in requests))
            return [s for start in range(0, len(requests), per_pass)
                    for s in self._score_sharing_prompts(requests[start:start + per_pass])]
        return self._score_rows(requests)

    def _score_sharing_prompts(self, requests) -> list[list[float]]:
        """The candidates of each question scored after one pass over its prompt (image included): the
        prompt's keys and values are computed once and reused by every candidate, whose own tokens then
        cost a few positions each instead of a whole sequence. The token ids are those of the full
        texts, as `_score_rows` has them; a chunk whose full texts do not start with their prompt's
        tokens is scored the plain way."""
        device = next(self.model.parameters()).device
        prompts = [self._render(q, True) for q, _, _ in requests]
        images = [centre_square_for_crop(self.processor, im) for _, im, _ in requests]
        rows = [i for i, (_, _, cands) in enumerate(requests) for _ in cands]
        fulls = [p + c + self.end_text for p, (_, _, cands) in zip(prompts, requests) for c in cands]
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "right"   # the prompts' own tokens keep positions 0 … n-1
        try:
            enc = self.processor(text=prompts, images=images, return_tensors="pt", padding=True)
            full = self.processor(text=fulls, images=[images[i] for i in rows], return_tensors="pt", padding=True)
        finally:
            self.tokenizer.padding_side = side
        n = enc["attention_mask"].sum(1)
        ends = full["attention_mask"].sum(1)
        if any(int(ends[r]) <= int(n[i]) or not torch.equal(full["input_ids"][r, :n[i]], enc["input_ids"][i, :n[i]])
               for r, i in enumerate(rows)):
            return self._score_rows(requests)
        out = self.model(**{k: v.to(device) for k, v in enc.items()}, use_cache=True)
        first = torch.log_softmax(out.logits[torch.arange(len(requests)), n - 1].float(), dim=-1)
        replies = [full["input_ids"][r, n[i]:ends[r]] for r, i in enumerate(rows)]
        longest = max(len(t) for t in replies)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        ids = torch.full((len(rows), longest), int(pad), dtype=torch.long)   # masked: never read
        mask = torch.zeros((len(rows), longest), dtype=torch.long)
        for r, t in enumerate(replies):
            ids[r, :len(t)], mask[r, :len(t)] = t, 1
        index = torch.tensor(rows)
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values  # renamed in 5.x
        cache.batch_select_indices(index.to(device))   # each question's keys and values, once per candidate
        cache_arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        attention = torch.cat([enc["attention_mask"][index], mask], 1)   # the prompt's padding stays masked
        positions = n[index][:, None] + torch.arange(longest)[None]       # as if each prompt had no padding
        later = self.model(input_ids=ids.to(device), attention_mask=attention.to(device),
                           position_ids=positions.to(device), use_cache=False, **{cache_arg: cache}).logits
        scores: list[list[float]] = [[] for _ in requests]
        for r, (i, t) in enumerate(zip(rows, replies)):
            t = t.to(device)
            s = first[i, t[0]]
            if len(t) > 1:   # token j + 1 is predicted at the candidate's position j
                s = s + torch.log_softmax(later[r, :len(t) - 1].float(), dim=-1).gather(-1, t[1:, None]).sum()
            scores[i].append(float(s))
        return scores

    def _score_rows(self, requests) -> list[list[float]]:
        """Every candidate scored as one whole sequence (prompt, image, candidate, end of turn)."""
        flat: list[tuple[int, str, object, str]] = []
        for i, (question, image, candidates) in enumerate(requests):
            prompt = self._render(question, image is not None)
            if image is not None:
                image = centre_square_for_crop(self.processor, image)
            flat += [(i, prompt, image, c) for c in candidates]
        scores: list[list[float]] = [[] for _ in requests]
        for start in range(0, len(flat), self.batch_size):
            chunk = flat[start:start + self.batch_size]
            for (i, *_), s in zip(chunk, self._score_chunk(chunk)):
                scores[i].append(s)
        return scores

    def _score_chunk(self, chunk) -> list[float]:
        device = next(self.model.parameters()).device
        with_image = [c for c in chunk if c[2] is not None]
        if with_image and len(with_image) != len(chunk):
            # one forward pass needs every row with or every row without an image
            return [s for c in chunk for s in self._score_chunk([c])]
        fulls = [p + cand + self.end_text for _, p, _, cand in chunk]
        kwargs = {"text": fulls, "return_tensors": "pt", "padding": True}
        if with_image:
            kwargs["images"] = [im for _, _, im, _ in chunk]
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "right"   # reply tokens then sit at known offsets
        try:
            enc = self.processor(**kwargs)
        finally:
            self.tokenizer.padding_side = side
        prompt_lens = [self._prompt_length(p, im) for _, p, im, _ in chunk]
        enc = {k: v.to(device) for k, v in enc.items()}
        logits = self.model(**enc).logits
        lengths = enc["attention_mask"].sum(1).tolist()
        out = []
        for row, (n_prompt, n_all) in enumerate(zip(prompt_lens, lengths)):
            if n_all <= n_prompt:
                raise SicogError("likelihood scoring: a candidate reply tokenised to nothing")
            # log-softmax over the reply positions only: [seq, vocab] in fp32 is GBs at a 150k vocab
            reply_lp = torch.log_softmax(logits[row, n_prompt - 1:n_all - 1].float(), dim=-1)
            targets = enc["input_ids"][row, n_prompt:n_all]
            out.append(float(reply_lp.gather(-1, targets.unsqueeze(-1)).sum()))
        return out


def evaluate_mcq_by_likelihood(items: Sequence[McqItem], scorer: OptionScorer, *, chunk_size: int = 16,
                               progress: bool = True, done: Sequence[McqPrediction] = (),
                               on_chunk: ChunkCallback | None = None) -> list[McqPrediction]:
    """Score every option of every item; the prediction is the letter of the most probable option.

    `prediction` records the chosen option's text and every option's log-prob, for inspection.
    `done` holds the predictions of an earlier, interrupted run for the first items; `on_chunk`
    receives the predictions of each finished chunk (as in `sicog.eval.mcq.evaluate_mcq`).
    """
    results: list[McqPrediction] = list(done)
    for chunk in chunks_with_progress(items, chunk_size, "mcq (likelihood)", progress, start=len(done)):
        scores = scorer.score([(open_question(it), it.load_image(), list(it.options.values())) for it in chunk])
        new = []
        for it, s in zip(chunk, scores):
            letters = list(it.options)
            best = max(range(len(letters)), key=lambda k: s[k])
            detail = ", ".join(f"{k}={v:.2f}" for k, v in zip(letters, s))
            new.append(McqPrediction(it, f"{it.options[letters[best]]} [log-probs {detail}]", letters[best]))
        results += new
        if on_chunk is not None:
            on_chunk(new)
    return results
