"""Caption evaluation: describe every benchmark image, score each reply with a caption scorer.

What "correct" means for a description depends on the ground truth a benchmark carries, so the
scoring is a plug-in: a `CaptionScorer` reads a ground-truth file into items (each with `id` and
`image`), scores one reply against one item, and summarises a corpus. Plugins register scorers
by name (`register_caption_scorer`); the built-in demo registers "scene_graph" (object recall,
attribute accuracy and hallucination against the synthetic world's scene graphs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from sicog.data.formats import extract_cod_description
from sicog.data.images import load_image
from sicog.utils.io import SicogError

#: the scorer used when a benchmark does not name one (the synthetic world's ground truth)
DEFAULT_CAPTION_SCORER = "scene_graph"


def caption_text(text: str, use_step5: bool = True) -> str:
    """The part of a reply that is scored: the CoD Step 5 paragraph when there is one, else all."""
    if use_step5:
        step5 = extract_cod_description(text or "")
        if step5:
            return step5
    return text or ""


@dataclass(frozen=True)
class CaptionScorer:
    """How captions are scored against one kind of ground truth.

    read(path, limit=None) -> items with `.id` and `.image` (a path); errors name file:line.
    score(reply, item, use_step5) -> a per-item score with `.to_dict()`.
    summarize(scores) -> corpus figures; must hold `object_recall` and `hallucination_rate`.
    """

    name: str
    read: Callable[..., list[Any]]
    score: Callable[..., Any]
    summarize: Callable[[list[Any]], dict]


_SCORERS: dict[str, CaptionScorer] = {}


def register_caption_scorer(scorer: CaptionScorer) -> None:
    """Make `scorer` available to `sicog evaluate` under its name (idempotent)."""
    _SCORERS[scorer.name] = scorer


def get_caption_scorer(name: str = DEFAULT_CAPTION_SCORER) -> CaptionScorer:
    """The registered scorer `name`; an error lists the registered ones."""
    if name not in _SCORERS:
        known = ", ".join(sorted(_SCORERS)) or "none (is the demo plugin loaded? see sicog.cli.load_plugins)"
        raise SicogError(f"no caption scorer {name!r} is registered (registered: {known})")
    return _SCORERS[name]


def evaluate_captions(items: list, predict, prompt: str, scorer: CaptionScorer, *, chunk_size: int = 32,
                      use_step5: bool = True, progress: bool = True, done: Sequence[str] = (),
                      on_chunk: Callable[[list[dict]], None] | None = None) -> tuple[list[dict], dict]:
    """Ask `predict` for a description of every image and score it; (per-item records, summary).

    `done` holds the replies of an earlier, interrupted run for the first items (scored again,
    not asked again); `on_chunk` receives the records of each finished chunk.
    """

    from sicog.eval.mcq import chunks_with_progress

    records: list[dict] = []
    scores: list = []

    def add(chunk, replies) -> list[dict]:
        new = []
        for it, reply in zip(chunk, replies):
            reply = "" if reply is None else str(reply)
            s = scorer.score(reply, it, use_step5)
            scores.append(s)
            new.append({"id": it.id, "prediction": reply, "scored_text": caption_text(reply, use_step5),
                        **s.to_dict()})
        records.extend(new)
        return new

    add(items[:len(done)], done)
    for chunk in chunks_with_progress(items, chunk_size, "captions", progress, start=len(done)):
        pairs = []
        for it in chunk:
            pairs.append((prompt, load_image(it.image, f"caption item {it.id!r}")))
        replies = predict(pairs)
        if len(replies) != len(chunk):
            raise RuntimeError(f"predictor returned {len(replies)} replies for {len(chunk)} prompts")
        new = add(chunk, replies)
        if on_chunk is not None:
            on_chunk(new)
    return records, scorer.summarize(scores)
