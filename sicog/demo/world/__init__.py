"""The built-in synthetic visual world: procedural scenes with known truth (see `generate`).

`generate_world(out_dir, seed, sizes)` writes a whole world and returns its manifest;
`scene_text_corpus(...)` yields the world's texts (for the tiny tokenizer / LM).
"""

from sicog.demo.world.annotate import scene_text_corpus
from sicog.demo.world.generate import WorldSizes, generate_world
from sicog.demo.world.scenes import Scene, SceneConfig

__all__ = ["Scene", "SceneConfig", "WorldSizes", "generate_world", "scene_text_corpus"]
