"""Caption scoring against the synthetic world's scene graphs (object recall, attributes, CHAIR).

Registered with `sicog evaluate` as the caption scorer "scene_graph" (see sicog.demo.hooks).

A generated description (a plain caption, or a CoD answer whose Step 5 paragraph is scored) is
read back into object mentions with the world's own vocabulary
(`sicog.demo.world.vocab.extract_object_mentions`: shape, colour, size, cell, plural) and compared
with the scene graph's objects:

* **object recall** — the share of the scene's objects mentioned with their colour and shape.
  A plural mention ("red circles") covers every red circle; singular mentions of a colour+shape
  cover as many objects as they describe distinctly (by size or position), at least one.
* **attribute accuracy** — over the distinct mentions whose shape is in the scene, the share of
  stated attributes that hold: a stated colour is right when the scene has that shape in that
  colour; a stated size when it has that shape (in the stated colour, if right) in that size.
* **position accuracy** — the same for a stated cell ("in the top left corner").
* **hallucination rate** (CHAIR-i like) — the share of distinct mentioned objects (colour+shape,
  or the shape alone when no colour is stated) that the scene does not contain;
  **CHAIR-s** — the share of captions with at least one such object.

Corpus figures are micro-averages (sums of numerators over sums of denominators).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from sicog.data.records import iter_json_objects
from sicog.demo.world import vocab
from sicog.eval.captions import CaptionScorer, caption_text
from sicog.utils.io import SicogError


@dataclass
class CaptionScore:
    """Counts for one caption (the numerators and denominators of the corpus figures)."""

    n_objects: int = 0          # objects in the scene
    recalled: int = 0           # of them, mentioned with colour + shape
    n_mentioned: int = 0        # distinct mentioned objects (colour+shape or shape)
    hallucinated: int = 0       # of them, absent from the scene
    attr_checks: int = 0        # stated colours and sizes of mentions of present shapes
    attr_correct: int = 0
    pos_checks: int = 0         # stated cells of mentions of present shapes
    pos_correct: int = 0

    @property
    def recall(self) -> float:
        return self.recalled / self.n_objects if self.n_objects else 1.0

    @property
    def hallucination(self) -> float:
        return self.hallucinated / self.n_mentioned if self.n_mentioned else 0.0

    @property
    def attribute_accuracy(self) -> float | None:
        return self.attr_correct / self.attr_checks if self.attr_checks else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(recall=self.recall, hallucination=self.hallucination,
                 attribute_accuracy=self.attribute_accuracy)
        return d


def _objects(scene: dict) -> list[dict]:
    """The scene graph's objects with canonical attribute names (shape, colour, size, cell)."""
    objs = scene.get("objects")
    if not isinstance(objs, list):
        raise ValueError("scene graph has no 'objects' list")
    return objs


def score_caption(text: str, scene: dict, use_step5: bool = True) -> CaptionScore:
    """Score one generated description against one scene graph (a `Scene.to_dict()` dict)."""
    objs = _objects(scene)
    mentions = vocab.extract_object_mentions(caption_text(text, use_step5))
    s = CaptionScore(n_objects=len(objs))

    # recall: per colour+shape key, how many of the scene's objects the text covers
    for key in {(o["colour"], o["shape"]) for o in objs}:
        true_n = sum((o["colour"], o["shape"]) == key for o in objs)
        ms = [m for m in mentions if (m["colour"], m["shape"]) == key]
        if not ms:
            continue
        if any(m["plural"] for m in ms):
            covered = true_n
        else:
            distinct = {(m["size"], m["cell"]) for m in ms if m["size"] or m["cell"]}
            covered = max(1, len(distinct))
        s.recalled += min(true_n, covered)

    # hallucination: distinct mentioned objects the scene lacks
    mentioned = {(m["colour"], m["shape"]) for m in mentions}
    # "a circle" adds nothing when "a red circle" is also said
    mentioned -= {(None, shape) for c, shape in mentioned if c is not None}
    s.n_mentioned = len(mentioned)
    for colour, shape in mentioned:
        if not any(o["shape"] == shape and (colour is None or o["colour"] == colour) for o in objs):
            s.hallucinated += 1

    # attributes and positions of distinct mentions whose shape is present
    for m in {(m["shape"], m["colour"], m["size"], m["cell"]): m for m in mentions}.values():
        same_shape = [o for o in objs if o["shape"] == m["shape"]]
        if not same_shape:
            continue
        pool = same_shape
        if m["colour"] is not None:
            s.attr_checks += 1
            coloured = [o for o in same_shape if o["colour"] == m["colour"]]
            if coloured:
                s.attr_correct += 1
                pool = coloured
        if m["size"] is not None:
            s.attr_checks += 1
            s.attr_correct += any(o["size"] == m["size"] for o in pool)
        if m["cell"] is not None:
            s.pos_checks += 1
            s.pos_correct += any(o["cell"] == m["cell"] for o in pool)
    return s


