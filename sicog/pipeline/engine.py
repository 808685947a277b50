"""The resumable step engine behind `sicog run`: declared inputs/outputs, manifests, skip/redo.

A pipeline is an ordered list of `Step`s. Each step names its input and output paths and the
parameters that determine its outputs. Before a step runs the engine writes a *pending* manifest
(params + input fingerprints); when the step succeeds it writes the *complete* manifest (plus output
fingerprints, git commit, timings and the counts the step reported).

On a re-run a step is
  - skipped   when its complete manifest has the same params and input fingerprints and every
              output still has the fingerprint recorded there;
  - resumed   when only a pending manifest with the same params/inputs exists (it was interrupted):
              its partial outputs are kept, so resumable commands (sample, train) continue;
  - redone    otherwise, after its stale outputs are removed (a partial output of other inputs must
              never be resumed).
Fingerprints of unchanged files come from a small cache keyed by (path, size, mtime), so checking a
7B checkpoint does not re-hash 15 GB on every run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

from sicog.pipeline.step import Step, StepFailed, StepResult
from sicog.utils.io import SicogError, file_fingerprint, git_commit, write_json
from sicog.utils.secrets import mask_secrets, redact

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1


def _safe(name: str) -> str:
    return name.replace("/", "__")


class FingerprintCache:
    """sha256 fingerprints of files and folders, cached by (path, size, mtime_ns)."""

    def __init__(self, path: Path):
        self.path = path
        self._data: dict[str, list] = {}
        if path.is_file():
            try:
                self._data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._data = {}
        self._dirty = False

    def file(self, path: Path) -> str:
        st = path.stat()
        key = str(path.resolve())
        hit = self._data.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        digest = file_fingerprint(path)
        self._data[key] = [st.st_size, st.st_mtime_ns, digest]
        self._dirty = True
        return digest

    def of(self, path: str | os.PathLike) -> str | None:
        """Fingerprint of a file, or of a folder (names + contents, hidden temp entries ignored)."""
        p = Path(path)
        if p.is_file():
            return self.file(p)
        if p.is_dir():
            h = hashlib.sha256()
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if any(part.startswith(".") for part in rel.parts) or not f.is_file():
                    continue
                h.update(f"{rel.as_posix()}\0{self.file(f)}\n".encode())
            return "dir:" + h.hexdigest()[:16]
        return None

    def save(self) -> None:
        if self._dirty:
            write_json(self.path, self._data, indent=0)
            self._dirty = False


def params_digest(params: dict) -> str:
    """Digest of a step's params as its manifest stores them (secret values masked: a new API key
    is not a new result)."""
    text = json.dumps(mask_secrets(params), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Engine:
    """Runs steps in order with manifest-based skipping; see the module docstring."""

    def __init__(self, work_dir: str | os.PathLike, echo: Callable[[str], None] | None = None):
        self.work_dir = Path(work_dir)
        self.manifest_dir = self.work_dir / "manifests"
        self.fp = FingerprintCache(self.work_dir / ".fingerprints.json")
        self.echo = echo or (lambda msg: log.info("%s", msg))
        self.results: list[StepResult] = []

    # ------------------------------------------------------------------ manifests
    def result_of(self, step: Step) -> StepResult | None:
        """This engine's result for `step` (None when it was not part of the run)."""
        return next((r for r in self.results if r.step is step), None)

    def manifest_path(self, step: Step) -> Path:
        return self.manifest_dir / f"{_safe(step.name)}.json"

    def read_manifest(self, step: Step) -> dict | None:
        path = self.manifest_path(step)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _inputs_record(self, step: Step) -> dict:
        missing = [f"{k}={v}" for k, v in step.inputs.items() if not Path(v).exists()]
        if missing:
            raise StepFailed(f"step {step.name}: input(s) missing: {', '.join(missing)}")
        return {k: {"path": str(v), "fingerprint": self.fp.of(v)} for k, v in step.inputs.items()}

    def decide(self, step: Step) -> tuple[str, dict | None]:
        """('skip' | 'resume' | 'run', inputs record or None when inputs do not exist yet)."""
        if not all(Path(v).exists() for v in step.inputs.values()):
            return "run", None
        inputs = self._inputs_record(step)
        old = self.read_manifest(step)
        if old is None or old.get("version") != MANIFEST_VERSION:
            return "run", inputs
        same = old.get("params_digest") == params_digest(step.params) and old.get("inputs") == inputs
        if not same:
            return "run", inputs
        if old.get("status") == "complete":
            outputs_ok = all(
                self.fp.of(rec["path"]) == rec["fingerprint"] for rec in old.get("outputs", {}).values()
            ) and set(old.get("outputs", {})) == set(step.outputs)
            return ("skip" if outputs_ok else "run"), inputs
        return "resume", inputs

    # ------------------------------------------------------------------ running
    def run(self, steps: list[Step], dry_run: bool = False, parallel: int = 1) -> list[StepResult]:
        """Run (or, with dry_run, only plan) the steps in order; returns one result per step.

        With parallel > 1, up to that many steps whose inputs are ready run at once
        (sicog.pipeline.schedule); results still come back in plan order.
        """
        names = [s.name for s in steps]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise SicogError(f"pipeline: duplicate step names {sorted(dup)}")
        self.results = []
        if parallel > 1 and not dry_run:
            from sicog.pipeline.launch import terminate_children
            from sicog.pipeline.schedule import run_parallel

            save_lock = threading.Lock()

            def run_one(step: Step, index: int) -> StepResult:
                result = self._run_one(step, index, len(steps))
                result.step, result.manifest = step, self.read_manifest(step)
                with save_lock:
                    self.fp.save()
                return result

            try:
                self.results = run_parallel(steps, parallel, run_one, interrupt=terminate_children)
            finally:
                self.fp.save()
            return self.results
        for i, step in enumerate(steps, 1):
            if dry_run:
                decision, _ = self.decide(step)
                word = {"skip": "skip (up to date)", "resume": "resume", "run": "run"}[decision]
                self.echo(f"[{i:2d}/{len(steps)}] {step.name:<34} {word}")
                if step.describe:
                    self.echo(f"        {step.describe}")
                for k, v in step.outputs.items():
                    self.echo(f"        -> {k}: {v}")
                self.results.append(StepResult(step.name, "planned", 0.0, step=step))
                continue
            result = self._run_one(step, i, len(steps))
            result.step, result.manifest = step, self.read_manifest(step)
            self.results.append(result)
            self.fp.save()
        return self.results

    def _run_one(self, step: Step, index: int, total: int) -> StepResult:
        decision, inputs = self.decide(step)
        tag = f"[{index:2d}/{total}] {step.name}"
        if decision == "skip":
            old = self.read_manifest(step) or {}
            self.echo(f"{tag}: up to date, skipped (ran {old.get('finished_at', '?')})")
            self._log_event(step, "skipped", 0.0)
            return StepResult(step.name, "skipped", 0.0, old.get("counts", {}))
        if inputs is None:
            inputs = self._inputs_record(step)  # raises naming the missing input
        previous = self.read_manifest(step)
        attempts = 1
        if decision == "resume" and previous:
            attempts = int(previous.get("attempts", 1)) + 1
            self.echo(f"{tag}: resuming an interrupted run (attempt {attempts})")
        else:
            self._clean(step)
            self.echo(f"{tag}: running")
        Path(step.work_dir).mkdir(parents=True, exist_ok=True)
        manifest = {
            "version": MANIFEST_VERSION,
            "name": step.name,
            "kind": step.kind,
            "round": step.round,
            "arm": step.arm,
            "status": "pending",
            "attempts": attempts,
            "params": mask_secrets(step.params),  # a manifest never holds a secret value
            "params_digest": params_digest(step.params),
            "inputs": inputs,
            "git_commit": git_commit(),
            "started_at": _now(),
            "command": redact(step.describe),
            "work_dir": step.work_dir,
        }
        write_json(self.manifest_path(step), manifest)
        start = time.time()
        try:
            counts = step.action(step, self) or {}
        except KeyboardInterrupt:
            self.echo(f"{tag}: interrupted; run again to resume")
            raise
        seconds = time.time() - start
        missing = [k for k, v in step.outputs.items() if not Path(v).exists()]
        if missing:
            raise StepFailed(f"step {step.name} finished but did not write output(s) {missing}")
        manifest.update(
            status="complete",
            finished_at=_now(),
            seconds=round(seconds, 3),
            counts=counts,
            outputs={k: {"path": str(v), "fingerprint": self.fp.of(v)} for k, v in step.outputs.items()},
        )
        write_json(self.manifest_path(step), manifest)
        status = "resumed" if decision == "resume" else "ran"
        self._log_event(step, status, seconds)
        self.echo(f"{tag}: done in {seconds:.1f}s {_short_counts(counts)}")
        return StepResult(step.name, status, seconds, counts)

    def _clean(self, step: Step) -> None:
        """Remove what a previous, different run of this step left (never resume stale parts)."""
        for path in [step.work_dir, *step.outputs.values()]:
            p = Path(path)
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    def _log_event(self, step: Step, status: str, seconds: float) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with open(self.work_dir / "pipeline_log.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"time": _now(), "step": step.name, "status": status,
                                 "seconds": round(seconds, 3)}) + "\n")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"


def _short_counts(counts: dict) -> str:
    flat = {k: v for k, v in counts.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in list(flat.items())[:6])
