"""How a step's command starts: the one place that builds a `python -m sicog` / torchrun line.

A step runs the project's own CLI command either as `python -m sicog …`, under
`torchrun --nproc_per_node K -m sicog …` (launcher.nproc_per_node > 1 or nnodes > 1), or inside
this process (launcher.in_process, one process only: saves torch's start-up time on small runs).
Its output goes to `<step folder>/log.txt`, with every known secret value redacted
(sicog.utils.secrets). `launcher.env` values are `${VAR}`-expanded here, for the command's
environment only; the configs and manifests that are saved keep the `${VAR}` text.

The bash stage scripts launch through this module too (`python -m sicog.pipeline.launch ARGS`,
reading NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT), so the pipeline and the
scripts share one launch line and one set of defaults: those of `LauncherConfig`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import runpy
import signal
import subprocess
import sys
import threading
from pathlib import Path

from sicog.pipeline.config import LauncherConfig, launcher_env
from sicog.pipeline.step import Step, StepFailed
from sicog.utils.secrets import RedactingFilter, redact

log = logging.getLogger(__name__)


def command_argv(launcher: LauncherConfig, sub_argv: list[str]) -> list[str]:
    """The argv that runs `sicog <sub_argv>` with this launcher (torchrun when > 1 process)."""
    if launcher.nproc_per_node > 1 or launcher.nnodes > 1:
        return [
            sys.executable, "-m", "torch.distributed.run",
            f"--nproc_per_node={launcher.nproc_per_node}", f"--nnodes={launcher.nnodes}",
            f"--node_rank={launcher.node_rank}", f"--master_addr={launcher.master_addr}",
            f"--master_port={launcher.master_port}", "-m", "sicog", *sub_argv,
        ]
    return [sys.executable, "-m", "sicog", *sub_argv]


def describe_command(launcher: LauncherConfig, sub_argv: list[str]) -> str:
    """The command line as a user would type it (`torchrun …` or `sicog …`)."""
    argv = command_argv(launcher, sub_argv)
    if argv[1:3] == ["-m", "torch.distributed.run"]:
        argv = ["torchrun", *argv[3:]]
    else:
        argv = ["sicog", *argv[3:]]
    return " ".join(argv)


def run_command(step: Step, sub_argv: list[str], launcher: LauncherConfig) -> None:
    """Run `sicog <sub_argv>` for `step`; raise StepFailed (with the log's tail) when it fails."""
    log_path = Path(step.work_dir) / "log.txt"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if launcher.in_process:
        _run_in_process(step, sub_argv, launcher, log_path)
        return
    env = {**os.environ, **launcher_env(launcher)}
    env.setdefault("PYTHONUNBUFFERED", "1")
    if launcher.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(launcher.threads)
    with open(log_path, "a", encoding="utf-8") as fh:
        fh.write(f"$ {describe_command(launcher, sub_argv)}\n")
        fh.flush()
        proc = subprocess.Popen(command_argv(launcher, sub_argv), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env)
        with _LIVE_LOCK:
            _LIVE.add(proc)
        # the output passes through here so that no secret value reaches the log, not even in a
        # traceback or a library's print
        copier = threading.Thread(target=_copy_redacted, args=(proc.stdout, fh), daemon=True)
        copier.start()
        try:
            rc = proc.wait()
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM): stop the child too, so nothing writes behind our back.
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
        finally:
            copier.join(timeout=30)
            with _LIVE_LOCK:
                _LIVE.discard(proc)
    if rc != 0:
        raise StepFailed(f"step {step.name} failed (exit {rc}); see {log_path}:\n{_tail(log_path)}")


#: the commands' child processes now running (several when steps run side by side)
_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()


def terminate_children() -> None:
    """SIGTERM every running command's process (a Ctrl-C that reached only the main thread)."""
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)


def _copy_redacted(pipe, fh) -> None:
    """Copy a child's output to the log, line by line, with secret values redacted."""
    try:
        for raw in iter(pipe.readline, b""):
            fh.write(redact(raw.decode("utf-8", errors="replace")))
            fh.flush()
    except (OSError, ValueError):  # the log was closed after a timed-out interrupt
        pass
    finally:
        pipe.close()


class _RedactingWriter:
    """A text stream that writes to `fh` with secret values redacted (in-process stdout / stderr)."""

    def __init__(self, fh):
        self._fh = fh

    def write(self, text: str) -> int:
        self._fh.write(redact(text))
        return len(text)

    def __getattr__(self, name):
        return getattr(self._fh, name)


