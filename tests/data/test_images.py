"""Image loading: RGB output, errors that name the record (file:line) and the image path."""

import pytest
from PIL import Image

from sicog.data.images import load_image
from sicog.data.records import DataError


def test_load_image_converts_to_rgb(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGBA", (10, 7), (255, 0, 0, 128)).save(path)
    img = load_image(path, "data.jsonl:3")
    assert img.mode == "RGB" and img.size == (10, 7)


def test_missing_image_names_record_and_path(tmp_path):
    with pytest.raises(DataError, match=r"data\.jsonl:3: image not found: .*nope\.png"):
        load_image(tmp_path / "nope.png", "data.jsonl:3")


def test_corrupt_image_names_record_and_path(tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(b"this is not an image at all")
    with pytest.raises(DataError, match=r"data\.jsonl:7: unreadable image .*bad\.png"):
        load_image(path, "data.jsonl:7")


def test_truncated_image_fails_at_load(tmp_path):
    path = tmp_path / "cut.png"
    Image.effect_noise((64, 64), 50).convert("RGB").save(path)
    path.write_bytes(path.read_bytes()[:200])  # header intact, pixel data cut
    with pytest.raises(DataError, match=r"data\.jsonl:9: unreadable image .*cut\.png"):
        load_image(path, "data.jsonl:9")
