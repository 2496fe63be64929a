"""Venv cells: a fresh venv from a host interpreter, in a sandbox that hides native libs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import virtualenv

from harness import interpreters, sandbox
from harness.cells import Cell
from harness.environments.base import (
    CellEnvironment,
    ProbeSpec,
    Resources,
    Setup,
    cell_variables,
    parse_events,
)
from harness.errors import HarnessError, InfrastructureError
from harness.interpreters import Interpreter
from harness.sandbox import Sandbox
from harness.verdict import ProbeRun


class VenvEnvironment(CellEnvironment):
    """One cell on the host: own temp dir, allowlisted env, always its own namespaces."""

    def __init__(self, *, python: Path, run_root: Path, sandbox: Sandbox, uv: str,
                 cell_id: str, stdlib_venv: bool = True) -> None:
        super().__init__()
        self.python = python
        self.stdlib_venv = stdlib_venv
        self.sandbox = sandbox
        self.uv = uv
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{cell_id}-", dir=run_root))
        self._proc: subprocess.Popen[str] | None = None

    def run(self, spec: ProbeSpec, timeout: float) -> ProbeRun:
        """Run the probe from the cell's interpreter; kill its process group on timeout."""
        home, tmp = self.workdir / "home", self.workdir / "tmp"
        home.mkdir()
        tmp.mkdir()
        env = cell_variables(str(home), str(tmp))
        made_by = ""
        if not self.stdlib_venv:  # no usable ``python -m venv``: virtualenv makes it here
            made_by = "virtualenv"
            failed = make_virtualenv(self.python, self.workdir / "cell" / "venv",
                                     app_data=self.workdir.parent / "virtualenv")
            if failed:
                return ProbeRun(infra_error=f"virtualenv could not make the venv: {failed}",
                                environment=env)
        argv = self.sandbox.wrap(spec.argv(
            str(self.python), wheel_dir=str(spec.wheel_dir), uv=self.uv,
            workdir=str(self.workdir / "cell"), venv_made_by=made_by,
            dependencies=str(spec.dependencies) if spec.dependencies else ""))
        start = time.monotonic()
        with self._lock:
            if self._aborted:
                return ProbeRun(infra_error="interrupted before start", environment=env)
            self._proc = subprocess.Popen(argv, cwd=tmp, env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          start_new_session=True)
        timed_out = False
        try:
            out, err = self._proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            self._kill()
            out, err = self._proc.communicate()
        return ProbeRun(events=parse_events(out), returncode=self._proc.returncode, stderr=err,
                        seconds=time.monotonic() - start, timed_out=timed_out, environment=env,
                        infra_error="interrupted" if self._aborted else None)

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def abort(self) -> None:
        """Kill the cell's whole process group."""
        with self._lock:
            self._aborted = True
            self._kill()

    def close(self) -> None:
        """Remove the cell's temp dir (venv included)."""
        self._kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass(frozen=True, kw_only=True)
class VenvResources(Resources):
    """What the venv cells of a run share: interpreters, the sandbox, the host's uv."""

    root: Path
    uv: str
    interpreters: Mapping[str, Interpreter | str]  # matrix spec -> found, or why not
    sandbox: Sandbox | str  # or why venv cells cannot be isolated on this host

    def environment(self, cell: Cell) -> VenvEnvironment:
        """A fresh venv cell from the interpreter its matrix entry names (never unisolated)."""
        assert cell.python is not None
        interp = self.interpreters[cell.python]
        for problem in (interp, self.sandbox):
            if isinstance(problem, str):
                raise InfrastructureError(problem)
        assert isinstance(interp, Interpreter) and isinstance(self.sandbox, Sandbox)
        return VenvEnvironment(python=interp.executable, run_root=self.root,
                               sandbox=self.sandbox, uv=self.uv, cell_id=cell.id,
                               stdlib_venv=interp.stdlib_venv)


def stdlib_venv_works(python: Path, where: Path) -> bool:
    """Whether ``python -m venv --without-pip`` (the probe's fast path) makes a venv."""
    target = Path(tempfile.mkdtemp(prefix="venv-check-", dir=where))
    try:
        proc = subprocess.run([str(python), "-I", "-S", "-m", "venv", "--without-pip",
                               str(target / "venv")], capture_output=True, timeout=60,
                              check=False)
        return proc.returncode == 0 and (target / "venv" / "bin" / "python").exists()
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(target, ignore_errors=True)


def make_virtualenv(python: Path, target: Path, *, app_data: Path) -> str | None:
    """A venv for ``python`` made by virtualenv without seed packages; None, else why not."""
    try:
        virtualenv.cli_run([str(target), "--python", str(python), "--no-seed", "--quiet",
                            "--no-periodic-update", "--activators", "",
                            "--app-data", str(app_data)], setup_logging=False)
    except (Exception, SystemExit) as exc:  # virtualenv reports errors as either
        return str(exc) or type(exc).__name__
    return None


def _finder(root: Path) -> Callable[[str], Interpreter | str]:
    def find(spec: str) -> Interpreter | str:
        try:
            found = interpreters.find(spec)
        except HarnessError as exc:
            return str(exc)
        return replace(found, stdlib_venv=stdlib_venv_works(found.executable, root))

    return find


def prepare(setup: Setup, cells: Sequence[Cell]) -> VenvResources:
    """Find each interpreter; build the run's sandbox that hides the bundled libraries."""
    specs = sorted({c.python for c in cells if c.python is not None})
    with ThreadPoolExecutor(max_workers=len(specs) or 1) as pool:
        found = dict(zip(specs, pool.map(_finder(setup.root), specs), strict=True))
    libdirs = [i.libdir for i in found.values() if isinstance(i, Interpreter) and i.libdir]
    libs = setup.package.bundled_libraries
    try:
        box = sandbox.prepare(setup.root / "sandbox", list(libs), libdirs)
    except sandbox.SandboxUnavailable as exc:  # never run a venv cell unisolated
        why = (f"cannot isolate venv cells: {exc}; run as root, allow unprivileged user "
               "namespaces (sysctl user.max_user_namespaces, "
               "kernel.apparmor_restrict_unprivileged_userns=0) or use container cells")
        setup.log(f"error: {why}")
        return VenvResources(root=setup.root, uv=setup.uv, interpreters=found, sandbox=why)
    return VenvResources(root=setup.root, uv=setup.uv, interpreters=found, sandbox=box)
