"""The spatial resampler of LLaVA-UHD v1: any slice's feature map -> a fixed grid of LM tokens.

Self-contained (torch only) because it ships inside every `uhd` checkpoint as remote code.

`side`^2 learned queries, each carrying a fixed 2-D sin-cos position, cross-attend to the slice's
features projected to the LM width. The keys carry the same position table, bicubically resized to
the slice's (h, w) patch grid, so query (i, j) and the keys of cell (i, j) of the slice agree on
where they are. As in the authors' `adapt_spatial_resampler_v1`, each query attends only to its own
cell: the (h, w) map is cut into side x side equal cells and every cell is bilinearly pooled
(RoIAlign rules) to a small window of 6 to 12 keys shaped after the slice's aspect. A slice of any
size therefore yields exactly side^2 tokens. Parameter names follow the authors' module so that
their checkpoints map one to one.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import nn
from torch.nn import functional as F

#: (w, h) key windows a cell may be pooled to; the one nearest the slice's aspect is used
POOL_SHAPES = ((4, 2), (3, 2), (4, 3), (3, 3), (2, 4), (2, 3), (3, 4))


def sincos_table(dim: int, side: int) -> torch.Tensor:
    """(side*side, dim) fixed positions, row-major; the first half encodes the column, the second
    the row, each as [sin, cos] of the position times 10000^(-k/(dim/4))."""
    if dim % 4:
        raise ValueError(f"the resampler width must be a multiple of 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    rows, cols = torch.meshgrid(torch.arange(side, dtype=torch.float64), torch.arange(side, dtype=torch.float64),
                                indexing="ij")

    def encode(pos):
        angles = pos.reshape(-1, 1) * omega[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([encode(cols), encode(rows)], dim=1).float()


def pool_shape(height: int, width: int) -> tuple[int, int]:
    """(h, w) of the key window for a slice of `height` x `width` patches."""
    log_aspect = math.log(width / height)
    best, best_error = (3, 3), float("inf")
    for w, h in POOL_SHAPES:
        error = abs(log_aspect - math.log(w / h))
        if error < best_error:
            best, best_error = (h, w), error
    return best


#: how the cells' box edges are rounded before pooling: "none" keeps them exact; "bfloat16" rounds
#: them as the authors' resampler does (their features, and with them the boxes, are always bf16)
BOX_ROUNDINGS = ("none", "bfloat16")


def _edges(length: int, cells: int, rounding: str) -> tuple[list[float], list[float]]:
    """Start and end of each of `cells` equal boxes along one axis of `length` patches."""
    box = length / cells
    starts = [i * box for i in range(cells)]
    ends = [s + box for s in starts]
    if rounding == "bfloat16":  # float64 -> float32 -> bfloat16, the authors' path
        edges = torch.tensor(starts + ends, dtype=torch.float32).to(torch.bfloat16).double().tolist()
        starts, ends = edges[:cells], edges[cells:]
    elif rounding != "none":
        raise ValueError(f"box rounding must be one of {BOX_ROUNDINGS}, got {rounding!r}")
    return starts, ends


@functools.lru_cache(maxsize=256)
def _cell_weights(length: int, cells: int, out: int, rounding: str = "none") -> torch.Tensor:
    """(cells*out, length) averaging weights of RoIAlign (unaligned, adaptive sampling) along one
    axis: `length` positions cut into `cells` boxes (`_edges`), each pooled to `out` bins. A box
    narrower than one position is widened to one; each bin takes ceil(box/out) samples; a sample
    beyond the map counts as zero; the last position is repeated past the end."""
    starts, ends = _edges(length, cells, rounding)
    weights = torch.zeros(cells * out, length, dtype=torch.float64)
    for c in range(cells):
        extent = max(ends[c] - starts[c], 1.0)
        bin_size = extent / out
        samples = math.ceil(extent / out)
        for b in range(out):
            for s in range(samples):
                pos = starts[c] + (b * bin_size + (s + 0.5) * bin_size / samples)
                if pos < -1.0 or pos > length:
                    continue
                pos = max(pos, 0.0)
                low = int(pos)
                high, frac = (low + 1, pos - low) if low < length - 1 else (length - 1, 0.0)
                low = min(low, length - 1)
                weights[c * out + b, low] += (1 - frac) / samples
                weights[c * out + b, high] += frac / samples
    return weights


def pooling_matrix(height: int, width: int, side: int, device=None, rounding: str = "none") -> torch.Tensor:
    """(side*side * window, height*width): row (cell, bin) averages the patches RoIAlign samples for
    that bin, cells row-major, each cell's window row-major (`pool_shape`)."""
    ph, pw = pool_shape(height, width)
    wy = _cell_weights(height, side, ph, rounding).float().reshape(side, ph, height)
    wx = _cell_weights(width, side, pw, rounding).float().reshape(side, pw, width)
    return torch.einsum("yph,xqw->yxpqhw", wy, wx).reshape(side * side * ph * pw, height * width).to(device)


