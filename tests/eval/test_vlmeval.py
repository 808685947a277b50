"""The VLMEvalKit glue (launcher, registration, SicogLLaVA) against a minimal stand-in for
VLMEvalKit (tests/eval/_fake_vlmeval.py), so it is tested without VLMEvalKit installed."""

import base64
import io
import json
import logging
import sys

import numpy as np
import pytest
from PIL import Image

from sicog.eval import vlmeval_import, vlmeval_model
from sicog.eval.mcq import read_mcq_tsv, row_prompt
from sicog.eval.vlmeval import LaunchConfig, find_run_py, main, register, run_args
from sicog.eval.vlmeval_model import image_file, line_prompt
from sicog.model.generation import generate_texts
from sicog.utils.io import SicogError
from tests.eval._fake_vlmeval import write_fake_vlmeval
from tests.eval._tsv import MMSTAR_COLUMNS, mmstar_rows, write_tsv


def _forget_vlmeval():
    for name in [n for n in sys.modules if n == "vlmeval" or n.startswith("vlmeval.")]:
        del sys.modules[name]


@pytest.fixture
def fake_vlmeval(tmp_path, monkeypatch):
    """The stand-in package first on sys.path, imported afresh, without torchvision."""
    root = write_fake_vlmeval(tmp_path / "site")
    monkeypatch.syspath_prepend(str(root))
    _forget_vlmeval()
    monkeypatch.setattr(vlmeval_model, "_CLASS", None)
    # as on a CPU-only torch, whether or not this machine has a torchvision
    monkeypatch.setattr(vlmeval_import, "torchvision_error", lambda: "ImportError: no torchvision here")
    yield root
    _forget_vlmeval()


def noisy_png_base64(seed: int) -> str:
    """A PNG of random pixels: any lossy re-encoding changes it."""
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def test_find_run_py_in_both_layouts(tmp_path, fake_vlmeval):
    pypi = fake_vlmeval / "vlmeval" / "run.py"                     # nvidia-vlmeval: inside the package
    assert find_run_py() == pypi.resolve()
    assert find_run_py(fake_vlmeval / "vlmeval") == pypi
    assert find_run_py(fake_vlmeval) == pypi                        # --vlmevalkit-dir: the site folder
    clone = tmp_path / "VLMEvalKit"                                 # a clone: run.py beside the package
    (clone / "vlmeval").mkdir(parents=True)
    (clone / "run.py").write_text("")
    assert find_run_py(clone) == clone / "run.py"
    pypi.unlink()
    with pytest.raises(SicogError, match="run.py not found"):
        find_run_py()


def test_register_checks_the_checkpoint(tmp_path, fake_vlmeval, tiny_ckpt):
    with pytest.raises(SicogError, match="no such folder"):
        register("m", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SicogError, match="no config.json"):
        register("m", tmp_path / "empty")
    with pytest.raises(SicogError, match="needs a model_path"):
        register("m")
    cls = register("m", tiny_ckpt, prompt_style="cot")
    import vlmeval.config
    import vlmeval.vlm

    assert vlmeval.vlm.SicogLLaVA is cls and cls.__name__ == "SicogLLaVA" and cls.INTERLEAVE is False
    factory = vlmeval.config.supported_VLM["m"]
    assert factory.func is cls and factory.keywords == {"model_path": str(tiny_ckpt.resolve()), "prompt_style": "cot"}
    # torchvision's stand-in served VLMEvalKit's import only: a later import gets the real thing (or fails)
    import vlmeval.dataset

    assert isinstance(vlmeval.dataset.RESIZE, vlmeval_import.Placeholder)
    assert "torchvision" not in sys.modules
    assert not any(isinstance(f, vlmeval_import._StandInFinder) for f in sys.meta_path)
    try:
        import torchvision
    except ImportError:
        pass
    else:
        assert not isinstance(torchvision, vlmeval_import._StandInModule)


