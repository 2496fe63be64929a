"""cells -> results: prepare the run once, run cells concurrently, clean up on any exit."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

from harness.cells import Cell
from harness.checks import CheckStatus
from harness.diagnosis import explain
from harness.environments.base import CellEnvironment, ProbeSpec
from harness.errors import HarnessError
from harness.liveness import pid_alive
from harness.matrix import Package
from harness.verdict import CellResult, CheckResult, ProbeRun, Verdict, check_order, judge
from harness.wheel import WheelInfo

TMP_PARENT = "q-kangaroo-smoke"

EnvironmentFactory = Callable[[Cell, "RunContext"], CellEnvironment]


@dataclass(kw_only=True)
class RunContext:
    """Everything shared by the cells of one run."""

    run_id: str
    root: Path
    wheel: WheelInfo
    package: Package
    keep_failed: bool = False
    resources: dict[str, Any] = field(default_factory=dict)
    live: set[CellEnvironment] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    interrupted: threading.Event = field(default_factory=threading.Event)

    def abort_all(self) -> None:
        """Stop every running cell (Ctrl-C, SIGTERM)."""
        self.interrupted.set()
        with self.lock:
            envs = list(self.live)
        for env in envs:
            env.abort()


def reap_temp_dirs(parent: Path) -> list[Path]:
    """Remove run directories whose harness process no longer exists."""
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    for run_dir in parent.glob("run-*"):
        try:
            pid = int((run_dir / "owner.pid").read_text())
        except (OSError, ValueError):
            pid = 0
        if not pid_alive(pid):
            shutil.rmtree(run_dir, ignore_errors=True)
            removed.append(run_dir)
    return removed


@contextmanager
def run_directory(wheel_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """A private temp dir for the run holding a staged copy of the wheel; always removed."""
    parent = Path(tempfile.gettempdir()) / TMP_PARENT
    parent.mkdir(mode=0o755, exist_ok=True)
    reap_temp_dirs(parent)
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    root = parent / f"run-{run_id}"
    root.mkdir(mode=0o755)
    try:
        (root / "owner.pid").write_text(str(os.getpid()))
        staged = root / "wheel"
        staged.mkdir(mode=0o755)
        target = staged / wheel_path.name
        shutil.copyfile(wheel_path, target)
        target.chmod(0o644)
        yield run_id, root, target
    finally:
        shutil.rmtree(root, ignore_errors=True)


def error_result(cell: Cell, package: Package, reason: str) -> CellResult:
    """A cell that could not be run at all."""
    return CellResult(cell_id=cell.id, kind=cell.kind, verdict=Verdict.ERROR, reason=reason,
                      checks=tuple(CheckResult(name=n, status=CheckStatus.NOT_RUN)
                                   for n in check_order(package)))


def run_cell(cell: Cell, ctx: RunContext, factory: EnvironmentFactory) -> CellResult:
    """One cell, start to finish: environment, probe, verdict, diagnosis."""
    if ctx.interrupted.is_set():
        return error_result(cell, ctx.package, "interrupted before start")
    start = time.monotonic()
    try:
        env = factory(cell, ctx)
    except HarnessError as exc:
        return error_result(cell, ctx.package, str(exc))
    with env:
        with ctx.lock:
            ctx.live.add(env)
        try:
            run = env.run(ProbeSpec(package=ctx.package, wheel=ctx.wheel), cell.timeout)
        finally:
            with ctx.lock:
                ctx.live.discard(env)
    if ctx.interrupted.is_set() and run.infra_error is None and not run.events:
        run = ProbeRun(infra_error="interrupted", environment=run.environment)
    result = judge(run, cell_id=cell.id, kind=cell.kind, wheel=ctx.wheel, package=ctx.package)
    note = ctx.resources.get(f"note:{cell.kind}")
    if note and result.verdict is Verdict.INVALID:
        result = replace(result, reason=f"{result.reason} ({note})")
    kept = getattr(env, "kept", None)
    if kept:
        result = replace(result, reason=f"{result.reason} [kept for an hour: docker exec -it "
                         f"{kept} sh (the venv is /tmp/cell/venv); then docker rm -f {kept}]")
    return explain(replace(result, seconds=time.monotonic() - start), ctx.wheel, ctx.package)


class _Interrupt(Exception):
    pass


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise _Interrupt(signal.Signals(signum).name)


def run_all(cells: Sequence[Cell], ctx: RunContext, factory: EnvironmentFactory, *, jobs: int,
            on_start: Callable[[Cell], None] = lambda c: None,
            on_result: Callable[[CellResult], None] = lambda r: None) -> list[CellResult]:
    """Run cells with at most ``jobs`` at once; on SIGINT/SIGTERM stop all, keep what finished.

    Cells that were interrupted or never started come back as ERROR "interrupted"; the
    caller checks ``ctx.interrupted``.
    """
    results: dict[str, CellResult] = {}
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        for s in old:
            signal.signal(s, _raise_interrupt)
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="cell")

    def task(cell: Cell) -> CellResult:
        on_start(cell)
        return run_cell(cell, ctx, factory)

    futures: dict[Future[CellResult], Cell] = {pool.submit(task, c): c for c in cells}
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for fut in done:
                result = fut.result()
                results[result.cell_id] = result
                on_result(result)
    except (_Interrupt, KeyboardInterrupt):
        if in_main:  # a second Ctrl-C must not cut the clean-up short
            for s in old:
                signal.signal(s, signal.SIG_IGN)
        ctx.abort_all()
        for fut in futures:
            fut.cancel()
        for fut, cell in futures.items():
            if cell.id in results:
                continue
            try:
                result = fut.result(timeout=60) if not fut.cancelled() else error_result(
                    cell, ctx.package, "interrupted before start")
            except Exception as exc:  # report it, never lose the others
                result = error_result(cell, ctx.package, f"interrupted: {exc}")
            results[cell.id] = result
            on_result(result)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if in_main:
            for s, handler in old.items():
                signal.signal(s, handler)
    return [results[c.id] for c in cells if c.id in results]
