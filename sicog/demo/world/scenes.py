"""Seeded procedural scenes of the synthetic world, and their scene graphs (the ground truth).

A scene is 1-6 flat shapes on a light background, one shape per cell of a 3x3 grid (with jitter,
and sometimes pulled towards a neighbour so that it overlaps it), drawn in z-order, plus
distractor clutter: small grey specks and an optional thin border. Nothing about a scene is
random after `make_scene(rng, ...)` returns: rendering noise has its own seed (`Scene.seed`).

Scene graph JSON (`Scene.to_dict()`; what `scenes.jsonl` and `benchmark_captions.jsonl` store;
stable, version `SCENE_GRAPH_VERSION`)::

    {"version": 1, "id": "bench-000003", "image_size": 64, "seed": 123456789,
     "background": "white",            # one of BACKGROUNDS
     "border": true,                   # a thin dark frame along the image edges
     "specks": [[x, y], ...],          # distractor specks (pixel centres), never counted as objects
     "objects": [
       {"id": 0, "shape": "circle", "colour": "red", "size": "large",
        "cell": "top left", "row": 0, "col": 0,        # row/col 0..2, cell name from CELL_NAMES
        "center": [x, y], "radius": r,                  # pixels at image_size (floats, 2 decimals)
        "bbox": [x0, y0, x1, y1],                       # integer pixel box, x1/y1 exclusive
        "z": 0,                                         # drawing order, larger = in front
        "visible_fraction": 0.83,                       # share of its pixels not covered by others
        "occluded": true,                               # visible_fraction < 1 - OCCLUSION_MIN
        "occluded_by": [2]}]}                           # ids of objects covering part of it

Shapes, colours, sizes and cell names are the canonical words below; the text vocabulary
(synonyms, phrases) lives in `sicog.demo.world.annotate`. Relations are derived, never stored:
`relations(scene)` gives left-of / right-of / above / below from grid columns and rows (strict:
a shape in column 0 is left of one in column 1 or 2) and covers from `occluded_by`.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image, ImageDraw

SCENE_GRAPH_VERSION = 1

#: every shape the renderer can draw; `SceneConfig.shapes` picks the ones a world uses
ALL_SHAPES = ("circle", "square", "triangle", "diamond", "star")
#: every colour the renderer knows (RGB); clearly distinct hues so a tiny model can name them
PALETTE = {
    "red": (220, 45, 45),
    "green": (40, 165, 70),
    "blue": (45, 85, 220),
    "yellow": (235, 200, 35),
    "purple": (145, 60, 190),
    "orange": (240, 130, 30),
}
SIZES = ("small", "large")
#: background name -> RGB; specks (dark grey) and objects stay clearly visible on both
BACKGROUNDS = {"white": (246, 246, 246), "light gray": (214, 214, 214)}
SPECK_RGB = (110, 110, 110)
BORDER_RGB = (60, 60, 60)

#: cell names in row-major order; index = row * 3 + col
CELL_NAMES = (
    "top left", "top center", "top right",
    "middle left", "center", "middle right",
    "bottom left", "bottom center", "bottom right",
)
#: kinds of questions (the benchmark's `category`); `SceneConfig.question_kinds` picks the ones a world asks
QUESTION_KINDS = ("count", "attribute", "spatial", "comparison", "existence")
#: each kind's subtypes (the benchmark's `l2-category`); `SceneConfig.question_subtypes` may keep some only
QUESTION_SUBTYPES = {"count": ("count_all", "count_class"), "attribute": ("colour", "shape", "size"),
                     "spatial": ("where", "direction", "relation_yesno"),
                     "comparison": ("more", "more_by", "most_colour", "larger"),
                     "existence": ("exists", "which_present", "which_absent")}
#: a shape counts as occluded when more than this share of it is hidden
OCCLUSION_MIN = 0.04
#: placements hiding more than this share of a shape are rejected (it must stay recognisable)
OCCLUSION_MAX = 0.45
_SUPERSAMPLE = 4  # masks and drawings are made at 4x and downsampled (anti-aliasing)


@dataclass(frozen=True)
class SceneConfig:
    """What scenes a world contains (the same config + seed gives the same scenes)."""

    image_size: int = 64
    min_objects: int = 1
    max_objects: int = 6
    shapes: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow")
    overlap_prob: float = 0.3       # chance that a shape is pulled onto a neighbour
    max_specks: int = 6             # distractor specks: 0..max_specks
    border_prob: float = 0.3
    colour_jitter: int = 12         # per-channel jitter of an object's colour (rendering)
    noise_sd: float = 5.0           # per-pixel gaussian noise (rendering)
    question_kinds: tuple[str, ...] = QUESTION_KINDS  # what the world's questions ask about
    question_subtypes: tuple[str, ...] = ()  # only these subtypes of those kinds (empty: every one)

    def __post_init__(self) -> None:
        if not 48 <= self.image_size <= 128:
            raise ValueError(f"image_size must be within 48..128 px, got {self.image_size}")
        if not 1 <= self.min_objects <= self.max_objects <= 6:
            raise ValueError(f"need 1 <= min_objects <= max_objects <= 6, got "
                             f"{self.min_objects}..{self.max_objects}")
        bad = [s for s in self.shapes if s not in ALL_SHAPES]
        if bad or len(set(self.shapes)) < 4:
            raise ValueError(f"shapes must be >= 4 distinct names from {ALL_SHAPES}, got {self.shapes}")
        bad = [c for c in self.colours if c not in PALETTE]
        if bad or len(set(self.colours)) < 4:
            raise ValueError(f"colours must be >= 4 distinct names from {sorted(PALETTE)}, got {self.colours}")
        if not self.question_kinds or set(self.question_kinds) - set(QUESTION_KINDS):
            raise ValueError(f"question_kinds must be some of {QUESTION_KINDS}, got {self.question_kinds}")
        if self.question_subtypes:
            offered = [t for k in self.question_kinds for t in QUESTION_SUBTYPES[k]]
            left = [k for k in self.question_kinds if not set(QUESTION_SUBTYPES[k]) & set(self.question_subtypes)]
            if set(self.question_subtypes) - set(offered) or left:
                raise ValueError(f"question_subtypes must be subtypes of the question kinds ({', '.join(offered)}), "
                                 f"at least one of each kind, got {self.question_subtypes}")
        for name, top in (("overlap_prob", 1), ("border_prob", 1), ("noise_sd", 64), ("max_specks", 50),
                          ("colour_jitter", 64)):
            if not 0 <= (value := getattr(self, name)) <= top:  # NaN fails too
                raise ValueError(f"{name} must be within 0..{top:g}, got {value}")


@dataclass
class SceneObject:
    """One shape of a scene; geometry in pixels at the scene's image size."""

    id: int
    shape: str
    colour: str
    size: str
    cell: str
    row: int
    col: int
    center: list[float]
    radius: float
    bbox: list[int] = field(default_factory=list)
    z: int = 0
    visible_fraction: float = 1.0
    occluded: bool = False
    occluded_by: list[int] = field(default_factory=list)


