"""A planted overlap set: a benchmark TSV, and training records among which some copy benchmark
images (byte-exact, or resized and JPEG re-encoded) or ask benchmark questions (verbatim, or
paraphrased), the rest clean distractors. `plant(out, ...)` returns the truth to measure
`sicog data overlap` against. Images are random smooth compositions (gradients, ellipses,
rectangles, mild noise), so unrelated images look unrelated to a perceptual hash as photos do.
"""

from __future__ import annotations

import base64
import io
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ADJ = ("red green blue yellow purple orange striped wooden metal tiny huge broken shiny wet dusty old young "
       "happy angry sleepy").split()
NOUN = ("car dog cat lamp table chair bicycle horse boat kite bottle phone clock tree bridge tower guitar "
        "umbrella window ladder camera pillow basket rocket violin").split()
VERB = "doing holding watching pulling carrying painting".split()
TEMPLATES = ("What is the {a} {n} {v} next to the {n2}?", "How many {a} {n2} are near the {n}?",
             "Which {n} is {v} the {a} {n2} in the scene?", "Why is the {a} {n} {v} beside the {n2}?")
SYNONYMS = {"car": "automobile", "dog": "puppy", "cat": "kitten", "lamp": "light", "table": "desk",
            "chair": "seat", "boat": "ship", "phone": "telephone", "tree": "oak", "horse": "pony"}


def random_image(rng: random.Random, size: int = 96) -> Image.Image:
    w, h = size + rng.randrange(-16, 17), size + rng.randrange(-16, 17)
    a, b = np.array([rng.randrange(256) for _ in range(3)]), np.array([rng.randrange(256) for _ in range(3)])
    t = np.linspace(0, 1, w)[None, :, None] if rng.random() < 0.5 else np.linspace(0, 1, h)[:, None, None]
    base = (a * (1 - t) + b * t) * np.ones((h, w, 1))
    img = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randrange(3, 8)):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        box = (x0, y0, x0 + rng.randrange(8, w // 2 + 8), y0 + rng.randrange(8, h // 2 + 8))
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, 4, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8))


def question(rng: random.Random) -> str:
    return rng.choice(TEMPLATES).format(a=rng.choice(ADJ), n=rng.choice(NOUN), v=rng.choice(VERB),
                                        n2=rng.choice(NOUN))


def paraphrase(q: str, how: str) -> str:
    body = q.rstrip("?")
    if how == "wrapper":
        return f"Look at the picture carefully. {body}? Please explain your reasoning in detail."
    if how == "reorder":  # move the last clause ("next to the X") to the front
        for cut in (" next to ", " near ", " beside ", " in the scene"):
            if cut in body:
                head, tail = body.split(cut, 1)
                return f"{cut.strip().capitalize()} {tail}, {head[0].lower()}{head[1:]}?"
        return f"Tell me: {body}?"
    words = body.split()  # synonym: one noun replaced
    for i, w in enumerate(words):
        if w in SYNONYMS:
            words[i] = SYNONYMS[w]
            return " ".join(words) + "?"
    return f"Tell me: {body}?"


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def plant(out: Path, n_bench: int = 200, n_clean: int = 600, n_exact: int = 20, n_resized: int = 60,
          n_verbatim: int = 20, n_paraphrase: int = 30, seed: int = 0) -> dict:
    from sicog.data.overlap_match import content_words

    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    images = out / "images"
    images.mkdir(exist_ok=True)
    bench_imgs, bench_qs = [], []
    with open(out / "bench.tsv", "w", encoding="utf-8") as fh:
        fh.write("index\tquestion\tA\tB\tanswer\timage\n")
        seen = set()
        for i in range(n_bench):
            img, q = random_image(rng), question(rng)
            while frozenset(content_words(q)) in seen:  # distinct benchmark questions: a match names one item
                q = question(rng)
            seen.add(frozenset(content_words(q)))
            bench_imgs.append(img)
            bench_qs.append(q)
            fh.write(f"{i}\t{q}\tyes\tno\tA\t{base64.b64encode(_png(img)).decode()}\n")
    records, truth = [], {"exact": {}, "resized": {}, "verbatim": {}, "paraphrase": {}, "clean": set()}

    def add(kind, img, text, target=None, how=None):
        rid = f"{kind}-{len(records)}"
        name = f"{rid}.{'jpg' if kind == 'resized' else 'png'}"
        if kind == "resized":
            scale = rng.choice([0.5, 0.66, 0.75, 1.25, 1.5, 2.0])
            img = img.resize((max(8, int(img.width * scale)), max(8, int(img.height * scale))),
                             Image.Resampling.BICUBIC)
            img.save(images / name, format="JPEG", quality=rng.choice([60, 70, 80, 90]))
        else:
            img.save(images / name, format="PNG")
        records.append({"id": rid, "image": name, "conversations": [
            {"from": "human", "value": f"<image>\n{text}"}, {"from": "gpt", "value": "A detailed answer."}]})
        if kind == "clean":
            truth["clean"].add(rid)
        else:
            truth[kind][rid] = (str(target), how)

    taken = {frozenset(content_words(q)) for q in bench_qs}
    for _ in range(n_clean):  # a clean question never has a benchmark question's content words
        q = question(rng)
        while frozenset(content_words(q)) in taken:
            q = question(rng)
        add("clean", random_image(rng), q)
    for _ in range(n_exact):
        k = rng.randrange(n_bench)
        add("exact", bench_imgs[k], question(rng), k)
    for _ in range(n_resized):
        k = rng.randrange(n_bench)
        add("resized", bench_imgs[k], question(rng), k)
    for _ in range(n_verbatim):
        k = rng.randrange(n_bench)
        add("verbatim", random_image(rng), f"{bench_qs[k]} Answer with a short phrase.", k)
    for j in range(n_paraphrase):
        k = rng.randrange(n_bench)
        how = ("wrapper", "reorder", "synonym")[j % 3]
        add("paraphrase", random_image(rng), paraphrase(bench_qs[k], how), k, how)
    rng.shuffle(records)
    with open(out / "train.jsonl", "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    return truth


def measure(truth: dict, overlap_jsonl: Path) -> dict:
    """Recall per planted kind (a hit: the record flagged against its benchmark item, by the
    right kind), and the false positives: flags on clean records or against the wrong item."""
    flags: dict[str, set] = {}
    for line in overlap_jsonl.read_text(encoding="utf-8").splitlines():
        f = json.loads(line)
        flags.setdefault(f["record_id"], set()).add((f["benchmark_index"], f["kind"]))
    res = {}
    for kind, want_kind in (("exact", "image"), ("resized", "image"), ("verbatim", "question"),
                            ("paraphrase", "question")):
        hits = {rid for rid, (idx, _) in truth[kind].items() if (idx, want_kind) in flags.get(rid, set())}
        res[kind] = {"planted": len(truth[kind]), "found": len(hits)}
        if kind == "paraphrase":
            for how in ("wrapper", "reorder", "synonym"):
                ids = [rid for rid, (_, h) in truth[kind].items() if h == how]
                res[f"paraphrase/{how}"] = {"planted": len(ids), "found": sum(r in hits for r in ids)}
    wrong = 0
    for kind in ("exact", "resized", "verbatim", "paraphrase"):
        for rid, (idx, _) in truth[kind].items():
            wrong += sum(i != idx for i, _ in flags.get(rid, set()))
    res["false_positives_clean"] = sum(len(flags.get(rid, ())) for rid in truth["clean"])
    res["false_positives_wrong_item"] = wrong
    res["clean_records"] = len(truth["clean"])
    return res
