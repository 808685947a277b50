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
