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
import random
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from sicog.data.bundle import read_manifest
from sicog.utils.io import SicogError, atomic_dir, write_json, write_jsonl

log = logging.getLogger(__name__)

STANDINS_VERSION = 2
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
    loss = _train_loop(model, lambda idx: {"input_ids": data[idx], "labels": data[idx]}, len(data), steps,
                       batch_size, lr, seed, "stand-in LM")
    return model, tokenizer, loss


# ---------------------------------------------------------------------------- vision tower
def cell_targets(scene, scene_cfg) -> list[int]:
    """Class targets: per cell (colour+1, shape+1, size+1; 0 = empty), background, border, clutter."""
    from sicog.demo.world.scenes import BACKGROUNDS, SIZES

    by_cell = {o.row * 3 + o.col: o for o in scene.objects}
    out = []
    for c in range(9):
        o = by_cell.get(c)
        out += [0, 0, 0] if o is None else [scene_cfg.colours.index(o.colour) + 1,
                                             scene_cfg.shapes.index(o.shape) + 1, SIZES.index(o.size) + 1]
    k = len(scene.specks)
    out += [sorted(BACKGROUNDS).index(scene.background), int(scene.border), 0 if k == 0 else 1 if k <= 2 else 2]
    return out


def _head_sizes(scene_cfg) -> list[int]:
    return [len(scene_cfg.colours) + 1, len(scene_cfg.shapes) + 1, 3] * 9 + [2, 2, 3]


class CellReadout(torch.nn.Module):
    """Read-out of the patch features -> per-cell attribute logits (training only).

    With a 3x3 patch grid (e.g. 48 px images, patch 16) each patch token is one grid cell, and a
    shared linear head reads the cell's attributes from its own token, so every visual token the LM
    later sees describes one cell. With another grid, one linear map reads all tokens at once.
    """

    def __init__(self, n_tokens: int, dim: int, head_sizes: list[int]):
        super().__init__()
        self.sizes = head_sizes
        self.per_cell = n_tokens == 9
        self.cell_sizes, self.global_sizes = head_sizes[:3], head_sizes[27:]
        if self.per_cell:
            self.cell = torch.nn.Linear(dim, sum(self.cell_sizes))
            self.globl = torch.nn.Linear(dim, sum(self.global_sizes))
        else:
            self.linear = torch.nn.Linear(n_tokens * dim, sum(head_sizes))

    def logits(self, feats) -> list:
        if not self.per_cell:
            return list(self.linear(feats.flatten(1)).split(self.sizes, dim=-1))
        cell = self.cell(feats)  # [B, 9, heads]; patch tokens are row-major like the cells
        out = []
        for c in range(9):
            out += list(cell[:, c].split(self.cell_sizes, dim=-1))
        return out + list(self.globl(feats.mean(1)).split(self.global_sizes, dim=-1))

    def forward(self, feats, targets):
        logits = self.logits(feats)
        losses = [torch.nn.functional.cross_entropy(lg, targets[:, i]) for i, lg in enumerate(logits)]
        n_cell_heads = 27  # 9 cells x (colour, shape, size)
        correct = [(lg.argmax(-1) == targets[:, i]).float().mean() for i, lg in enumerate(logits[:n_cell_heads])]
        return torch.stack(losses).sum(), torch.stack(correct).mean()


class TowerWithReadout(torch.nn.Module):
    """The CLIP tower + read-out on the features LLaVA uses (layer `feature_layer`, CLS dropped)."""

    def __init__(self, tower, readout: CellReadout, feature_layer: int = -2):
        super().__init__()
        self.tower, self.readout, self.feature_layer = tower, readout, feature_layer

    def forward(self, pixel_values, targets):
        hidden = self.tower(pixel_values=pixel_values, output_hidden_states=True).hidden_states
        loss, accuracy = self.readout(hidden[self.feature_layer][:, 1:], targets)
        return SimpleNamespace(loss=loss, accuracy=accuracy)


