"""A benchmark-only synthetic world for the evaluator tests."""

from pathlib import Path


def benchmark_world(out: Path, seed: int, n_images: int, questions_per_image: int = 2) -> Path:
    """Write a world with only `n_images` benchmark images (and their questions) into `out`."""
    from sicog.demo.world.generate import WorldSizes, generate_world

    sizes = WorldSizes(n_align=0, n_annotated=0, n_reasoning=0, n_instructions=0, n_unlabeled_images=0,
                       n_unlabeled_questions=0, n_benchmark=n_images,
                       benchmark_questions_per_image=questions_per_image)
    generate_world(out, seed=seed, sizes=sizes)
    return out
