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


def _escapes(tmp_path):
    """An image folder with one good image, plus one image outside it reached four ways."""
    from ._samples import write_image

    folder = tmp_path / "imgs"
    write_image(folder / "ok.png")
    write_image(tmp_path / "secret.png", seed=1)
    (folder / "link.png").symlink_to(tmp_path / "secret.png")
    (folder / "sub").mkdir()
    return folder, {"dotdot": "../secret.png", "hidden_dotdot": "sub/../../secret.png",
                    "absolute": str(tmp_path / "secret.png"), "symlink": "link.png"}


def test_image_paths_stay_inside_their_folder_unless_allowed(tmp_path):
    from sicog.data.images import resolve_image

    folder, escapes = _escapes(tmp_path)
    assert resolve_image(folder, "ok.png", "d.jsonl:1") == (folder / "ok.png").resolve()
    assert resolve_image(folder, "sub/../ok.png", "d.jsonl:1") == (folder / "ok.png").resolve()  # stays inside
    for name, rel in escapes.items():
        why = "is an absolute path" if name == "absolute" else r"resolves to .*secret\.png, outside the image folder"
        with pytest.raises(DataError, match=rf"d\.jsonl:4: key 'image': .*{why}.*--allow-images-outside-folder"):
            resolve_image(folder, rel, "d.jsonl:4")
        assert resolve_image(folder, rel, "d.jsonl:4", allow_outside=True).resolve() == (tmp_path / "secret.png")


def test_training_data_refuses_or_skips_escaping_images_unless_allowed(tmp_path, processor):
    from sicog.config import DataConfig, DataSource
    from sicog.data.dataset import build_train_dataset

    from ._samples import image_record, write_jsonl

    folder, escapes = _escapes(tmp_path)
    recs = [image_record(0, image="ok.png")] + [image_record(i + 1, image=rel) for i, rel in enumerate(escapes.values())]
    data = write_jsonl(tmp_path / "d.jsonl", recs)

    def build(**kw):
        return build_train_dataset(DataConfig(sources=[DataSource(path=data, image_folder=str(folder))], **kw),
                                   processor)

    with pytest.raises(DataError, match=r"d\.jsonl:2: key 'image': .*outside the image folder"):
        build()
    skipped = build(on_error="skip")
    assert len(skipped.parts[0]) == 1 and skipped.parts[0].skip_counts["malformed_record"] == 4
    assert len(build(allow_images_outside_folder=True).parts[0]) == 5


# --- decoding: one loader for training, sampling and evaluation (sicog.data.images.open_image) ---

def _png(image: Image.Image) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG" if image.mode != "CMYK" else "JPEG")
    return buf.getvalue()


def _grey16(value: int, size=(6, 4)) -> Image.Image:
    import numpy as np

    return Image.fromarray(np.full((size[1], size[0]), value, dtype=np.uint16))


def test_16_bit_grey_keeps_its_levels_instead_of_clipping(tmp_path):
    from sicog.data.images import open_image

    levels = {0: 0, 257: 1, 32768: 128, 65535: 255}
    for value, expected in levels.items():
        path = tmp_path / f"g{value}.png"
        _grey16(value).save(path)
        assert Image.open(path).mode.startswith("I")  # PNG keeps 16 bits
        assert Image.open(path).convert("RGB").getpixel((0, 0))[0] in (0, 255)  # what PIL alone would give
        assert load_image(path, "d.jsonl:1").getpixel((0, 0)) == (expected,) * 3
        assert open_image(_png(_grey16(value)), "row 3").getpixel((0, 0)) == (expected,) * 3


@pytest.mark.parametrize("mode,colour,expected", [
    ("RGBA", (255, 0, 0, 0), (255, 255, 255)),      # transparent: composited over white
    ("RGBA", (255, 0, 0, 255), (255, 0, 0)),
    ("LA", (40, 255), (40, 40, 40)),
    ("L", 77, (77, 77, 77)),
    ("1", 1, (255, 255, 255)),
    ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
])
def test_every_mode_becomes_8_bit_rgb(tmp_path, mode, colour, expected):
    from sicog.data.images import open_image

    img = open_image(_png(Image.new(mode, (8, 8), colour)), "row 1")
    assert img.mode == "RGB" and img.size == (8, 8)
    assert all(abs(a - b) <= 2 for a, b in zip(img.getpixel((4, 4)), expected))  # CMYK goes through JPEG


