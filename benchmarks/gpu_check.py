"""The first GPU run, prepared: every sicog step on one GPU at real shapes, in one command, one table.

    bash scripts/gpu_check.sh --out runs/gpu_check                # one GPU, sized for < 8 minutes
    bash scripts/gpu_check.sh --cpu-smoke --out /tmp/gpu_check    # the same steps, tiny shapes, on CPU
    bash scripts/gpu_check.sh --out runs/zero3 --only train-deepspeed --deepspeed-config configs/deepspeed/zero3.json

Models: random-init CLIP-ViT-L/14-336 + a Qwen2-1.5B-shaped LM (28 layers, hidden 1536, its
151,936-row embedding and head), as `arch: llava` and as `arch: uhd` (up to 7 slices of 336 px +
the overview, 144 resampler tokens each), built offline: nothing is downloaded. bf16 where the GPU
has it; `model.attn_implementation: auto` (flash-attention 2 when installed) and
`training.liger_kernels: true` (Liger when installed); where either cannot run, the env row says
why and the stages log their fallback.

Steps, each sicog's own command (training: configs/qwen2_7b*/stage2_sft.yaml and
configs/qwen2_7b/dpo.yaml, with only the model, data, step budget, kernels and DeepSpeed overridden):
  env                 versions, GPU, bf16, whether flash-attention 2 and Liger can run
  build-llava         the random-init llava checkpoint
  train-llava-padded  `sicog train`, padded batches (length-grouped, as the config)
  train-llava-packed  the same with data.packing (flash-attention: packs of 4 x max_length tokens)
  train-deepspeed     the padded run under `torchrun --nproc_per_node 1` with DeepSpeed ZeRO-2
  sample-llava        `sicog sample --mode cod`: --candidates candidates, 4 per image
  evaluate-llava      `sicog evaluate`: --questions multiple-choice questions, by likelihood and by letter
  dpo-llava           `sicog dpo`: --dpo-steps steps on preference pairs, a frozen reference model
  build-uhd, train-uhd(-packed), sample-uhd   the same for the uhd model, padded and packed
A failed step does not stop the others; a step whose model failed to build is skipped.

Each command runs in its own process (`--launch process`, the default: a crash, the CUDA memory
and Liger's patches of transformers stay with their step); with --cpu-smoke the models are tiny,
CUDA is hidden and the commands run inside this process (`--launch in-process`) but for the
torchrun step. tests/test_gpu_check.py runs it. Only the first visible GPU is used.

Figures: training rates are the steady state, the median over the logged steps after the first
(which warms up) of real tokens/s and MFU (model FLOPs over the GPU's dense bf16 peak,
sicog.stages.throughput); train_summary.json's whole-run rates, which also count that step and
the checkpoint the Trainer saves at the end, are in summary.json. Peak memory is the step's
torch.cuda.max_memory_allocated (on CPU: the process's peak RSS). The checkpoints the steps write
are deleted once read (a 1.5B model's optimizer state is tens of GB; the ZeRO-2 step's needs about
40 GB of free disk) unless --keep-checkpoints.

Outputs in --out, built under a temporary name beside it and renamed into place at the end (a
non-empty --out is refused unless --overwrite): table.md (the table printed at the end),
summary.json (every step's status, seconds, figures, error, and the environment), inputs/ (the
synthetic data) and one folder per step with its log.txt. Exit status 0 when every step passed,
1 when one failed or timed out (the last line names them), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_check_steps as steps  # noqa: E402


def selected(only: str | None) -> list[str]:
    """The steps of --only and every step they need, in the table's order."""
    chosen = set(steps.STEPS) if not only else {s.strip() for s in only.split(",") if s.strip()}
    todo = list(chosen)
    while todo:
        for need in steps.STEPS[todo.pop()][1]:
            if need not in chosen:
                chosen.add(need)
                todo.append(need)
    return [s for s in steps.STEPS if s in chosen]


def run_check(c: steps.Check, names: list[str]) -> list[dict]:
    """Run the steps in order; each one's status, seconds and key figure (or reason)."""
    results: dict[str, dict] = {}
    for k, name in enumerate(names, 1):
        fn, needs = steps.STEPS[name]
        r = results[name] = {"name": name, "status": "skipped", "seconds": None, "figure": "", "details": {}}
        broken = [n for n in needs if results[n]["status"] != "ok"]
        if broken:
            r["figure"] = f"needs {', '.join(broken)}"
        else:
            d = c.root / name
            d.mkdir(parents=True, exist_ok=True)
            print(f"[{k}/{len(names)}] {name} ...", flush=True)
            t0 = time.perf_counter()
            try:
                with steps.output_to(d / "log.txt"):
                    r["details"] = fn(c, d)
                r["status"], r["figure"] = "ok", r["details"].pop("figure")
            except subprocess.TimeoutExpired:
                r["status"], r["figure"] = "TIMEOUT", f"stopped after --step-timeout {c.args.step_timeout:g} s"
            except steps.StepFailed as e:
                r["status"], r["figure"] = "FAILED", str(e)
            except Exception as e:  # noqa: BLE001 - a step's fault is reported; the others still run
                (d / "error.txt").write_text(traceback.format_exc())
                r["status"], r["figure"] = "FAILED", f"{type(e).__name__}: {e}"[:300] + f" (see {name}/error.txt)"
            r["seconds"] = round(time.perf_counter() - t0, 2)
        took = "" if r["seconds"] is None else f" {r['seconds']:.1f} s"
        print(f"    {r['status']}{took}: {r['figure']}", flush=True)
        later = {need for n in names[k:] for need in steps.STEPS[n][1]}
        for arch, path in list(c.checkpoints.items()):  # a model no later step needs: its disk back
            if f"build-{arch}" not in later and not c.args.keep_checkpoints:
                shutil.rmtree(path, ignore_errors=True)
                del c.checkpoints[arch]
    return list(results.values())