@dataclass
class Scene:
    """A scene and its ground truth; `to_dict()` is the scene-graph JSON (see module docstring)."""

    id: str
    image_size: int
    seed: int
    background: str
    border: bool
    specks: list[list[float]]
    objects: list[SceneObject]

    def to_dict(self) -> dict:
        """The JSON-serialisable scene graph."""
        d = asdict(self)
        return {"version": SCENE_GRAPH_VERSION, **d}

    @classmethod
    def from_dict(cls, d: dict) -> Scene:
        """Inverse of `to_dict` (the version key is checked)."""
        if d.get("version") != SCENE_GRAPH_VERSION:
            raise ValueError(f"scene graph version {d.get('version')!r} != {SCENE_GRAPH_VERSION}")
        objs = [SceneObject(**o) for o in d["objects"]]
        keys = {k: d[k] for k in ("id", "image_size", "seed", "background", "border", "specks")}
        return cls(objects=objs, **keys)


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (stable across processes and Python versions)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    """The polygon of a shape centred at (cx, cy) with circumradius-like size r; None for a circle."""
    if shape == "circle":
        return None
    if shape == "square":
        h = r * 0.86  # a square of the same visual weight as the circle
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "diamond":
        return [(cx, cy - r * 1.1), (cx + r * 0.8, cy), (cx, cy + r * 1.1), (cx - r * 0.8, cy)]
    if shape == "triangle":
        return [(cx, cy - r * 1.05), (cx + r * 1.05, cy + r * 0.8), (cx - r * 1.05, cy + r * 0.8)]
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r * (1.1 if k % 2 == 0 else 0.48)
            ang = -np.pi / 2 + k * np.pi / 5
            pts.append((cx + rad * np.cos(ang), cy + rad * np.sin(ang)))
        return pts
    raise ValueError(f"unknown shape {shape!r}")


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    """Draw one filled shape (coordinates already in the drawing's pixel scale)."""
    poly = shape_polygon(shape, cx, cy, r)
    if poly is None:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        draw.polygon(poly, fill=fill)


