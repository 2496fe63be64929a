"""Stop signals at random moments, repeated, to the harness's whole process group (directly
and through nox): exit 130, report marked interrupted, nothing left, no traceback."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.runner import private_parent
from tests.conftest import ROOT, smoke_containers

HANG = {"name": "hang", "expr": "__import__('time').sleep(600)", "expected": None}


def storm(proc: subprocess.Popen[str], rng: random.Random) -> str:
    """One to five SIGINT/SIGTERM to the process group, a few ms apart."""
    sent = []
    for _ in range(rng.randint(1, 5)):
        sig = rng.choice([signal.SIGINT, signal.SIGTERM])
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        sent.append(sig.name)
        time.sleep(rng.uniform(0, 0.05))
    return " ".join(sent)


def assert_stopped_clean(proc: subprocess.Popen[str], reports: Path, docker_client: Any,
                         what: str) -> float:
    """Exit 130 within seconds, report marked interrupted, no container/run dir/traceback."""
    start = time.monotonic()
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{what}: still running 20 s after the signals:\n{out[-3000:]}")
    took = time.monotonic() - start
    assert proc.returncode == 130, f"{what}: exit {proc.returncode}\n{out[-3000:]}"
    assert "Traceback" not in out, f"{what}:\n{out[-3000:]}"
    report = json.loads((reports / "smoke.json").read_text())
    assert report["interrupted"] is True and report["exit_code"] == 130, what
    assert not list(reports.glob("*.tmp"))
    run_id = report["run_id"]
    assert smoke_containers(docker_client, run=run_id) == [], what
    assert not list(private_parent().glob(f"run-{run_id}-*")), what
    return took


@pytest.fixture
def hanging_matrix(matrix_file: Callable[..., Path], images: Any) -> Path:
    """Venv and container cells whose check hangs: only a signal ends the run early."""
    return matrix_file(venv=[{"python": "3.11"}, {"python": "3.12"}],
                       container=[{"image": "debian12-py3.11"}, {"image": "debian13-py3.13"}],
                       extra_checks=[HANG], timeout=300, jobs=2)


def test_signals_at_random_moments_to_the_process_group(
        tmp_path: Path, wheels: dict[str, Path], hanging_matrix: Path,
        docker_client: Any) -> None:
    rng = random.Random(os.environ.get("SIGNAL_TEST_SEED", "8"))
    moments = [0.3, 0.8, 1.5, 2.5, 4.0, 6.0]  # importing, preparing, installing, hanging cells
    rng.shuffle(moments)
    for i, delay in enumerate(moments):
        reports = tmp_path / f"r{i}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", str(wheels["good"]), "--matrix",
             str(hanging_matrix), "--report-dir", str(reports), "--no-build-images"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        time.sleep(delay + rng.uniform(0, 0.3))
        sent = storm(proc, rng)
        took = assert_stopped_clean(proc, reports, docker_client, f"after {delay} s: {sent}")
        assert took < 10, f"after {delay} s: {sent}: took {took:.1f} s to stop"


def test_signals_through_nox(tmp_path: Path, wheels: dict[str, Path], hanging_matrix: Path,
                             docker_client: Any) -> None:
    """nox forwards what the group already got: the harness sees every signal twice."""
    rng = random.Random(9)
    subprocess.run([sys.executable, "-m", "nox", "-s", "smoke", "--", "--list"], cwd=ROOT,
                   check=True, capture_output=True)  # the session's venv, made once
    for i, delay in enumerate([1.0, 3.5]):
        reports = tmp_path / f"n{i}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "nox", "-s", "smoke", "--", str(wheels["good"]),
             "--matrix", str(hanging_matrix), "--report-dir", str(reports),
             "--no-build-images"], cwd=ROOT, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while not any(child_runs_harness(proc.pid)):  # signal the harness's moments, not nox's
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        time.sleep(delay)
        sent = storm(proc, rng)
        assert_stopped_clean(proc, reports, docker_client, f"nox, after {delay} s: {sent}")


def child_runs_harness(pid: int) -> list[int]:
    """Children of ``pid`` running ``-m harness``."""
    out = subprocess.run(["pgrep", "-P", str(pid), "-f", "python -m harness "],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]
