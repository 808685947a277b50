"""Running independent steps side by side (`parallel_steps` > 1 in the pipeline YAML).

A step may start once every earlier step that writes one of its inputs has finished; steps are
planned in an order where that always holds, so the width-1 schedule is the plain sequence. On a
machine whose cores one step cannot fill (the CPU demo: tiny models, 2 cores), two arms trained
side by side with one thread each finish sooner than one after another with two threads.

Each step keeps its own manifest, so skip / resume / redo is decided exactly as in a sequential
run, and an interrupted parallel run resumes like any other. Command steps must run as child
processes (`launcher.in_process: false`): one Python process cannot host two `sicog` commands.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from sicog.pipeline.step import Step, StepFailed


def _within(a: Path, b: Path) -> bool:
    return a == b or b in a.parents


def dependencies(steps: list[Step]) -> dict[str, set[str]]:
    """For each step, the names of the earlier steps that write (a folder holding) one of its inputs."""
    out: dict[str, set[str]] = {}
    for i, step in enumerate(steps):
        ins = [Path(p).resolve() for p in step.inputs.values()]
        out[step.name] = {
            earlier.name for earlier in steps[:i]
            if any(_within(a, Path(o).resolve()) or _within(Path(o).resolve(), a)
                   for a in ins for o in earlier.outputs.values())}
    return out


def chain_lengths(steps: list[Step], deps: dict[str, set[str]]) -> dict[str, int]:
    """For each step, the number of steps on the longest chain from it to the end of the plan
    (itself included): the scheduler starts the ready step with the longest chain first, so the
    arms' long sample -> curate -> train chain is not kept waiting behind a short side branch."""
    length: dict[str, int] = {}
    for step in reversed(steps):  # dependents come later in the plan
        length[step.name] = 1 + max((length[s.name] for s in steps if step.name in deps[s.name]), default=0)
    return length


def run_parallel(steps: list[Step], width: int, run_one, interrupt=None) -> list:
    """Run `steps` with up to `width` at once; `run_one(step, index)` runs one and returns its result.

    Among the steps ready to start, the one with the longest chain of dependents goes first, a
    diagnostic step (`Step.diagnostic`) after the others of its chain length, then plan order: the
    arms' evaluations do not wait behind the label-quality samples at the end of a run. Results come back in plan order. The first failure stops new starts; the steps already
    running finish (or fail) before it is raised. On Ctrl-C, `interrupt()` stops the running
    commands (the engine passes the launcher's `terminate_children`), then the running steps end.
    """
    deps = dependencies(steps)
    chain = chain_lengths(steps, deps)
    done: set[str] = set()
    results: dict[str, object] = {}
    pending = list(enumerate(steps, 1))
    running: dict[Future, Step] = {}
    failure: BaseException | None = None
    lock = threading.Lock()

    def ready(step: Step) -> bool:
        return deps[step.name] <= done

    with ThreadPoolExecutor(max_workers=width, thread_name_prefix="step") as pool:
        try:
            while pending or running:
                while failure is None and len(running) < width:
                    ready_now = [(i, s) for i, s in pending if ready(s)]
                    if not ready_now:
                        break
                    nxt = min(ready_now, key=lambda item: (-chain[item[1].name], item[1].diagnostic, item[0]))
                    pending.remove(nxt)
                    running[pool.submit(run_one, nxt[1], nxt[0])] = nxt[1]
                if not running:
                    if failure is None and pending:  # cannot happen with a valid plan (checked by dry run)
                        failure = StepFailed(f"pipeline: no step can start; waiting on {[s.name for _, s in pending]}")
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    step = running.pop(fut)
                    try:
                        results[step.name] = fut.result()
                        with lock:
                            done.add(step.name)
                    except BaseException as e:  # noqa: BLE001 - re-raised once the others are done
                        failure = failure or e
        except KeyboardInterrupt:
            if interrupt is not None:
                interrupt()
            wait(list(running))
            raise
    if failure is not None:
        raise failure
    return [results[s.name] for s in steps if s.name in results]
