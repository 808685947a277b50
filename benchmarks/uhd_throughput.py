"""LLaVA-UHD costs on CPU: preprocessing of one large image, and tiny training throughput vs tiny LLaVA.

    python benchmarks/uhd_throughput.py [--image 1344x1008] [--batches 5]

Times are process CPU seconds (time.process_time), so a busy shared machine slows them less than
wall-clock time would; the training ratio compares the two architectures on the same images,
batch size and optimiser step (forward + backward + AdamW), one thread.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image


def _image(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def preprocessing_seconds(width: int, height: int, repeats: int = 5) -> tuple[float, int]:
    from sicog.model.uhd.image_processing_uhd import SicogUhdImageProcessor

    processor = SicogUhdImageProcessor()  # the paper's setting: 336 px slices, patch 14, 7 slices
    image = _image(width, height)
    processor([image], training=True)  # warm-up
    t = time.process_time()
    for _ in range(repeats):
        out = processor([image], training=True)
    return (time.process_time() - t) / repeats, int(out["pixel_values"].shape[0])


def training_seconds(arch: str, images: list[Image.Image], batches: int) -> float:
    from sicog.config import ModelConfig
    from sicog.model.build import build_model

    model, processor = build_model(ModelConfig(arch=arch, preset="tiny"), seed=0)
    model.train()
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe it."}]},
                {"role": "assistant", "content": "A picture."}]
    text = processor.apply_chat_template(messages, tokenize=False)
    batch = processor(images=images, text=[text] * len(images), return_tensors="pt", padding=True)
    batch["labels"] = batch["input_ids"].clone()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for step in range(batches + 1):
        if step == 1:
            t = time.process_time()  # the first step warms up
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return (time.process_time() - t) / batches


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default="1344x1008", help="WIDTHxHEIGHT of the preprocessing image")
    p.add_argument("--batches", type=int, default=5, help="timed training steps per architecture")
    p.add_argument("--batch-size", type=int, default=8, help="images per training step")
    args = p.parse_args()
    torch.set_num_threads(1)
    w, h = (int(v) for v in args.image.split("x"))
    seconds, pieces = preprocessing_seconds(w, h)
    print(f"preprocess {w}x{h} (slice + normalise, 336 px / 7 slices): {1000 * seconds:.1f} ms CPU, {pieces} pieces")
    images = [_image(200, 150, seed=k) for k in range(args.batch_size)]
    llava = training_seconds("llava", images, args.batches)
    uhd = training_seconds("uhd", images, args.batches)
    print(f"tiny training step, {args.batch_size} images of 200x150: llava {llava:.3f} s, uhd {uhd:.3f} s CPU; "
          f"uhd throughput = {llava / uhd:.2f} x llava")


if __name__ == "__main__":
    main()