def pool_cells(features: torch.Tensor, height: int, width: int, side: int, rounding: str = "none") -> torch.Tensor:
    """(..., height*width, C) -> (..., side*side, window, C): each of the side x side cells pooled to a
    window (one matrix product; leading dimensions are slices of the same size)."""
    ph, pw = pool_shape(height, width)
    pooled = pooling_matrix(height, width, side, features.device, rounding) @ features.float()
    return pooled.reshape(*features.shape[:-2], side * side, ph * pw, -1).to(features.dtype)


class SpatialResampler(nn.Module):
    """Slices' vision features -> side^2 tokens of the LM width each (see the module docstring)."""

    def __init__(self, side: int, embed_dim: int, num_heads: int, kv_dim: int, eps: float = 1e-6,
                 box_rounding: str = "none"):
        super().__init__()
        if box_rounding not in BOX_ROUNDINGS:
            raise ValueError(f"box_rounding must be one of {BOX_ROUNDINGS}, got {box_rounding!r}")
        self.side, self.embed_dim, self.box_rounding = side, embed_dim, box_rounding
        self.register_buffer("pos_embed", sincos_table(embed_dim, side), persistent=True)
        self.query = nn.Parameter(torch.zeros(side * side, embed_dim))
        self.kv_proj = nn.Linear(kv_dim, embed_dim, bias=False) if kv_dim != embed_dim else nn.Identity()
        self.attn = nn.MultiheadAttention(embed_dim, num_heads)
        self.ln_q = nn.LayerNorm(embed_dim, eps=eps)
        self.ln_kv = nn.LayerNorm(embed_dim, eps=eps)
        self.ln_post = nn.LayerNorm(embed_dim, eps=eps)
        self.proj = nn.Parameter(torch.zeros(embed_dim, embed_dim))

    def key_positions(self, height: int, width: int) -> torch.Tensor:
        """The position table resized (bicubic) to a (height, width) patch grid: (h*w, dim)."""
        table = self.pos_embed.float().reshape(1, self.side, self.side, -1).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=(height, width), mode="bicubic", align_corners=False)
        return table.permute(0, 2, 3, 1).reshape(height * width, -1)

    def forward(self, features: list[torch.Tensor], sizes: list[tuple[int, int]]) -> torch.Tensor:
        """`features[k]`: (h_k*w_k, kv_dim) of slice k with `sizes[k]` = (h_k, w_k) patches.
        Returns (len(features), side^2, embed_dim); each slice is resampled independently."""
        n, q = len(features), self.side * self.side
        # each submodule runs once for all slices (ZeRO-3 gathers weights per module call)
        projected = self.ln_kv(self.kv_proj(torch.cat(features))).split([f.shape[0] for f in features])
        # slices of one size share their key positions and pooling weights: pooled in one batch
        # (a loop per slice made the resampler cost several times the LM on CPU)
        groups: dict[tuple[int, int], list[int]] = {}
        for k, (h, w) in enumerate(sizes):
            groups.setdefault((int(h), int(w)), []).append(k)
        window = max(math.prod(pool_shape(h, w)) for h, w in groups)
        order, keys, values, pads = [], [], [], []
        for (h, w), idx in groups.items():
            x = torch.stack([projected[k] for k in idx])  # (m, h*w, C)
            size = math.prod(pool_shape(h, w))
            value = pool_cells(x, h, w, self.side, self.box_rounding)
            # pooling is linear: the keys' pooled positions are added once per size
            key = value + pool_cells(self.key_positions(h, w).to(x.dtype), h, w, self.side, self.box_rounding)
            keys.append(F.pad(key, (0, 0, 0, window - size)) if size < window else key)
            values.append(F.pad(value, (0, 0, 0, window - size)) if size < window else value)
            pads.append((torch.arange(window, device=x.device) >= size).expand(len(idx), q, window))
            order += idx
        key, value, pad = torch.cat(keys), torch.cat(values), torch.cat(pads)
        if order != list(range(n)):  # back to the slices' order
            inverse = torch.empty(n, dtype=torch.long)
            inverse[torch.tensor(order)] = torch.arange(n)
            inverse = inverse.to(key.device)
            key, value, pad = key[inverse], value[inverse], pad[inverse]
        key, value = key.reshape(n * q, window, -1), value.reshape(n * q, window, -1)  # (n*q, window, C)
        pad = pad.reshape(n * q, window)
        query = (self.ln_q(self.query) + self.pos_embed.to(self.query.dtype)).repeat(n, 1)  # (n*q, C)
        out, _ = self.attn(query[None], key.transpose(0, 1), value.transpose(0, 1),
                           key_padding_mask=pad, need_weights=False)
        out = self.ln_post(out[0].reshape(n, q, -1))
        return out @ self.proj
