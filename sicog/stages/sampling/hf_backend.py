"""The in-process backend: a Hugging Face checkpoint, batched generation (sicog.model.generation).

Batches are planned over ALL of this rank's items (done or not), grouped by prompt length, and
each batch's seed comes from the run seed and the smallest item key in it. A resumed run with the
same world size and batch size therefore rebuilds the very same batches and reproduces the
candidates exactly; batches whose items are all done are skipped, a partly done batch is
regenerated whole and only its missing items are written.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import torch

from sicog.model.generation import SamplingParams, batch_seed, generate_batch, plan_batches, prompt_lengths
from sicog.stages.sampling.items import ImageLoadError, SampleItem, load_image
from sicog.utils.dist import pick_device

logger = logging.getLogger(__name__)


#: the torch dtype of each `--dtype` name but auto (SampleConfig's choices; a test keeps the two equal)
TORCH_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def pick_dtype(name: str, device: str):
    """`auto` -> bfloat16 on a GPU that supports it, float32 elsewhere."""
    if name == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return TORCH_DTYPES[name]


def run_hf(cfg, items: list[SampleItem], done: set[str],
           emit: Callable[[SampleItem, list[str]], None],
           skip: Callable[[SampleItem, str], None],
           progress) -> None:
    """Generate cfg.n candidates for every item of `items` not in `done`.

    `emit(item, candidates)` is called per finished item, `skip(item, reason)` per unreadable
    image under `--on-error skip` (ImageLoadError is raised otherwise); `progress.start()` once
    the model is loaded, `progress(candidates, tokens)` after every batch.
    """
    from sicog.eval.predict import load_model

    device = pick_device(cfg.device)
    model, processor = load_model(cfg.model, dtype=pick_dtype(cfg.dtype, device), device=device)
    model.eval()
    params = SamplingParams(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
                            num_beams=cfg.num_beams, max_new_tokens=cfg.max_new_tokens)
    lengths = prompt_lengths(processor, [it.prompt for it in items])
    batches = plan_batches(lengths, [it.has_image for it in items], cfg.batch_size)
    logger.info("hf backend on %s: %d items in %d batches (%d already done)", device, len(items),
                len(batches), sum(it.id in done for it in items))
    work = [(b, {i for i in b if items[i].id not in done}) for b in batches]
    work = [(b, todo) for b, todo in work if todo]

    def load(batch: list[int]) -> list:
        # Runs in a helper thread while the previous batch generates; errors are returned, not
        # raised, so that the main thread decides (raise or skip) in input order.
        out = []
        for i in batch:
            try:
                out.append(load_image(items[i], cfg.image_folder, cfg.seed, cfg.allow_images_outside_folder))
            except ImageLoadError as e:
                out.append(e)
        return out

    progress.start()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sample-images") as pool:
        pending = pool.submit(load, work[0][0]) if work else None
        for k, (batch, todo) in enumerate(work):
            loaded = pending.result()
            if k + 1 < len(work):
                pending = pool.submit(load, work[k + 1][0])
            rows, images = [], []
            for i, img in zip(batch, loaded):
                if not isinstance(img, ImageLoadError):
                    rows.append(i)
                    images.append(img)
                elif i in todo:  # (an item finished in an earlier run has nothing to redo)
                    if cfg.on_error != "skip":
                        raise img
                    skip(items[i], str(img))
                    todo.discard(i)
            if not todo:
                continue
            seed = batch_seed(cfg.seed, min(items[i].key for i in batch))
            texts, n_tokens = generate_batch(model, processor, [items[i].prompt for i in rows], images,
                                             params, seed)
            for i, cands in zip(rows, texts):
                if i in todo:
                    emit(items[i], cands)
            # tokens of rows regenerated only to keep the batch identical are not counted
            progress(len(todo) * cfg.n, n_tokens * len(todo) // len(rows))
