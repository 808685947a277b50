"""The stand-in "pretrained" CLIP tower of the demo (see sicog.demo.standins for the whole picture).

It is pre-trained on fresh scenes no demo stage sees: a supervised read-out of the patch features
(the layer LLaVA uses) names, for each of the 3x3 cells, the colour / shape / size of the object
there (or none), plus background, border and clutter. It learns what is in the picture, in a space
of its own. (A CLIP-like alternative, patches trained against the LM's word embeddings, read no
better and was removed: docs/demo_findings.md.)
"""

from __future__ import annotations

import logging
import sys
from types import SimpleNamespace

import torch

log = logging.getLogger(__name__)
#: stand-in scenes come from worlds of seeds 10^6 + standins.seed: never a demo world's own scenes
STANDIN_SEED_BASE = 1_000_000


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


    if tiny.image_size != scene_cfg.image_size:
        log.info("stand-in vision tower: world images are %d px, the tower sees %d px",
                 scene_cfg.image_size, tiny.image_size)
    processor, pixels, targets_t, tower = _images_and_tower(
        scene_cfg, seed, tiny, n_images, lambda scene: cell_targets(scene, scene_cfg))
    n_patches = (tiny.image_size // tiny.patch_size) ** 2
    readout = CellReadout(n_patches, tiny.vision_hidden_size, _head_sizes(scene_cfg))

    wrapped = TowerWithReadout(tower, readout, feature_layer)
    train_idx = torch.arange(n_images)
    loss = train_loop(wrapped, lambda idx: {"pixel_values": pixels[train_idx[idx]], "targets": targets_t[idx]},
                       n_images, steps, batch_size, lr, seed, "stand-in vision tower")
    wrapped.eval()
    with torch.no_grad():
        out = wrapped(pixels[n_images:], targets_t[n_images:])
    return tower, processor, float(out.accuracy), loss


def _images_and_tower(scene_cfg, seed: int, tiny, n_images: int, targets_of):
    """(processor, pixel values, targets, fresh CLIP tower): n_images training images then a held-out
    tenth (at least 64) of fresh stand-in scenes, with `targets_of(scene)` for each."""
    import numpy as np
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from sicog.demo.world.render import render_scene
    from sicog.demo.world.scenes import scene_for
    from sicog.model.build import tiny_image_processor

    processor = tiny_image_processor(tiny.image_size)
    images, targets = [], []
    for i in range(n_images + max(64, n_images // 10)):
        scene = scene_for(STANDIN_SEED_BASE + seed, "standin-vision", i, scene_cfg, f"standin-vision-{i:06d}")
        images.append(render_scene(scene))
        targets.append(targets_of(scene))
    pixels = torch.tensor(np.asarray(processor(images=images, return_tensors="np")["pixel_values"]))
    config = CLIPVisionConfig(
        hidden_size=tiny.vision_hidden_size, intermediate_size=4 * tiny.vision_hidden_size,
        num_hidden_layers=tiny.vision_layers, num_attention_heads=tiny.vision_heads,
        image_size=tiny.image_size, patch_size=tiny.patch_size, projection_dim=tiny.vision_hidden_size,
    )
    torch.manual_seed(seed)
    return processor, pixels, torch.tensor(targets, dtype=torch.long), CLIPVisionModel(config)


def train_loop(model, batch_fn, n: int, steps: int, batch_size: int, lr: float, seed: int, what: str) -> float:
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