def object_mask(obj: SceneObject, image_size: int) -> np.ndarray:
    """Boolean pixel mask of a shape at the supersampled scale."""
    s = image_size * _SUPERSAMPLE
    img = Image.new("L", (s, s), 0)
    draw_shape(ImageDraw.Draw(img), obj.shape, obj.center[0] * _SUPERSAMPLE,
               obj.center[1] * _SUPERSAMPLE, obj.radius * _SUPERSAMPLE, 255)
    return np.asarray(img) > 127


def _visibility(objs: list[SceneObject], masks: list[np.ndarray]) -> list[tuple[float, list[int]]]:
    """(visible fraction, ids of covering objects) per object; objs are in z order."""
    out = []
    for i, m in enumerate(masks):
        area = max(int(m.sum()), 1)
        covered = np.zeros_like(m)
        by = []
        for j in range(i + 1, len(masks)):
            inter = m & masks[j]
            if inter.sum() / area > 0.01:
                by.append(objs[j].id)
            covered |= inter
        out.append((1.0 - covered.sum() / area, by))
    return out


def _dilate(m: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation by a (2r+1)-square (shifted ORs; no SciPy needed)."""
    out = m.copy()
    h, w = m.shape
    for dy in (-r, 0, r):
        for dx in (-r, 0, r):
            shifted = np.zeros_like(m)
            shifted[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                m[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
            out |= shifted
    return out


def _same_colour_contacts(objs: list[SceneObject], masks: list[np.ndarray]) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of same-coloured shapes that touch or overlap (they would merge into one blob)."""
    pairs = []
    for j in range(len(objs)):
        grown = None
        for i in range(j):
            if objs[i].colour == objs[j].colour:
                grown = _dilate(masks[j], _SUPERSAMPLE) if grown is None else grown
                if (grown & masks[i]).any():
                    pairs.append((i, j))
    return pairs


def _bbox(obj: SceneObject, image_size: int) -> list[int]:
    poly = shape_polygon(obj.shape, obj.center[0], obj.center[1], obj.radius)
    if poly is None:
        cx, cy, r = obj.center[0], obj.center[1], obj.radius
        xs, ys = [cx - r, cx + r], [cy - r, cy + r]
    else:
        xs, ys = [p[0] for p in poly], [p[1] for p in poly]
    lo = lambda v: max(0, int(np.floor(v)))  # noqa: E731
    hi = lambda v: min(image_size, int(np.ceil(v)))  # noqa: E731
    return [lo(min(xs)), lo(min(ys)), hi(max(xs)), hi(max(ys))]


def _place(rng: random.Random, cfg: SceneConfig, cells: list[int], attrs: list[tuple[str, str, str]],
           pull: list[int | None]) -> list[SceneObject]:
    """Positions for the given cells; pull[i] = a neighbour cell index to lean towards, or None."""
    cell_px = cfg.image_size / 3
    objs = []
    for z, (cell, (shape, colour, size)) in enumerate(zip(cells, attrs)):
        row, col = divmod(cell, 3)
        r = cell_px * (0.37 if size == "large" else 0.22) * rng.uniform(0.93, 1.07)
        jit = cell_px * 0.1
        cx = (col + 0.5) * cell_px + rng.uniform(-jit, jit)
        cy = (row + 0.5) * cell_px + rng.uniform(-jit, jit)
        if pull[z] is not None:
            nrow, ncol = divmod(pull[z], 3)
            amount = rng.uniform(0.38, 0.5) * cell_px
            cx += np.sign(ncol - col) * amount
            cy += np.sign(nrow - row) * amount
        # the centre stays inside its own cell, so `cell` remains true after jitter and pull
        cx = min(max(cx, col * cell_px + 1.0), (col + 1) * cell_px - 1.0)
        cy = min(max(cy, row * cell_px + 1.0), (row + 1) * cell_px - 1.0)
        # ...and the shape stays inside the image
        m = r * 1.12 + 1.0
        cx = min(max(cx, m), cfg.image_size - m)
        cy = min(max(cy, m), cfg.image_size - m)
        objs.append(SceneObject(id=z, shape=shape, colour=colour, size=size, cell=CELL_NAMES[cell],
                                row=row, col=col, center=[round(float(cx), 2), round(float(cy), 2)],
                                radius=round(float(r), 2), z=z))
    return objs


def make_scene(rng: random.Random, cfg: SceneConfig, scene_id: str) -> Scene:
    """Draw a random scene from `rng` (a seeded `random.Random`): objects, clutter, visibility."""
    n = rng.randint(cfg.min_objects, cfg.max_objects)
    cells = rng.sample(range(9), n)
    attrs = [(rng.choice(cfg.shapes), rng.choice(cfg.colours), rng.choice(SIZES)) for _ in range(n)]
    for attempt in range(30):
        pull: list[int | None] = []
        for i, cell in enumerate(cells):
            row, col = divmod(cell, 3)
            neighbours = [c for c in cells[:i] if c != cell and abs(c // 3 - row) <= 1 and abs(c % 3 - col) <= 1]
            # after 20 failed attempts, stop pulling shapes together (jitter alone rarely overlaps)
            lean = neighbours and attempt < 20 and rng.random() < cfg.overlap_prob
            pull.append(rng.choice(neighbours) if lean else None)
        objs = _place(rng, cfg, cells, attrs, pull)
        masks = [object_mask(o, cfg.image_size) for o in objs]
        vis = _visibility(objs, masks)
        contacts = _same_colour_contacts(objs, masks)
        if all(v >= 1.0 - OCCLUSION_MAX for v, _ in vis) and not contacts:
            break
    else:  # still touching a same-coloured shape: recolour the later shape of each such pair
        for _i, j in contacts:
            touching = {objs[k].colour for k in range(len(objs)) if k != j and (
                _dilate(masks[j], _SUPERSAMPLE) & masks[k]).any()}
            free = [c for c in cfg.colours if c not in touching] or list(cfg.colours)
            objs[j].colour = rng.choice(free)
    for o, (v, by) in zip(objs, vis):
        o.visible_fraction = round(float(v), 3)
        o.occluded = bool(v < 1.0 - OCCLUSION_MIN)
        o.occluded_by = by if o.occluded else []
        o.bbox = _bbox(o, cfg.image_size)
    n_specks = rng.randint(0, cfg.max_specks)
    specks = [[round(rng.uniform(2, cfg.image_size - 2), 1), round(rng.uniform(2, cfg.image_size - 2), 1)]
              for _ in range(n_specks)]
    return Scene(id=scene_id, image_size=cfg.image_size, seed=rng.getrandbits(63),
                 background=rng.choice(sorted(BACKGROUNDS)), border=rng.random() < cfg.border_prob,
                 specks=specks, objects=objs)


def scene_for(world_seed: int, split: str, index: int, cfg: SceneConfig, scene_id: str) -> Scene:
    """The scene number `index` of `split` in the world of `world_seed` (independent of other scenes)."""
    return make_scene(random.Random(derive_seed("sicog-world", world_seed, split, index)), cfg, scene_id)


# ------------------------------------------------------------------ derived facts
def relations(scene: Scene) -> list[tuple[int, str, int]]:
    """(a, relation, b) facts: "left of", "right of", "above", "below" (grid), "covers" (occlusion)."""
    out = []
    for a in scene.objects:
        for b in scene.objects:
            if a.id == b.id:
                continue
            for holds, rel in ((a.col < b.col, "left of"), (a.col > b.col, "right of"), (a.row < b.row, "above"),
                               (a.row > b.row, "below"), (a.id in b.occluded_by, "covers")):
                if holds:
                    out.append((a.id, rel, b.id))
    return out


def count_matching(scene: Scene, shape: str | None = None, colour: str | None = None,
                   size: str | None = None) -> int:
    """How many objects have all the given attributes (None = any)."""
    return sum(1 for o in scene.objects
               if (shape is None or o.shape == shape) and (colour is None or o.colour == colour)
               and (size is None or o.size == size))