def summarize_captions(scores: list[CaptionScore]) -> dict:
    """Corpus figures (micro-averaged) over scored captions."""
    def total(name: str) -> int:
        return sum(getattr(x, name) for x in scores)

    def ratio(num: str, den: str, empty):
        d = total(den)
        return total(num) / d if d else empty

    return {
        "n": len(scores),
        "object_recall": ratio("recalled", "n_objects", 0.0),
        "attribute_accuracy": ratio("attr_correct", "attr_checks", None),
        "position_accuracy": ratio("pos_correct", "pos_checks", None),
        "hallucination_rate": ratio("hallucinated", "n_mentioned", 0.0),
        "chair_s": sum(x.hallucinated > 0 for x in scores) / len(scores) if scores else 0.0,
        "mentions_per_caption": total("n_mentioned") / len(scores) if scores else 0.0,
        "objects": total("n_objects"),
    }


# ---------------------------------------------------------------- benchmark files
@dataclass
class CaptionItem:
    """One caption-benchmark image: its id, image file and scene graph."""

    id: str
    image: str          # resolved path
    scene: dict
    line: int = 0


def read_caption_benchmark(path, base_dir=None, limit: int | None = None) -> list[CaptionItem]:
    """Read a `benchmark_captions.jsonl` (`{"id", "image", "scene"}` per line, see
    `sicog.demo.world.benchmark`); image paths are relative to `base_dir` (default: the file's folder).

    Errors name file:line and the key at fault.
    """
    path = Path(path)
    base = Path(base_dir) if base_dir is not None else path.parent
    items: list[CaptionItem] = []
    for line, rec in iter_json_objects(path):
        where = f"{path}:{line}"
        if not isinstance(rec, dict):
            raise SicogError(f"{where}: expected a JSON object")
        for key in ("id", "image", "scene"):
            if key not in rec:
                raise SicogError(f"{where}: missing key {key!r}")
        scene = rec["scene"]
        if not isinstance(scene, dict) or not isinstance(scene.get("objects"), list):
            raise SicogError(f"{where}: key 'scene' must be a scene graph with an 'objects' list")
        for i, o in enumerate(scene["objects"]):
            missing = [k for k in ("shape", "colour", "size", "cell") if k not in o]
            if missing:
                raise SicogError(f"{where}: key 'scene.objects[{i}]' lacks {', '.join(missing)}")
        image = Path(rec["image"])
        image = image if image.is_absolute() else base / image
        if not image.is_file():
            raise SicogError(f"{where}: key 'image': file not found: {image}")
        items.append(CaptionItem(str(rec["id"]), str(image), scene, line))
        if limit is not None and len(items) >= limit:
            break
    return items


def score_item(text: str, item: CaptionItem, use_step5: bool = True) -> CaptionScore:
    """`score_caption` against a benchmark item's scene graph."""
    return score_caption(text, item.scene, use_step5)


SCENE_GRAPH_SCORER = CaptionScorer(name="scene_graph", read=read_caption_benchmark, score=score_item,
                                   summarize=summarize_captions)