def render_table(results: list[dict]) -> str:
    lines = ["| step | status | seconds | key figure |", "|---|---|---:|---|"]
    for r in results:
        seconds = "-" if r["seconds"] is None else f"{r['seconds']:.1f}"
        lines.append(f"| {r['name']} | {r['status']} | {seconds} | {r['figure'].replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gpu_check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (refused when not empty, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out (once the check has finished)")
    p.add_argument("--cpu-smoke", action="store_true",
                   help="tiny shapes on CPU, CUDA hidden: the same steps in about a minute (for tests)")
    p.add_argument("--only", metavar="STEP[,STEP]",
                   help=f"run these steps and the ones they need (steps: {', '.join(steps.STEPS)})")
    p.add_argument("--launch", choices=("auto", "process", "in-process"), default="auto",
                   help="where the sicog commands run: process (one each: a crash, the CUDA memory and Liger's patches "
                        "stay with their step) or in-process (faster start-up); auto: in-process with --cpu-smoke, "
                        "else process. The DeepSpeed step always runs under torchrun")
    p.add_argument("--train-steps", type=int, default=None, metavar="N",
                   help="optimizer steps of each training run (default 8; --cpu-smoke 3)")
    p.add_argument("--candidates", type=int, default=64, metavar="N",
                   help=f"candidates per sample step, {steps.CANDIDATES_PER_IMAGE} per image (default 64)")
    p.add_argument("--questions", type=int, default=50, metavar="N", help="multiple-choice questions (default 50)")
    p.add_argument("--dpo-steps", type=int, default=5, metavar="N", help="DPO optimizer steps (default 5)")
    p.add_argument("--deepspeed-config", type=Path, default=steps.ZERO2, metavar="JSON",
                   help="DeepSpeed config of train-deepspeed (default configs/deepspeed/zero2.json)")
    p.add_argument("--attn", default="auto", choices=("auto", "sdpa", "flash_attention_2", "eager"),
                   help="model.attn_implementation of the training runs (default auto)")
    p.add_argument("--step-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="a step in its own process is stopped after this long (default 300)")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep the checkpoints the steps write (deleted once read by default: tens of GB on GPU)")
    a = p.parse_args(argv)
    unknown = sorted({s.strip() for s in (a.only or "").split(",") if s.strip()} - set(steps.STEPS))
    if unknown:
        p.error(f"--only: unknown step(s) {', '.join(unknown)} (steps: {', '.join(steps.STEPS)})")
    for flag in ("train_steps", "candidates", "questions", "dpo_steps"):
        if getattr(a, flag) is not None and getattr(a, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be at least 1")
    if a.candidates % steps.CANDIDATES_PER_IMAGE:
        p.error(f"--candidates must be a multiple of {steps.CANDIDATES_PER_IMAGE} (candidates per image)")
    a.train_steps = a.train_steps or (3 if a.cpu_smoke else 8)
    a.launch = ("in-process" if a.cpu_smoke else "process") if a.launch == "auto" else a.launch
    return a


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [steps.ENTRY_FLAG]:  # a step's own process (see gpu_check_steps.run_sicog)
        return steps.entry(argv[1], argv[2:])
    a = parse_args(argv)
    out = Path(a.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not a.overwrite:
        print(f"gpu_check: --out {out} is not empty; pass --overwrite to replace it, or choose another folder",
              file=sys.stderr)
        return 2
    os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if a.cpu_smoke:  # before torch starts, here and in every step's process
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    else:  # one GPU: the Trainer would wrap a model seeing several in DataParallel
        os.environ["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
    from sicog.utils.io import SicogError, atomic_dir, write_json
    from sicog.utils.lock import check_writable, output_lock

    t0 = time.perf_counter()
    try:
        check_writable(out, "--out", kind="dir")
        with output_lock(out), atomic_dir(out) as root:
            os.chmod(root, 0o777 & ~_umask())  # (made private by mkdtemp)
            c = steps.Check(a, steps.SMOKE if a.cpu_smoke else steps.REAL, Path(root).resolve())
            c.inputs = steps.write_inputs(root / "inputs", c.profile, a)
            results = run_check(c, selected(a.only))
            failed = [r["name"] for r in results if r["status"] in ("FAILED", "TIMEOUT")]
            table = render_table(results)
            (root / "table.md").write_text(table)
            write_json(root / "summary.json", {
                "mode": "cpu-smoke" if a.cpu_smoke else "gpu", "failed": failed, "env": c.env,
                "wall_seconds": round(time.perf_counter() - t0, 1), "steps": results,
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}})
    except SicogError as e:
        print(f"gpu_check: {e}", file=sys.stderr)
        return 2
    print(f"\ngpu_check ({'cpu-smoke' if a.cpu_smoke else 'gpu'}): {len(results)} steps in "
          f"{time.perf_counter() - t0:.0f} s, outputs in {out}\n\n{table}", flush=True)
    if failed:
        print(f"gpu_check: FAILED: {', '.join(failed)} (logs: {out}/<step>/log.txt)", file=sys.stderr)
        return 1
    return 0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


if __name__ == "__main__":
    raise SystemExit(main())
