"""`sicog annotate cod` throughput: --concurrency 16 vs 1 against a server that answers in 200 ms.

Both runs use the same 200 items (8x8 PNGs) and the loopback OpenAI-compatible server of the
tests (tests/stages/_cod_server.py), which sleeps `--delay` seconds per request and then answers
a valid Chain-of-Description; the server runs in its own process, so it does not compete with the
client for the interpreter lock. Each run writes a fresh output folder; the time is the command's
wall time including reading the data and writing the outputs (the modules are imported before
either run: importing the openai SDK takes seconds and would count against the first run only).

    python benchmarks/annotate_throughput.py                       # 200 items, 200 ms, 16 vs 1
    python benchmarks/annotate_throughput.py --items 500 --concurrency 32
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sicog.cli import main  # noqa: E402
from sicog.stages.annotation import runner  # noqa: E402, F401 (imported before the timed runs)
from tests.stages._annotation import annotate_argv, write_caption_records  # noqa: E402
from tests.stages._cod_server import CodServer  # noqa: E402


def timed_run(data: Path, folder: Path, out: Path, base_url: str, concurrency: int) -> float:
    started = time.perf_counter()
    status = main(annotate_argv(data, folder, out, base_url, "--concurrency", str(concurrency),
                                "--request-timeout", "30"))
    seconds = time.perf_counter() - started
    summary = json.loads((out / "summary.json").read_text())
    if status != 0 or summary["annotated"] != summary["items"]:
        raise SystemExit(f"run at --concurrency {concurrency} did not annotate every item: {summary}")
    return seconds


def serve(delay: float, urls, stop) -> None:
    """The loopback server, in a child process, until `stop` is set."""
    with CodServer(delay=delay) as server:
        urls.put(server.base_url)
        stop.wait()


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200, help="items to annotate (default 200)")
    parser.add_argument("--delay", type=float, default=0.2, help="server seconds per request (default 0.2)")
    parser.add_argument("--concurrency", type=int, default=16, help="the concurrent run's --concurrency "
                                                                   "(default 16; the other run uses 1)")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the per-run log lines would drown the result
    urls, stop = multiprocessing.Queue(), multiprocessing.Event()
    child = multiprocessing.Process(target=serve, args=(args.delay, urls, stop), daemon=True)
    child.start()
    try:
        base_url = urls.get(timeout=60)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            data, folder = write_caption_records(root, args.items)
            serial = timed_run(data, folder, root / "out-1", base_url, 1)
            concurrent = timed_run(data, folder, root / f"out-{args.concurrency}", base_url, args.concurrency)
    finally:
        stop.set()
        child.join(timeout=10)
    print(f"{args.items} items, server {args.delay * 1000:.0f} ms per request")
    print(f"--concurrency 1:  {serial:7.2f} s  ({args.items / serial:6.1f} items/s)")
    print(f"--concurrency {args.concurrency}: {concurrent:7.2f} s  ({args.items / concurrent:6.1f} items/s)")
    print(f"speed-up: {serial / concurrent:.1f}x (ideal {args.concurrency}x)")


if __name__ == "__main__":
    main_benchmark()
