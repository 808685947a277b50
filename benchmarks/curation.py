"""Curation overhead: `sicog curate` wall time against the raw `encode` time of the same encoder.

Generates a synthetic candidates file (default 3,334 items x 6 = 20,004 CoD candidates with
varied wording, per-candidate errors and some exact duplicates, as a sampled model produces),
loads the encoder once, then times

  raw_unique: SentenceTransformer.encode on exactly the texts curation embeds (the extracted
              Step 5 descriptions, deduplicated), same batch size;
  curation:   run_curation (read + validate + extract + dedupe + encode + score + write curated
              and report) with that loaded encoder;
  raw_full:   encode of all extracted texts without deduplication (what a naive pipeline does).

overhead = curation / raw_unique - 1 (target <= 10 %); on a shared machine the load drifts
between passes, so pairs alternate their order (--repeats) and the curation pass also reports
its own encode time: (curation wall - its encode) / its encode is the drift-free overhead.
curation / raw_full is printed too.
Never part of the test suite:  python benchmarks/curation.py [--items 3334] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white"]
SHAPES = {"circle": ["circle", "disc", "round shape"], "square": ["square", "box"],
          "triangle": ["triangle", "three-sided shape"], "star": ["star"], "ring": ["ring", "hoop"],
          "cross": ["cross", "plus sign"]}
SIZES = {"small": ["small", "tiny", "little"], "medium": ["medium-sized", "mid-sized"],
         "large": ["large", "big", "huge"]}
PLACES = {"top left": ["in the top left corner", "at the upper left", "near the top-left edge"],
          "top": ["at the top", "along the upper edge", "near the top centre"],
          "top right": ["in the top right corner", "at the upper right"],
          "left": ["on the left", "at the left side", "toward the left"],
          "centre": ["in the centre", "in the middle", "at the centre of the frame"],
          "right": ["on the right", "at the right side", "toward the right"],
          "bottom left": ["in the bottom left corner", "at the lower left"],
          "bottom": ["at the bottom", "along the lower edge"],
          "bottom right": ["in the bottom right corner", "at the lower right"]}
BACKGROUNDS = ["a plain grey background", "a light grey canvas", "a uniform pale background",
               "an even grey backdrop"]
OPENERS = ["The image shows", "This picture contains", "In this image there is", "We can see",
           "The scene presents", "Visible in the frame is"]
JOINERS = [", and ", "; ", ". Next to it, ", ". There is also ", ", while "]
CLOSERS = ["No other objects are present.", "Nothing else appears in the image.",
           "The rest of the frame is empty.", "", "The layout is simple and uncluttered."]


def _phrase(rng: random.Random, obj: dict) -> str:
    size = rng.choice(SIZES[obj["size"]])
    shape = rng.choice(SHAPES[obj["shape"]])
    place = rng.choice(PLACES[obj["place"]])
    forms = [f"a {size} {obj['colour']} {shape} {place}", f"{place}, a {obj['colour']} {shape} of {size} size",
             f"a {obj['colour']} {size} {shape} located {place}"]
    return rng.choice(forms)


def describe(rng: random.Random, scene: list[dict]) -> str:
    """One candidate description of `scene`, with the kinds of mistakes a sampler makes."""
    objs = [dict(o) for o in scene]
    if rng.random() < 0.15:  # a wrong colour
        o = rng.choice(objs)
        o["colour"] = rng.choice([c for c in COLOURS if c != o["colour"]])
    if len(objs) > 1 and rng.random() < 0.1:  # a missed object
        objs.pop(rng.randrange(len(objs)))
    if rng.random() < 0.1:  # a hallucinated object
        objs.append(random_object(rng))
    rng.shuffle(objs)
    parts = [_phrase(rng, o) for o in objs]
    body = parts[0] + "".join(rng.choice(JOINERS) + p for p in parts[1:])
    text = f"{rng.choice(OPENERS)} {body} on {rng.choice(BACKGROUNDS)}. {rng.choice(CLOSERS)}"
    return text.strip()


def random_object(rng: random.Random) -> dict:
    return {"colour": rng.choice(COLOURS), "shape": rng.choice(list(SHAPES)),
            "size": rng.choice(list(SIZES)), "place": rng.choice(list(PLACES))}


def make_candidates(path: Path, items: int, n: int, dup_rate: float, seed: int) -> None:
    """Write `items` candidate records with `n` CoD candidates each."""
    from sicog.data import formats

    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(items):
            scene = [random_object(rng) for _ in range(rng.randint(1, 4))]
            cands: list[str] = []
            for _ in range(n):
                if cands and rng.random() < dup_rate:
                    cands.append(rng.choice(cands))
                    continue
                k = len(scene)
                steps = [f"The image holds {k} shape{'s' * (k > 1)} on a plain background.",
                         f"The colours are flat; the shapes have clean edges ({rng.randint(1, 9)} px border).",
                         "The objects are spread over a 3 by 3 grid without overlapping.",
                         rng.choice(["No text or markings appear.", "The margins are empty.",
                                     "Nothing is cut off at the edges."]),
                         describe(rng, scene)]
                cands.append(formats.format_cod(steps))
            fh.write(json.dumps({"id": f"bench-{i}", "image": f"images/{i}.png", "prompt": formats.COD_PROMPT,
                                 "mode": "cod", "candidates": cands, "corruption": None,
                                 "meta": {"seed": seed}}) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=3334, help="items (x --n candidates)")
    ap.add_argument("--n", type=int, default=6, help="candidates per item")
    ap.add_argument("--dup-rate", type=float, default=0.15, help="chance a candidate repeats an earlier one")
    ap.add_argument("--encoder", default="minilm", help="encoder spec as for `sicog curate --encoder`")
    ap.add_argument("--batch-size", type=int, default=128, help="encode batch size (both sides)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--device", default="auto", help="encoder device")
    ap.add_argument("--repeats", type=int, default=1, help="(raw, curation) pairs, order alternating")
    ap.add_argument("--order", choices=("raw-first", "curation-first"), default="raw-first",
                    help="which pass of the first pair runs first")
    ap.add_argument("--skip-full", action="store_true", help="skip the raw encode of the non-deduplicated set")
    ap.add_argument("--json-out", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from sicog.stages.curation.encoders import load_encoder
    from sicog.stages.curation.items import extract_all, load_candidate_items
    from sicog.stages.curation.runner import CurateConfig, run_curation

    work = Path(tempfile.mkdtemp(prefix="sicog-curation-bench-"))
    src = work / "candidates.jsonl"
    make_candidates(src, args.items, args.n, args.dup_rate, seed=0)
    items = load_candidate_items(src, "caption")
    extract_all(items)
    extracted = [t for it in items for t in it.extracted if t is not None]
    unique = list(dict.fromkeys(extracted))
    n_cands = sum(len(it.candidates) for it in items)
    print(f"{len(items)} items, {n_cands} candidates, {len(extracted)} extracted, {len(unique)} unique "
          f"({sum(len(t.split()) for t in unique) / len(unique):.1f} words each); torch threads "
          f"{torch.get_num_threads()}", flush=True)

    enc = load_encoder(args.encoder, device=args.device)
    model = enc.model
    model.encode(unique[:256], batch_size=args.batch_size, normalize_embeddings=True)  # warm-up

    def raw(texts: list[str]) -> float:
        texts = [t + model.tokenizer.eos_token for t in texts] if enc.add_eos else texts
        t0 = time.perf_counter()
        model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                     prompt=enc.prompt, show_progress_bar=False)
        return time.perf_counter() - t0

    cfg = CurateConfig(candidates=str(src), out=str(work / "curated.jsonl"), task="caption",
                       encoder=args.encoder, batch_size=args.batch_size,
                       report_dir=str(work / "report"), progress=False)

    def curate() -> tuple[float, dict]:
        for name in ("curated.jsonl", "curated.jsonl.summary.json"):  # a finished output would be kept as is
            (work / name).unlink(missing_ok=True)
        t0 = time.perf_counter()
        stats = run_curation(cfg, encoder=enc)
        return time.perf_counter() - t0, stats

    # Alternate the order in successive pairs: on a shared machine the load drifts between passes.
    pairs = []
    for r in range(args.repeats):
        raw_first = (r % 2 == 0) == (args.order == "raw-first")
        if raw_first:
            raw_s = raw(unique)
            cur_s, stats = curate()
        else:
            cur_s, stats = curate()
            raw_s = raw(unique)
        enc_in = stats["throughput"]["encode_seconds"]
        pairs.append({"order": "raw-first" if raw_first else "curation-first", "raw_encode_unique_s": round(raw_s, 3),
                      "curation_wall_s": round(cur_s, 3), "curation_encode_s": round(enc_in, 3),
                      "curation_non_encode_s": round(cur_s - enc_in, 3),
                      "overhead_vs_raw_unique": round(cur_s / raw_s - 1, 4),
                      "non_encode_over_encode": round((cur_s - enc_in) / enc_in, 4)})
        print(f"pair {r + 1} ({pairs[-1]['order']}): raw encode of the {len(unique)} deduplicated texts "
              f"{raw_s:.2f} s; curation wall {cur_s:.2f} s (its own encode call {enc_in:.2f} s, scoring "
              f"{stats['throughput']['score_seconds']:.3f} s, everything else {cur_s - enc_in:.2f} s); "
              f"kept {stats['kept']}/{stats['items']} at {stats['threshold']}", flush=True)
    raw_full = None if args.skip_full else raw(extracted)
    if raw_full is not None:
        print(f"raw encode, full set ({len(extracted)} texts, no dedupe): {raw_full:.2f} s", flush=True)
    # pooled over the pairs: the sum of curation walls against the sum of raw encodes
    pooled = sum(p["curation_wall_s"] for p in pairs) / sum(p["raw_encode_unique_s"] for p in pairs) - 1
    inner = sum(p["curation_non_encode_s"] for p in pairs) / sum(p["curation_encode_s"] for p in pairs)
    cur_mean = sum(p["curation_wall_s"] for p in pairs) / len(pairs)
    result = {"items": len(items), "candidates": n_cands, "extracted": len(extracted), "unique": len(unique),
              "batch_size": args.batch_size, "device": enc.info["device"], "threads": torch.get_num_threads(),
              "pairs": pairs, "pooled_overhead_vs_raw_unique": round(pooled, 4),
              "non_encode_over_encode": round(inner, 4),
              "raw_encode_full_s": round(raw_full, 3) if raw_full is not None else None,
              "curation_over_raw_full": round(cur_mean / raw_full, 4) if raw_full else None,
              "keep_rate_at_0.9": stats["keep_rate"], "best_score_quantiles": stats["best_score_quantiles"]}
    print(f"overhead vs raw encode of the same deduplicated texts (separate passes, pooled over {len(pairs)}): "
          f"{100 * pooled:+.1f} % (target <= +10 %)")
    print(f"within the curation pass, non-encode time / encode time: {100 * inner:.2f} %")
    if raw_full:
        print(f"curation / raw encode of all {len(extracted)} texts without dedupe: {result['curation_over_raw_full']:.3f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
