"""Cells that are a process tree on this machine (venv and host cells): find the
interpreter, make the venv when ``python -m venv`` cannot, run the probe, kill, clean up."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness import interpreters, timing
from harness.environments.base import CellEnvironment, ProbeSpec, Where, parse_events
from harness.errors import HarnessError
from harness.interpreters import Interpreter
from harness.probe_native import native_platform, venv_interpreter
from harness.verdict import ProbeRun


def new_process_group(platform: str = sys.platform) -> dict[str, Any]:
    """Popen options that give the cell its own process group (so all of it can be killed)."""
    if native_platform(platform) == "win32":
        flags = getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)
        return {"creationflags": flags | getattr(subprocess, "CREATE_NO_WINDOW", 0x8000000)}
    return {"start_new_session": True}


def kill_tree(proc: subprocess.Popen[str], platform: str = sys.platform) -> None:
    """Kill the cell's process and everything it started (nothing once it has exited)."""
    if proc.poll() is not None:
        return
    if native_platform(platform) == "win32":
        root = os.environ.get("SYSTEMROOT", r"C:\Windows")
        taskkill = os.path.join(root, "System32", "taskkill.exe")
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([taskkill, "/F", "/T", "/PID", str(proc.pid)], capture_output=True,
                           timeout=30, check=False)
        with contextlib.suppress(OSError):
            proc.kill()
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def hand_over(directory: Path, uid: int) -> None:
    """Make ``directory`` and everything in it ``uid``'s (the sandboxed cell writes there)."""
    for path in [directory, *directory.rglob("*")]:
        os.lchown(path, uid, uid)


def stdlib_venv_works(python: Path, where: Path) -> bool:
    """Whether ``python -m venv --without-pip`` (the probe's fast path) makes a venv."""
    target = Path(tempfile.mkdtemp(prefix="venv-check-", dir=where))
    try:
        proc = subprocess.run([str(python), "-I", "-S", "-m", "venv", "--without-pip",
                               str(target / "venv")], capture_output=True, timeout=60,
                              check=False)
        return proc.returncode == 0 and Path(venv_interpreter(str(target / "venv"))).exists()
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(target, ignore_errors=True)


def make_virtualenv(python: Path, target: Path, *, app_data: Path) -> str | None:
    """A venv for ``python`` made by virtualenv without seed packages; None, else why not."""
    import virtualenv  # the fallback only: most runs never need it (~0.17 s of import)

    try:
        virtualenv.cli_run([str(target), "--python", str(python), "--no-seed", "--quiet",
                            "--no-periodic-update", "--activators", "",
                            "--app-data", str(app_data)], setup_logging=False)
    except (Exception, SystemExit) as exc:  # virtualenv reports errors as either
        return str(exc) or type(exc).__name__
    return None


def finder(root: Path) -> Callable[[str], Interpreter | str]:
    """Matrix spec -> the interpreter (and whether its ``venv`` works), or why not."""
    def find(spec: str) -> Interpreter | str:
        try:
            found = interpreters.find(spec)
        except HarnessError as exc:
            return str(exc)
        return replace(found, stdlib_venv=stdlib_venv_works(found.executable, root))

    return find


class LocalProcessEnvironment(CellEnvironment):
    """One cell on this machine: its own temp dir, an environment built by the kind, its own
    process group; killed on timeout or abort, its directory removed on close."""

    def __init__(self, *, python: Path, run_root: Path, uv: str, cell_id: str,
                 stdlib_venv: bool = True, platform: str = sys.platform) -> None:
        super().__init__()
        self.python = python
        self.stdlib_venv = stdlib_venv
        self.uv = uv
        self.platform = platform
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{cell_id}-", dir=run_root))
        self._proc: subprocess.Popen[str] | None = None

    @abstractmethod
    def variables(self, home: str, tmp: str) -> dict[str, str]:
        """The cell's whole environment."""

    def command(self, spec: ProbeSpec, venv_made_by: str) -> list[str]:
        """The probe's command line for this cell."""
        return spec.argv(str(self.python), **self.where(spec, venv_made_by))

    def where(self, spec: ProbeSpec, venv_made_by: str) -> Where:
        """Where things are for the probe: the staged release set, the wheelhouse, the cell's
        work directory, the host's uv."""
        return {"wheel_dir": str(spec.wheel_dir), "uv": self.uv,
                "workdir": str(self.workdir / "cell"), "venv_made_by": venv_made_by,
                "dependencies": str(spec.dependencies) if spec.dependencies else ""}

    def run(self, spec: ProbeSpec, timeout: float) -> ProbeRun:
        """Run the probe from the cell's interpreter; kill its process tree on timeout."""
        home, tmp = self.workdir / "home", self.workdir / "tmp"
        home.mkdir()
        tmp.mkdir()
        env = self.variables(str(home), str(tmp))
        made_by = ""
        if not self.stdlib_venv:  # no usable ``python -m venv``: virtualenv makes it here
            made_by = "virtualenv"
            failed = make_virtualenv(self.python, self.workdir / "cell" / "venv",
                                     app_data=self.workdir.parent / "virtualenv")
            if failed:
                return ProbeRun(infra_error=f"virtualenv could not make the venv: {failed}",
                                environment=env)
        try:
            argv = self.command(spec, made_by)
        except HarnessError as exc:
            return ProbeRun(infra_error=str(exc), environment=env)
        start = time.monotonic()
        with self._lock:
            if self._aborted:
                return ProbeRun(infra_error="interrupted before start", environment=env)
            self._proc = subprocess.Popen(argv, cwd=tmp, env=env, encoding="utf-8",
                                          errors="replace", stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE,
                                          **new_process_group(self.platform))
        timing.mark("spawn")
        timed_out = False
        try:
            out, err = self._proc.communicate(timeout=timeout)
            timing.mark("wait (the probe runs)")
        except subprocess.TimeoutExpired:
            timed_out = True
            self._kill()
            out, err = self._proc.communicate()
        return ProbeRun(events=parse_events(out), returncode=self._proc.returncode, stderr=err,
                        seconds=time.monotonic() - start, timed_out=timed_out, environment=env,
                        infra_error="interrupted" if self._aborted else None)

    def _kill(self) -> None:
        if self._proc is not None:
            kill_tree(self._proc, self.platform)

    def abort(self) -> None:
        """Kill the cell's whole process tree."""
        with self._lock:
            self._aborted = True
            self._kill()

    def close(self) -> None:
        """Remove the cell's temp dir (venv included)."""
        self._kill()
        shutil.rmtree(self.workdir, ignore_errors=True)
