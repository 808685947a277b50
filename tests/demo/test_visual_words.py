"""Visual words: the patch layout of the word-aligned stand-in tower, and its training."""

import random

import pytest

from sicog.demo.visual_words import EMPTY, patch_words, scene_words_text, visual_word_texts, word_vocabulary
from sicog.demo.world.scenes import CELL_NAMES, SceneConfig, scene_for


def test_each_cell_is_a_2x2_block_of_colour_shape_size_name():
    cfg = SceneConfig(image_size=96)
    scene = scene_for(0, "t", 3, cfg, "t3")
    words = patch_words(scene)
    assert len(words) == 36 and set(words) <= set(word_vocabulary(cfg))
    by_cell = {o.row * 3 + o.col: o for o in scene.objects}
    for cell in range(9):
        r, c = 2 * (cell // 3), 2 * (cell % 3)
        block = [words[r * 6 + c], words[r * 6 + c + 1], words[(r + 1) * 6 + c], words[(r + 1) * 6 + c + 1]]
        o = by_cell.get(cell)
        assert block == ([o.colour, o.shape, o.size, CELL_NAMES[cell]] if o else [EMPTY] * 3 + [CELL_NAMES[cell]])
    assert scene_words_text(scene).count("\n") == 5


def test_visual_word_texts_put_the_words_where_the_image_goes():
    cfg = SceneConfig(image_size=96)
    scene = scene_for(0, "t", 1, cfg, "t1")
    texts = visual_word_texts(scene, random.Random(0), cfg)
    assert len(texts) == 5
    assert all(t.startswith("<|im_start|>user\n" + scene_words_text(scene) + "\n") for t in texts)


@pytest.mark.slow
def test_word_aligned_tower_trains_against_the_lm_embeddings():
    from sicog.config import TinyModelConfig
    from sicog.demo.standin_vision import pretrain_vision_words
    from sicog.demo.standins import lm_corpus, pretrain_lm
    from sicog.utils.io import SicogError

    cfg = SceneConfig(image_size=96)
    tiny = TinyModelConfig(image_size=96, patch_size=16, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                           intermediate_size=64, vision_hidden_size=32, vision_layers=1, vision_heads=2,
                           vocab_size=400)
    lm, tok, _ = pretrain_lm(lm_corpus(cfg, 0, 8, visual_words=True), tiny, 2, 4, 1e-3, 0)
    tower, _, acc, loss = pretrain_vision_words(cfg, 0, tiny, 16, 3, 8, 1e-3, lm, tok)
    assert 0.0 <= acc <= 1.0 and loss > 0 and tower.config.patch_size == 16
    with pytest.raises(SicogError, match="6x6 patch grid"):
        pretrain_vision_words(cfg, 0, TinyModelConfig(image_size=96, patch_size=32), 16, 1, 8, 1e-3, lm, tok)
