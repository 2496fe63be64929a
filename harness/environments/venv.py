"""Venv cells: a fresh venv from a host interpreter, in a sandbox that hides native libs."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from harness.environments.base import CellEnvironment, ProbeSpec, cell_variables, parse_events
from harness.sandbox import Sandbox
from harness.verdict import ProbeRun


class VenvEnvironment(CellEnvironment):
    """One cell on the host: own temp dir, allowlisted env, always its own namespaces."""

    kind = "venv"

    def __init__(self, *, python: Path, run_root: Path, sandbox: Sandbox, uv: str,
                 cell_id: str) -> None:
        super().__init__()
        self.python = python
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
        argv = self.sandbox.wrap(spec.argv(str(self.python), wheel_path=str(spec.wheel.path),
                                           uv=self.uv, workdir=str(self.workdir / "cell")))
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
