"""The table `sicog run --estimate` prints (the figures: sicog.pipeline.estimate)."""

from __future__ import annotations

from sicog.pipeline.estimate import GPUS, Estimate, cell


def render(est: Estimate) -> str:
    """The table `sicog run --estimate` prints."""
    o = est.options
    head = (f"{'step':34} {'tokens':>8} {'FLOPs':>9} {'GPU-h':>8} {'wall h':>8} {'GPUs':>4} "
            f"{'states GB':>9} {'act. GB':>8} {'API $':>8}  note")
    lines = [f"estimate at {o.gpu} ({GPUS[o.gpu][0] / 1e12:.0f} TFLOP/s bf16, {GPUS[o.gpu][1]} GB), MFU {o.mfu} "
             f"(sampling {o.sample_mfu}), API ${o.api_input_price}/${o.api_output_price} per 1M tokens in/out",
             head, "-" * len(head)]
    for r in est.rows:
        lines.append(f"{r.name:34} {cell(r.tokens, 8, 'count')} {cell(r.flops, 9)} {cell(r.gpu_hours, 8)} "
                     f"{cell(r.wall_hours, 8)} {r.gpus:>4} {cell(r.state_gb, 9)} {cell(r.activation_gb, 8)} "
                     f"{cell(r.api_usd, 8)}  {r.note}")
    lines.append("-" * len(head))
    lines.append(f"{'total':34} {cell(est.total('tokens'), 8, 'count')} {cell(est.total('flops'), 9)} "
                 f"{cell(est.total('gpu_hours'), 8)} {cell(est.total('wall_hours'), 8)} {'':>4} "
                 f"{cell(max(r.state_gb or 0 for r in est.rows), 9)} {cell(max(r.activation_gb or 0 for r in est.rows), 8)} "
                 f"{cell(est.total('api_usd'), 8)}  steps in sequence; memory: the largest step")
    lines += [f"note: {n}" for n in dict.fromkeys(est.notes)]
    return "\n".join(lines)
