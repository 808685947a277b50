"""A uhd checkpoint is a remote-code HF folder: stock transformers loads it where sicog is absent."""

import json
import subprocess
import sys

import torch

from tests.model.conftest import make_image

# Runs in a fresh interpreter in which `import sicog` fails: only transformers and the folder's code.
_CHILD = r"""
import sys
sys.modules["sicog"] = None
import numpy as np, torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
path, image_path, out = sys.argv[1:4]
model = AutoModelForImageTextToText.from_pretrained(path, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(path, trust_remote_code=True)
messages = [{"role": "user", "content": [{"type": "image", "image": Image.open(image_path)},
                                         {"type": "text", "text": "How many circles?"}]}]
inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                       return_tensors="pt")
with torch.no_grad():
    logits = model(**inputs).logits
    generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
assert not [m for m in sys.modules if m == "sicog" or m.startswith("sicog.")] or sys.modules["sicog"] is None
torch.save({"logits": logits, "generated": generated, "model_class": type(model).__module__}, out)
"""


def test_checkpoint_loads_and_generates_without_sicog(tiny_uhd_ckpt, tiny_uhd, tmp_path):
    config = json.loads((tiny_uhd_ckpt / "config.json").read_text())
    assert config["auto_map"]["AutoModelForImageTextToText"].startswith("modeling_uhd.")
    assert {"modeling_uhd.py", "resampler_uhd.py", "slicing_uhd.py", "processing_uhd.py"} <= {
        p.name for p in tiny_uhd_ckpt.iterdir()}
    image = tmp_path / "image.png"
    make_image((200, 150)).save(image)
    out = tmp_path / "out.pt"
    env = {"HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", _CHILD, str(tiny_uhd_ckpt), str(image), str(out)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    child = torch.load(out)
    assert not child["model_class"].startswith("sicog")  # the folder's copy of the code, not ours

    model, processor = tiny_uhd
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many circles?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    from PIL import Image

    inputs = processor(images=[Image.open(image)], text=[text], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert child["logits"].shape == logits.shape
    assert (child["logits"] - logits).abs().max() < 1e-4
    assert child["generated"].shape[1] > inputs["input_ids"].shape[1]