@contextlib.contextmanager
def captured_output(log_path: Path, header: str = ""):
    """Send stdout, stderr and logging of in-process work to the step's log file (like a subprocess)."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as fh:
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        handler.addFilter(RedactingFilter())
        root.handlers = [handler]
        root.setLevel(logging.INFO)
        out = _RedactingWriter(fh)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                if header:
                    fh.write(header + "\n")
                    fh.flush()
                yield
        finally:
            root.handlers = saved_handlers
            root.setLevel(saved_level)


def _run_in_process(step: Step, sub_argv: list[str], launcher: LauncherConfig, log_path: Path) -> None:
    """`sicog <sub_argv>` in this process, its stdout/stderr/logging going to the step's log."""
    env = launcher_env(launcher)
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with captured_output(log_path, f"$ sicog {' '.join(sub_argv)}   (in process)"), \
                torch_threads(launcher.threads):
            rc = _run_sicog_module(sub_argv)  # its logging.basicConfig(force=True) binds to the redirected stderr
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    if rc == 130:  # cli.main turned Ctrl-C / SIGTERM into exit 130: stop the pipeline the same way
        raise KeyboardInterrupt
    if rc != 0:
        raise StepFailed(f"step {step.name} failed (exit {rc}); see {log_path}:\n{_tail(log_path)}")


def _run_sicog_module(sub_argv: list[str]) -> int:
    """`python -m sicog SUB_ARGV` in this process (the program, not a layer above: no import of sicog.cli)."""
    saved_argv = sys.argv
    sys.argv = ["sicog", *sub_argv]
    try:
        runpy.run_module("sicog", run_name="__main__", alter_sys=False)
    except SystemExit as e:  # sicog/__main__.py ends with sys.exit(main())
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = saved_argv
    return 0


@contextlib.contextmanager
def torch_threads(n: int | None):
    """torch.set_num_threads(n) for the block (in-process steps); nothing when n is None."""
    if not n:
        yield
        return
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def python_action(fn, describe: str, threads: int | None = None):
    """Wrap `fn(step) -> counts` so that its output goes to the step's log.txt."""

    def action(step: Step, engine) -> dict:
        with captured_output(Path(step.work_dir) / "log.txt", f"# {describe}"), torch_threads(threads):
            return fn(step) or {}

    return action


def command_action(sub_argv: list[str], launcher: LauncherConfig, counts_fn=None):
    """Action that runs `sicog <sub_argv>` and returns `counts_fn(step)` (or no counts)."""

    def action(step: Step, engine) -> dict:
        run_command(step, sub_argv, launcher)
        return counts_fn(step) if counts_fn else {}

    return action


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def launcher_from_env(env: dict[str, str] | None = None) -> LauncherConfig:
    """A LauncherConfig from NPROC_PER_NODE, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT (bash scripts)."""
    env = os.environ if env is None else env
    base = LauncherConfig()
    names = {"nproc_per_node": "NPROC_PER_NODE", "nnodes": "NNODES", "node_rank": "NODE_RANK",
             "master_port": "MASTER_PORT"}
    values: dict = {}
    for key, var in names.items():
        raw = env.get(var, "")
        if raw:
            try:
                values[key] = int(raw)
            except ValueError:
                raise SystemExit(f"sicog launch: {var}={raw!r} must be an integer") from None
    master_addr = env.get("MASTER_ADDR") or base.master_addr
    return LauncherConfig(**{**values, "master_addr": master_addr})


def main(argv: list[str] | None = None) -> int:
    """`python -m sicog.pipeline.launch SUBCOMMAND ARGS…`: run sicog under the env-described launcher."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m sicog.pipeline.launch SUBCOMMAND [ARGS...]\n"
              "Runs `sicog SUBCOMMAND ARGS` alone, or under torchrun when NPROC_PER_NODE > 1 or NNODES > 1\n"
              "(NODE_RANK, MASTER_ADDR, MASTER_PORT describe the cluster; defaults: sicog's LauncherConfig).")
        return 0 if argv else 2
    launcher = launcher_from_env()
    cmd = command_argv(launcher, argv)
    print(describe_command(launcher, argv), file=sys.stderr)
    os.execv(cmd[0], cmd)  # replaces this process: signals reach torchrun / sicog directly
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
