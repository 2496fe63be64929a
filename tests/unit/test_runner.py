"""The run loop with a fake environment (the single seam): bound, cleanup, interruption."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

from harness.cells import Cell
from harness.environments.base import CellEnvironment, ProbeSpec
from harness.errors import InfrastructureError
from harness.kinds.venv import VenvEntry
from harness.runner import RunContext, run_all
from harness.stop import StopSignals
from harness.verdict import ProbeRun, Verdict
from tests.unit.conftest import PACKAGE, make_wheel, passing_events, release_of


class FakeEnvironment(CellEnvironment):
    """Sleeps, then reports a passing probe; records what happened to it."""

    log: ClassVar[list[str]] = []
    running = 0
    peak = 0
    guard = threading.Lock()

    def __init__(self, cell: Cell, delay: float) -> None:
        super().__init__()
        self.cell, self.delay = cell, delay
        self.stop = threading.Event()

    def run(self, spec: ProbeSpec, timeout: float) -> ProbeRun:
        with FakeEnvironment.guard:
            FakeEnvironment.running += 1
            FakeEnvironment.peak = max(FakeEnvironment.peak, FakeEnvironment.running)
        self.stop.wait(self.delay)
        with FakeEnvironment.guard:
            FakeEnvironment.running -= 1
        if self.stop.is_set():
            return ProbeRun(infra_error="interrupted")
        return ProbeRun(events=tuple(passing_events()), returncode=0)

    def abort(self) -> None:
        self.log.append(f"abort {self.cell.id}")
        self.stop.set()

    def close(self) -> None:
        self.log.append(f"close {self.cell.id}")


def cells(n: int) -> list[Cell]:
    return [Cell(id=f"c{i}", kind="venv", entry=VenvEntry(python="3.12"), timeout=10)
            for i in range(n)]


def context(tmp_path: Path) -> RunContext:
    return RunContext(run_id="r", root=tmp_path, release=release_of(make_wheel()), package=PACKAGE)


def test_bound_is_respected_and_every_environment_is_closed(tmp_path: Path) -> None:
    FakeEnvironment.log, FakeEnvironment.peak = [], 0
    results = run_all(cells(6), context(tmp_path), lambda c: FakeEnvironment(c, 0.1),
                      jobs=2)
    assert [r.verdict for r in results] == [Verdict.PASS] * 6
    assert FakeEnvironment.peak == 2
    assert sorted(FakeEnvironment.log) == sorted(f"close c{i}" for i in range(6))


def test_factory_failure_is_an_error_cell_not_a_crash(tmp_path: Path) -> None:
    def factory(cell: Cell) -> CellEnvironment:
        if cell.id == "c1":
            raise InfrastructureError("no Python 3.12 found")
        return FakeEnvironment(cell, 0)

    results = run_all(cells(3), context(tmp_path), factory, jobs=2)
    assert [r.verdict for r in results] == [Verdict.PASS, Verdict.ERROR, Verdict.PASS]
    assert results[1].reason == "no Python 3.12 found"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stop_signals_abort_running_cells_and_keep_finished_results(
        tmp_path: Path, signum: int) -> None:
    FakeEnvironment.log = []
    stop = StopSignals().install()
    ctx = RunContext(run_id="r", root=tmp_path, release=release_of(make_wheel()), package=PACKAGE,
                     interrupted=stop.event)

    def factory(cell: Cell) -> CellEnvironment:
        return FakeEnvironment(cell, 0.05 if cell.id == "c0" else 30)

    def storm() -> None:  # many signals, as a process group + nox's forwarding deliver them
        for _ in range(20):
            os.kill(os.getpid(), signum)
            time.sleep(0.01)

    sender = threading.Timer(0.5, storm)
    sender.start()
    start = time.monotonic()
    try:
        results = run_all(cells(4), ctx, factory, jobs=2)
    finally:
        sender.join()  # every signal handled before the default handler is back
        stop.uninstall()
    assert time.monotonic() - start < 5
    assert ctx.interrupted.is_set() and stop.received == signum
    by_id = {r.cell_id: r for r in results}
    assert by_id["c0"].verdict is Verdict.PASS
    assert all(by_id[c].verdict is Verdict.ERROR for c in ("c1", "c2", "c3"))
    assert "abort c1" in FakeEnvironment.log and "close c1" in FakeEnvironment.log
