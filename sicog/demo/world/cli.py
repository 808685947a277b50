"""`sicog world`: write a synthetic visual world (images, annotations, benchmark) to a folder."""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import fields

from sicog.demo.world.generate import EXTRA_FILES, SPLITS, WorldSizes, generate_world
from sicog.demo.world.scenes import ALL_SHAPES, PALETTE, QUESTION_KINDS, SceneConfig
from sicog.utils.io import SicogError

log = logging.getLogger(__name__)

DESCRIPTION = """Write a synthetic visual world whose ground truth is known: procedural scenes of
coloured shapes on a 3x3 grid, rendered as PNGs, with LLaVA JSONL records generated from the
scene graphs (brief captions, Chain-of-Description captions, structured-CoT answers, short
answers, unlabeled inputs), a VLMEvalKit-style multiple-choice benchmark and caption ground truth.

Files (relative to --out, named by DIR/manifest.json, which is written last):
  """ + "\n  ".join(f"{k}: {v[1]}" for k, v in SPLITS.items()) + "\n  " + \
    "\n  ".join(f"{k}: {v}" for k, v in EXTRA_FILES.items()) + """
Use --out as the --image-folder of training and sampling. The same seed and flags give
byte-identical files; a complete world with the same settings is reused."""

_DEFAULT_SIZES = WorldSizes()
_DEFAULT_SCENE = SceneConfig()
_SIZE_HELP = {
    "n_align": "images with brief, deliberately incomplete captions (stage-1 alignment data)",
    "n_annotated": "images with Chain-of-Description captions, each also with its direct-description "
                   "companion (the minimal caption annotations of the warm-up)",
    "n_reasoning": "images with annotated questions: structured-CoT answers plus short-answer companions",
    "n_instructions": "images with short-answer questions (the instruction-tuning / SFT mix)",
    "n_unlabeled_images": "images with only the CoD prompt (inputs of caption sampling)",
    "n_unlabeled_questions": "images with only a question (inputs of reasoning sampling)",
    "n_benchmark": "held-out benchmark images (multiple-choice TSV + caption ground truth)",
    "reasoning_questions_per_image": "questions per --n-reasoning image",
    "instruction_questions_per_image": "questions per --n-instructions image",
    "unlabeled_questions_per_image": "questions per --n-unlabeled-questions image",
    "benchmark_questions_per_image": "multiple-choice rows per benchmark image",
    "mcq_fraction": "share of training / unlabeled questions laid out as multiple choice "
                    "(answered with the option letter)",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of `sicog world`."""
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="world seed: scenes, rendering noise and wording "
                        "(default 0)")
    for f in fields(WorldSizes):
        default = getattr(_DEFAULT_SIZES, f.name)
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(default), default=default,
                            metavar="X" if isinstance(default, float) else "N",
                            help=f"{_SIZE_HELP[f.name]} (default {default})")
    parser.add_argument("--image-size", type=int, default=_DEFAULT_SCENE.image_size, metavar="PX",
                        help=f"image side in pixels, 48..128 (default {_DEFAULT_SCENE.image_size})")
    parser.add_argument("--min-objects", type=int, default=_DEFAULT_SCENE.min_objects, metavar="N",
                        help=f"fewest shapes in a scene (default {_DEFAULT_SCENE.min_objects})")
    parser.add_argument("--max-objects", type=int, default=_DEFAULT_SCENE.max_objects, metavar="N",
                        help=f"most shapes in a scene, at most 6 (default {_DEFAULT_SCENE.max_objects})")
    parser.add_argument("--shapes", default=",".join(_DEFAULT_SCENE.shapes), metavar="LIST",
                        help=f"comma-separated shapes, at least 4 of {','.join(ALL_SHAPES)} "
                             f"(default {','.join(_DEFAULT_SCENE.shapes)})")
    parser.add_argument("--colours", default=",".join(_DEFAULT_SCENE.colours), metavar="LIST",
                        help=f"comma-separated colours, at least 4 of {','.join(PALETTE)} "
                             f"(default {','.join(_DEFAULT_SCENE.colours)})")
    parser.add_argument("--overlap-prob", type=float, default=_DEFAULT_SCENE.overlap_prob, metavar="P",
                        help="chance that a shape is pulled onto a neighbour so that it partly covers it "
                             f"(default {_DEFAULT_SCENE.overlap_prob})")
    parser.add_argument("--max-specks", type=int, default=_DEFAULT_SCENE.max_specks, metavar="N",
                        help=f"most distractor specks per image (default {_DEFAULT_SCENE.max_specks})")
    parser.add_argument("--noise-sd", type=float, default=_DEFAULT_SCENE.noise_sd, metavar="SD",
                        help=f"per-pixel gaussian noise (default {_DEFAULT_SCENE.noise_sd})")
    parser.add_argument("--question-kinds", default=",".join(_DEFAULT_SCENE.question_kinds), metavar="LIST",
                        help="comma-separated kinds of question the world asks (training, unlabeled and benchmark "
                             f"questions), some of {','.join(QUESTION_KINDS)} (default all)")
    parser.add_argument("--question-subtypes", default="", metavar="LIST",
                        help="comma-separated subtypes to keep of those kinds (the benchmark's l2-category, e.g. "
                             "count_all), at least one per kind (default: every subtype)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a world with other settings already in --out, file by file (files you "
                             "added to the folder are kept; a folder that holds no world is never written)")
    parser.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), metavar="N",
                        help="processes rendering the images (default: the usable CPU cores); the files do "
                             "not depend on it")


def world_config_from_args(args: argparse.Namespace) -> tuple[WorldSizes, SceneConfig]:
    """The WorldSizes and SceneConfig the flags describe (SicogError on invalid values)."""
    try:
        sizes = WorldSizes(**{f.name: getattr(args, f.name) for f in fields(WorldSizes)})
        cfg = SceneConfig(
            image_size=args.image_size, min_objects=args.min_objects, max_objects=args.max_objects,
            shapes=tuple(s.strip() for s in args.shapes.split(",") if s.strip()),
            colours=tuple(c.strip() for c in args.colours.split(",") if c.strip()),
            overlap_prob=args.overlap_prob, max_specks=args.max_specks, noise_sd=args.noise_sd,
            border_prob=_DEFAULT_SCENE.border_prob, colour_jitter=_DEFAULT_SCENE.colour_jitter,
            question_kinds=tuple(k.strip() for k in args.question_kinds.split(",") if k.strip()),
            question_subtypes=tuple(k.strip() for k in args.question_subtypes.split(",") if k.strip()))
    except ValueError as e:  # "name must be ...": name the flag that gave the value
        name = str(e).split(" ", 1)[0]
        flag = f"--{name.replace('_', '-')}: " if hasattr(args, name) else ""
        raise SicogError(f"{flag}{e}") from None
    if args.workers < 1:
        raise SicogError(f"--workers: must be >= 1, got {args.workers}")
    return sizes, cfg


def run(args: argparse.Namespace) -> int:
    """Write the world and print the manifest's file keys."""
    sizes, cfg = world_config_from_args(args)
    manifest = generate_world(args.out, seed=args.seed, sizes=sizes, cfg=cfg, overwrite=args.overwrite,
                              progress=False if args.no_progress else None, workers=args.workers)
    print(json.dumps({k: manifest[k] for k in (*SPLITS, *EXTRA_FILES)} | {"n_records": manifest["n_records"]},
                     indent=2))
    return 0
