"""Stand-in "pretrained" CLIP tower and LLM for the synthetic world, built once and cached.

The real recipe starts from pretrained models (CLIP-ViT-L/14-336, Qwen2-7B-Instruct) that already
see and speak. The world has none, so the pipeline pre-trains tiny ones on data no later stage uses
(fresh scenes of worlds with seeds 10^6 + standins.seed, never a demo world's seed; the same scene
config as the world), and saves them in the layouts of the
real folders, so stage 1 / stage 1.5 load them through the same `vision_tower` + `language_model`
path code as at real scale:

- **vision tower** (`vision_tower/`: `CLIPVisionModel` + CLIP image processor): a tiny CLIP ViT
  trained with a supervised read-out of its penultimate-layer patch features (the features LLaVA
  uses) to predict, for each of the 3x3 cells, the colour / shape / size of the object there (or
  none), plus background, border and clutter. Like CLIP, it learns what is in the picture without
  ever producing text.
- **language model** (`language_model/`: `Qwen2ForCausalLM` + tokenizer with the ChatML template):
  a byte-level BPE tokenizer and a tiny Qwen2 trained as a causal LM on the world's texts
  (`sicog.demo.world.annotate.scene_text_corpus`: captions, CoD, questions, CoT answers of fresh scenes).
  Like a pretrained LLM, it knows the language and the formats but has never seen an image.
- **text-only records** (`text_only.jsonl`): chat records that describe a fresh scene in words and
  ask a question about it, answered step by step — the text-only data stage 1.5 mixes in to
  preserve language ability.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import random
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from sicog.data.bundle import read_manifest
from sicog.demo.standin_vision import pretrain_vision, train_loop
from sicog.utils.io import SicogError, atomic_dir, write_json, write_jsonl

log = logging.getLogger(__name__)

STANDINS_VERSION = 4  # bumped whenever the stand-ins built from the same settings change (4: world question texts)
#: stand-in scenes come from worlds of seeds 10^6 + standins.seed: never a demo world's own scenes
_STANDIN_SEED_BASE = 1_000_000


# ---------------------------------------------------------------------------- world config
def world_scene_config(world_dir: str | Path):
    """(SceneConfig, world seed) of a `sicog world` folder, from its manifest.json."""
    from sicog.demo.world.scenes import SceneConfig

    manifest = read_manifest(world_dir)
    scene = manifest.get("scene_config") or manifest.get("config", {}).get("scene") or {}
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in scene.items()
              if k in SceneConfig.__dataclass_fields__}
    seed = manifest.get("seed", manifest.get("config", {}).get("seed", 0))
    return SceneConfig(**fields), int(seed)


def _tiny_config(overrides: dict):
    from sicog.config import TinyModelConfig

    return TinyModelConfig(**overrides)


# ---------------------------------------------------------------------------- language model
def lm_corpus(scene_cfg, seed: int, n_scenes: int) -> list[str]:
    """Texts of `n_scenes` fresh scenes (the world's own "corpus" split of a stand-in seed)."""
    from sicog.demo.world.annotate import scene_text_corpus

    return list(scene_text_corpus(n_scenes=n_scenes, seed=_STANDIN_SEED_BASE + seed, cfg=scene_cfg))


def pretrain_lm(texts: list[str], tiny, steps: int, batch_size: int, lr: float, seed: int,
                block: int = 128):
    """(Qwen2ForCausalLM, tokenizer, final loss): causal-LM training on packed blocks of `texts`."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from sicog.model.tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(texts, vocab_size=tiny.vocab_size)
    ids: list[int] = []
    for t in texts:
        ids.extend(tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
    data = torch.tensor(ids[: len(ids) // block * block], dtype=torch.long).view(-1, block)
    if len(data) == 0:
        raise SicogError("stand-in LM: the text corpus is empty")
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=tiny.hidden_size, intermediate_size=tiny.intermediate_size,
        num_hidden_layers=tiny.num_layers, num_attention_heads=tiny.num_heads,
        num_key_value_heads=tiny.num_kv_heads, max_position_embeddings=tiny.max_position_embeddings,
        tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    loss = train_loop(model, lambda idx: {"input_ids": data[idx], "labels": data[idx]}, len(data), steps,
                       batch_size, lr, seed, "stand-in LM")
    return model, tokenizer, loss


# ---------------------------------------------------------------------------- text-only data
def text_only_records(scene_cfg, seed: int, n: int) -> list[dict]:
    """Chat records without an image: a scene described in words + a question, answered by CoT."""
    from sicog.data.formats import to_cot_question
    from sicog.demo.world import questions as Q
    from sicog.demo.world.annotate import direct_description
    from sicog.demo.world.scenes import scene_for

    out = []
    for i in range(n):
        scene = scene_for(_STANDIN_SEED_BASE + seed, "standin-text", i, scene_cfg, f"text-{i:06d}")
        rng = random.Random(f"standin-text:{seed}:{i}")
        q = Q.make_questions(scene, rng, k=1)[0]
        prompt = f"{direct_description(scene, rng)}\n{to_cot_question(q.text)}"
        out.append({"id": f"text-{i:06d}", "conversations": [
            {"from": "human", "value": prompt}, {"from": "gpt", "value": Q.cot_answer(q)}]})
    return out


# ---------------------------------------------------------------------------- build + cache
def standins_key(world_dir: str | Path, spec: dict) -> str:
    """Cache key: the world's scene config (what the world looks like) and the stand-in settings.

    Not the world's seed: like CLIP and Qwen2 at real scale, the stand-ins are shared by every run on
    worlds of the same kind, so the seeds of a demo differ in data and training, not in "pretraining".
    """
    scene_cfg, _seed = world_scene_config(world_dir)
    text = json.dumps({"v": STANDINS_VERSION, "scene": repr(scene_cfg),
                       "spec": {k: v for k, v in spec.items() if k not in ("cache_dir", "parallel")}}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_standins(world_dir: str | Path, out_dir: str | Path, spec: dict) -> dict:
    """Write vision_tower/, language_model/, text_only.jsonl, standins.json into out_dir.

    `spec` is a `sicog.demo.hooks.StandinsSpec` as a mapping. With `cache_dir`, a finished
    build is copied from / into `cache_dir/<key>`.
    """
    out_dir = Path(out_dir)
    key = standins_key(world_dir, spec)
    cached = Path(spec["cache_dir"]) / key if spec.get("cache_dir") else None
    if cached is not None and (cached / "standins.json").is_file():
        log.info("stand-ins: using the cache %s", cached)
        _copy_into(cached, out_dir)
        return {**json.loads((cached / "standins.json").read_text(encoding="utf-8")), "cache_hit": True}
    from sicog.model.assembly import default_generation_config

    scene_cfg, _world_seed = world_scene_config(world_dir)
    tiny = _tiny_config(spec.get("tiny") or {})
    seed = spec["seed"]
    t0 = time.time()
    vision_args = (scene_cfg, seed, tiny, spec["vision_images"], spec["vision_steps"], spec["vision_batch_size"],
                   spec["vision_learning_rate"])
    # cell targets do not depend on the LM: with `parallel`, a second process trains the tower meanwhile
    # and saves it (both seed themselves and use as many threads as this one: the result is the serial one)
    staged = out_dir / "vision_tower.partial"
    pool = (ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                initializer=torch.set_num_threads, initargs=(torch.get_num_threads(),))
            if spec.get("parallel") else None)
    vision_job = pool.submit(_train_vision_into, str(staged), vision_args) if pool else None
    try:
        texts = lm_corpus(scene_cfg, seed, spec["corpus_scenes"])
        lm, tokenizer, lm_loss = pretrain_lm(texts, tiny, spec["lm_steps"], spec["lm_batch_size"],
                                             spec["lm_learning_rate"], spec["seed"])
        lm.generation_config = default_generation_config(tokenizer)
        t_lm = time.time() - t0
        if vision_job is None:
            tower, image_processor, vis_acc, vis_loss = pretrain_vision(*vision_args)
            with atomic_dir(out_dir / "vision_tower") as d:
                vision_parameters = _save_vision(d, tower, image_processor)
        else:
            vis_acc, vis_loss, vision_parameters = vision_job.result()
            with atomic_dir(out_dir / "vision_tower") as d:
                shutil.copytree(staged, d, dirs_exist_ok=True)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        shutil.rmtree(staged, ignore_errors=True)
    t_vision = time.time() - t0 - (0 if vision_job is not None else t_lm)  # wall seconds until the tower was ready
    info = {"key": key, "vision_accuracy": round(vis_acc, 4),
            "vision_loss": round(vis_loss, 4), "lm_loss": round(lm_loss, 4), "lm_corpus_texts": len(texts),
            "vocab_size": len(tokenizer), "vision_seconds": round(t_vision, 1), "lm_seconds": round(t_lm, 1),
            "vision_parameters": vision_parameters, "lm_parameters": sum(p.numel() for p in lm.parameters())}
    with atomic_dir(out_dir / "language_model") as d:
        lm.save_pretrained(d)
        tokenizer.save_pretrained(d)
    write_jsonl(out_dir / "text_only.jsonl", text_only_records(scene_cfg, seed, spec["text_only_records"]))
    write_json(out_dir / "standins.json", info)
    if cached is not None:
        with atomic_dir(cached) as d:
            _copy_into(out_dir, d)
    return info


def _save_vision(folder, tower, image_processor) -> int:
    tower.save_pretrained(folder)
    image_processor.save_pretrained(folder)
    return sum(p.numel() for p in tower.parameters())


def _train_vision_into(folder: str, vision_args: tuple) -> tuple[float, float, int]:
    """In the child process: train the cell-target tower and save it (a model with hooks does not pickle)."""
    tower, image_processor, accuracy, loss = pretrain_vision(*vision_args)
    return accuracy, loss, _save_vision(folder, tower, image_processor)


def _copy_into(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("vision_tower", "language_model"):
        if (dst / name).exists():
            shutil.rmtree(dst / name)
        shutil.copytree(src / name, dst / name)
    for name in ("text_only.jsonl", "standins.json"):
        shutil.copy2(src / name, dst / name)
