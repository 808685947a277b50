"""The spatial resampler: fixed token count, per-cell pooling, independence of batch members."""

import pytest
import torch

from sicog.model.uhd.resampler_uhd import SpatialResampler, pool_cells, pool_shape, sincos_table


@pytest.fixture(scope="module")
def resampler():
    torch.manual_seed(0)
    r = SpatialResampler(side=12, embed_dim=32, num_heads=2, kv_dim=24).eval()
    with torch.no_grad():
        r.query.normal_(std=0.02)
        r.proj.normal_(std=32 ** -0.5)
    return r


SIZES = [(24, 24), (20, 27), (27, 20), (12, 84), (84, 12), (5, 3), (1, 1)]


@pytest.mark.parametrize("size", SIZES)
def test_any_slice_size_gives_side_squared_tokens(resampler, size):
    feats = torch.randn(size[0] * size[1], 24)
    with torch.no_grad():
        out = resampler([feats], [size])
    assert out.shape == (1, 144, 32) and torch.isfinite(out).all()


def test_a_batch_of_slices_equals_each_slice_alone(resampler):
    torch.manual_seed(1)
    feats = [torch.randn(h * w, 24) for h, w in SIZES]
    with torch.no_grad():
        together = resampler(feats, SIZES)
        alone = torch.cat([resampler([f], [s]) for f, s in zip(feats, SIZES)])
    assert (together - alone).abs().max() < 1e-5


def test_each_query_reads_only_its_own_cell(resampler):
    torch.manual_seed(2)
    feats = torch.randn(24 * 24, 24)
    changed = feats.clone().reshape(24, 24, 24)
    changed[:2, :2] += 5.0  # the top-left 2x2 patches = cell (0, 0) of a 24x24 map
    with torch.no_grad():
        a = resampler([feats], [(24, 24)])[0]
        b = resampler([changed.reshape(-1, 24)], [(24, 24)])[0]
    moved = (a - b).abs().amax(dim=1) > 1e-6
    assert moved[0] and not moved[1:].any()


@pytest.mark.parametrize("size", [(12, 12), (24, 36), (25, 17)])
def test_pooling_a_constant_map_keeps_the_constant(size):
    feats = torch.full((size[0] * size[1], 3), 0.7)
    pooled = pool_cells(feats, *size, side=12)
    ph, pw = pool_shape(*size)
    assert pooled.shape == (144, ph * pw, 3)
    assert torch.allclose(pooled, torch.full_like(pooled, 0.7), atol=1e-6)


def test_pooling_window_follows_the_aspect():
    assert pool_shape(24, 24) == (3, 3)
    assert pool_shape(12, 48) == (2, 4)  # wide slice: 2 rows x 4 columns of keys per cell
    assert pool_shape(48, 12) == (4, 2)


def test_sincos_table_encodes_column_then_row():
    table = sincos_table(16, 4).reshape(4, 4, 16)
    assert torch.equal(table[0, :, :8], table[3, :, :8])  # first half: the column only
    assert torch.equal(table[:, 0, 8:], table[:, 2, 8:])  # second half: the row only
    assert torch.allclose(table[0, 0], torch.tensor([0.0] * 4 + [1.0] * 4 + [0.0] * 4 + [1.0] * 4))


def test_key_positions_at_the_query_grid_are_the_table(resampler):
    assert torch.allclose(resampler.key_positions(12, 12), resampler.pos_embed, atol=1e-5)