def pretrain_vision(scene_cfg, seed: int, tiny, n_images: int, steps: int, batch_size: int, lr: float,
                    feature_layer: int = -2):
    """(CLIPVisionModel, image processor, cell-attribute accuracy on held-out images, loss)."""
    import numpy as np
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from sicog.demo.world.render import render_scene
    from sicog.demo.world.scenes import scene_for
    from sicog.model.build import tiny_image_processor

    if tiny.image_size != scene_cfg.image_size:
        log.info("stand-in vision tower: world images are %d px, the tower sees %d px",
                 scene_cfg.image_size, tiny.image_size)
    processor = tiny_image_processor(tiny.image_size)
    n_eval = max(64, n_images // 10)
    images, targets = [], []
    for i in range(n_images + n_eval):
        scene = scene_for(_STANDIN_SEED_BASE + seed, "standin-vision", i, scene_cfg, f"standin-vision-{i:06d}")
        images.append(render_scene(scene))
        targets.append(cell_targets(scene, scene_cfg))
    pixels = torch.tensor(np.asarray(processor(images=images, return_tensors="np")["pixel_values"]))
    targets_t = torch.tensor(targets, dtype=torch.long)
    config = CLIPVisionConfig(
        hidden_size=tiny.vision_hidden_size, intermediate_size=4 * tiny.vision_hidden_size,
        num_hidden_layers=tiny.vision_layers, num_attention_heads=tiny.vision_heads,
        image_size=tiny.image_size, patch_size=tiny.patch_size, projection_dim=tiny.vision_hidden_size,
    )
    torch.manual_seed(seed)
    tower = CLIPVisionModel(config)
    n_patches = (tiny.image_size // tiny.patch_size) ** 2
    readout = CellReadout(n_patches, tiny.vision_hidden_size, _head_sizes(scene_cfg))

    wrapped = TowerWithReadout(tower, readout, feature_layer)
    train_idx = torch.arange(n_images)
    loss = _train_loop(wrapped, lambda idx: {"pixel_values": pixels[train_idx[idx]], "targets": targets_t[idx]},
                       n_images, steps, batch_size, lr, seed, "stand-in vision tower")
    wrapped.eval()
    with torch.no_grad():
        out = wrapped(pixels[n_images:], targets_t[n_images:])
    return tower, processor, float(out.accuracy), loss


def _train_loop(model, batch_fn, n: int, steps: int, batch_size: int, lr: float, seed: int, what: str) -> float:
    """AdamW with linear warm-up and cosine decay over shuffled mini-batches; returns the last loss."""
    import math

    from tqdm import tqdm

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    order, pos, ema = torch.randperm(n, generator=gen), 0, None
    # a bar on a terminal; in a log file (pipeline steps) a line every 10% instead
    bar = tqdm(range(steps), desc=what, mininterval=2.0, leave=False, disable=not sys.stderr.isatty())
    for step in bar:
        if pos + batch_size > n:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos: pos + batch_size]
        pos += batch_size
        loss = model(**batch_fn(idx)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        ema = loss.item() if ema is None else 0.9 * ema + 0.1 * loss.item()
        bar.set_postfix(loss=f"{ema:.3f}")
        if bar.disable and (step + 1) % max(1, steps // 10) == 0:
            log.info("%s: step %d/%d, loss %.4f", what, step + 1, steps, ema)
    log.info("%s: %d steps, loss %.4f", what, steps, ema or float("nan"))
    return float(ema or 0.0)


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
                       "spec": {k: v for k, v in spec.items() if k != "cache_dir"}}, sort_keys=True)
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
    from sicog.model.build import default_generation_config

    scene_cfg, _world_seed = world_scene_config(world_dir)
    tiny = _tiny_config(spec.get("tiny") or {})
    seed = spec["seed"]
    t0 = time.time()
    tower, image_processor, vis_acc, vis_loss = pretrain_vision(
        scene_cfg, seed, tiny, spec["vision_images"], spec["vision_steps"], spec["vision_batch_size"],
        spec["vision_learning_rate"])
    t_vision = time.time() - t0
    texts = lm_corpus(scene_cfg, seed, spec["corpus_scenes"])
    lm, tokenizer, lm_loss = pretrain_lm(texts, tiny, spec["lm_steps"], spec["lm_batch_size"],
                                         spec["lm_learning_rate"], spec["seed"])
    lm.generation_config = default_generation_config(tokenizer)
    t_lm = time.time() - t0 - t_vision
    info = {"key": key, "vision_cell_accuracy": round(vis_acc, 4), "vision_loss": round(vis_loss, 4),
            "lm_loss": round(lm_loss, 4), "lm_corpus_texts": len(texts), "vocab_size": len(tokenizer),
            "vision_seconds": round(t_vision, 1), "lm_seconds": round(t_lm, 1),
            "vision_parameters": sum(p.numel() for p in tower.parameters()),
            "lm_parameters": sum(p.numel() for p in lm.parameters())}
    with atomic_dir(out_dir / "vision_tower") as d:
        tower.save_pretrained(d)
        image_processor.save_pretrained(d)
    with atomic_dir(out_dir / "language_model") as d:
        lm.save_pretrained(d)
        tokenizer.save_pretrained(d)
    write_jsonl(out_dir / "text_only.jsonl", text_only_records(scene_cfg, seed, spec["text_only_records"]))
    write_json(out_dir / "standins.json", info)
    if cached is not None:
        with atomic_dir(cached) as d:
            _copy_into(out_dir, d)
    return info


def _copy_into(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("vision_tower", "language_model"):
        if (dst / name).exists():
            shutil.rmtree(dst / name)
        shutil.copytree(src / name, dst / name)
    for name in ("text_only.jsonl", "standins.json"):
        shutil.copy2(src / name, dst / name)