@pytest.mark.parametrize("size", [(1, 4000), (4000, 1), (3, 2)])
def test_strips_and_images_smaller_than_a_patch_load_whole(tmp_path, size):
    path = tmp_path / "strip.png"
    Image.new("RGB", size, (9, 8, 7)).save(path)
    img = load_image(path, "d.jsonl:2")
    assert img.size == size and img.getpixel((0, 0)) == (9, 8, 7)


def test_an_image_over_the_pixel_cap_is_refused_from_its_header(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(path)
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1))
    with pytest.raises(DataError, match=r"d\.jsonl:5: image .*big\.png is 300x200 = 60000 pixels, above the limit "
                                        r"of 50000"):
        load_image(path, "d.jsonl:5", max_pixels=50_000)
    assert not decoded  # refused before a pixel is decoded
    monkeypatch.undo()
    assert load_image(path, "d.jsonl:5", max_pixels=60_000).size == (300, 200)


def test_the_uhd_checkpoint_code_converts_like_the_loader():
    """The remote-code copy (used where sicog is absent) and sicog's loader agree on every mode."""
    import numpy as np

    from sicog.data.images import to_rgb
    from sicog.model.uhd.image_processing_uhd import to_rgb as remote_to_rgb

    images = [_grey16(40000), Image.fromarray(np.full((4, 6), 70000, dtype=np.int32)),
              Image.fromarray(np.full((4, 6), 0.5, dtype=np.float32)), Image.new("RGBA", (6, 4), (1, 2, 3, 100)),
              Image.new("LA", (6, 4), (50, 60)), Image.new("CMYK", (6, 4), (10, 20, 30, 40)),
              Image.new("P", (6, 4), 3), Image.new("1", (6, 4), 1), Image.new("RGB", (6, 4), (5, 6, 7))]
    for img in images:
        assert np.array_equal(np.asarray(to_rgb(img)), np.asarray(remote_to_rgb(img))), img.mode


@pytest.mark.parametrize("size", [(2, 4000), (4000, 2), (9, 50)])
def test_a_strip_reaches_a_centre_cropping_processor_as_its_centre_square(size):
    """The stock resize-then-crop of a 2x4000 strip makes a 96 x 192,000 image first; the centre
    square gives the same pixels (columns vary along the short side only: no resampling edge)."""
    import numpy as np
    from transformers import CLIPImageProcessorPil, LlavaImageProcessorPil

    from sicog.data.images import centre_square_for_crop

    w, h = size
    ramp = np.linspace(0, 255, min(w, h)).astype(np.uint8)
    arr = np.repeat(ramp[None, :], max(w, h), 0) if w < h else np.repeat(ramp[:, None], max(w, h), 1)
    image = Image.fromarray(np.stack([arr, 255 - arr, arr // 2], -1))
    assert image.size == size
    ip = CLIPImageProcessorPil(size={"shortest_edge": 96}, crop_size={"height": 96, "width": 96})
    square = centre_square_for_crop(ip, image)
    assert square.size == (min(w, h),) * 2
    stock, ours = (np.asarray(ip(images=[im], return_tensors="np")["pixel_values"]) for im in (image, square))
    assert stock.shape == ours.shape == (1, 3, 96, 96)
    assert np.abs(stock - ours).max() < 1e-5
    # padding processors (pad-to-square) and images within the aspect limit are left alone
    assert centre_square_for_crop(LlavaImageProcessorPil(do_pad=True), image) is image
    near_square = Image.new("RGB", (40, 30))
    assert centre_square_for_crop(ip, near_square) is near_square


def test_the_uhd_processor_name_is_the_classes(tiny_uhd_ckpt):
    from sicog.data.images import UHD_IMAGE_PROCESSOR, max_pixels_in_folder
    from sicog.model.uhd.image_processing_uhd import SicogUhdImageProcessor

    assert UHD_IMAGE_PROCESSOR == SicogUhdImageProcessor.__name__
    assert max_pixels_in_folder(tiny_uhd_ckpt) == SicogUhdImageProcessor().max_pixels


def test_a_llava_checkpoint_or_a_served_model_has_no_pixel_cap(tiny_ckpt):
    from sicog.data.images import max_pixels_in_folder

    assert max_pixels_in_folder(tiny_ckpt) is None and max_pixels_in_folder("served-model-name") is None