@pytest.mark.parametrize("arch", ["llava", "uhd"])
def test_sicog_llava_asks_and_answers_as_sicog_evaluate(tmp_path, fake_vlmeval, request, arch):
    tiny_ckpt = request.getfixturevalue("tiny_ckpt" if arch == "llava" else "tiny_uhd_ckpt")
    tiny = request.getfixturevalue("tiny" if arch == "llava" else "tiny_uhd")
    cls = register()
    rows = mmstar_rows(2)
    rows[0]["image"] = noisy_png_base64(0)
    rows[1]["image"] = noisy_png_base64(1)
    items = read_mcq_tsv(write_tsv(tmp_path / "b.tsv", MMSTAR_COLUMNS, rows))
    model = cls(model_path=str(tiny_ckpt), image_dir=str(tmp_path / "img"))
    assert model.max_new_tokens == 32                               # sicog evaluate's default for direct
    model.max_new_tokens = 6
    model.set_dump_image(lambda line: pytest.fail("VLMEvalKit's lossy dump_image must not be used"))
    for row, it in zip(rows, items):
        message = model.build_prompt(row, dataset="sicog_world")
        assert [m["type"] for m in message] == ["image", "text"]
        assert message[1]["value"] == it.prompt("direct") == row_prompt(row)
        with open(message[0]["value"], "rb") as fh:                # the TSV's own bytes
            assert fh.read() == it.image
        reply = model.generate(message, dataset="sicog_world")
        assert reply == generate_texts(*tiny, [it.prompt("direct")], [it.load_image()], n=1, temperature=0.0,
                                       max_new_tokens=6, progress=False)[0][0]
    # and for a chain of thought: room to reach its final answer
    assert cls(model_path=str(tiny_ckpt), prompt_style="cot").max_new_tokens == 512
    with pytest.raises(FileNotFoundError):
        cls(model_path=str(tmp_path))


def test_image_files_are_exact_and_never_stale(tmp_path):
    first, second = noisy_png_base64(0), noisy_png_base64(1)
    a, b = image_file(first, tmp_path), image_file(second, tmp_path)
    assert a != b and a.suffix == ".png"                            # same row index, other image: other file
    assert a.read_bytes() == base64.b64decode(first) and b.read_bytes() == base64.b64decode(second)
    assert image_file(first, tmp_path) == a and len(list(tmp_path.iterdir())) == 2


def test_prompts_of_open_ended_and_float_rows(fake_vlmeval):
    # a custom TSV without options is "MCQ" to VLMEvalKit; the row decides: its bare question
    assert line_prompt({"question": "How many circles?", "A": float("nan"), "answer": "3"}) == "How many circles?"
    # pandas reads a numeric option column with an empty cell as floats
    row = {"question": "How many?", "A": 1.0, "B": 2.0, "C": 3.0, "D": float("nan"), "answer": "C"}
    assert "\nC. 3\n" in line_prompt(row) and "3.0" not in line_prompt(row) and "D." not in line_prompt(row)


def test_run_args_add_the_model_and_a_judge():
    cfg = LaunchConfig(model="ckpt", name="n")
    assert run_args(["--data", "X"], cfg) == ["--model", "n", "--data", "X", "--judge", "exact_matching"]
    assert run_args(["--data", "X", "--judge", "gpt-4o"], cfg)[-2:] == ["--judge", "gpt-4o"]
    assert run_args(["--config", "c.json"], LaunchConfig()) == ["--config", "c.json", "--judge", "exact_matching"]


def test_launcher_exit_status(tmp_path, fake_vlmeval, tiny_ckpt, monkeypatch, capsys):
    lmu = tmp_path / "LMUData"
    lmu.mkdir()
    (lmu / "bench.tsv").write_text("index\tquestion\n")
    monkeypatch.setenv("LMUData", str(lmu))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    work = tmp_path / "work"
    ok = ["--model", str(tiny_ckpt), "--name", "m", "--", "--data", "bench", "--work-dir", str(work)]
    assert main(ok) == 0
    assert json.loads((work / "argv.json").read_text())[-2:] == ["--judge", "exact_matching"]
    assert main(["--model", str(tmp_path / "nope"), "--", "--data", "bench"]) == 2         # bad checkpoint
    assert "no such folder" in capsys.readouterr().err
    assert main(ok[:4] + ["--", "--data", "unknown", "--work-dir", str(work)]) == 1         # unknown dataset
    assert "Dataset unknown is not valid" in capsys.readouterr().err
    assert main(ok + ["--judge", "gpt-4o-mini"]) == 1                                      # a judge without a key
    assert "Illegal openai_key" in capsys.readouterr().err
    assert main(ok[:4] + ["--"]) == 2                                                      # run.py's own usage error
    assert main(["--vlmevalkit-dir", str(tmp_path / "none"), "--", "--data", "bench"]) == 2
    assert not logging.getLogger("RUN").handlers                                           # nothing left behind
