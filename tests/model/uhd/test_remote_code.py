"""A uhd checkpoint is a remote-code HF folder: stock transformers loads it where sicog is absent.

`assert_loads_without_sicog` is run on a `sicog train` output (tests/stages/test_train_uhd.py);
here only the folder's layout is checked, which needs no second interpreter.
"""

import json
import subprocess
import sys

import torch
from PIL import Image

from tests.model.conftest import make_image

# Runs in a fresh interpreter in which `import sicog` fails: only transformers and the folder's code.
_CHILD = r"""
import sys
sys.modules["sicog"] = None
import torch
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
torch.save({"logits": logits, "generated": generated, "model_class": type(model).__module__}, out)
"""


def assert_loads_without_sicog(ckpt, tmp_path):
    """`ckpt` loads, runs and generates through AutoModelForImageTextToText / AutoProcessor with
    remote code in an interpreter where sicog cannot be imported, with the logits sicog computes."""
    from sicog.model.checkpoint import load_checkpoint

    image = tmp_path / "image.png"
    make_image((200, 150)).save(image)
    out = tmp_path / "out.pt"
    env = {"HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", _CHILD, str(ckpt), str(image), str(out)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    child = torch.load(out)
    assert not child["model_class"].startswith("sicog")  # the folder's copy of the code, not ours

    model, processor = load_checkpoint(ckpt)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many circles?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(images=[Image.open(image)], text=[text], return_tensors="pt")
    with torch.no_grad():
        logits = model.eval()(**inputs).logits
    assert child["logits"].shape == logits.shape
    assert (child["logits"] - logits).abs().max() < 1e-4
    assert child["generated"].shape[1] > inputs["input_ids"].shape[1]


def test_checkpoint_carries_its_code_and_auto_map(tiny_uhd_ckpt):
    config = json.loads((tiny_uhd_ckpt / "config.json").read_text())
    assert config["model_type"] == "sicog_uhd"
    assert config["auto_map"] == {"AutoConfig": "configuration_uhd.SicogUhdConfig",
                                  "AutoModelForImageTextToText": "modeling_uhd.SicogUhdForConditionalGeneration"}
    processor_config = json.loads((tiny_uhd_ckpt / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_uhd.SicogUhdProcessor"
    code = {p.name for p in tiny_uhd_ckpt.glob("*.py")}
    assert code == {"configuration_uhd.py", "modeling_uhd.py", "resampler_uhd.py", "processing_uhd.py",
                    "image_processing_uhd.py", "slicing_uhd.py"}
    for name in code:  # self-contained: nothing but the standard library, torch, numpy, PIL, transformers
        text = (tiny_uhd_ckpt / name).read_text()
        assert "sicog." not in text.replace("sicog.model.uhd", "").split('"""', 2)[-1], name
