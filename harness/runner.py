"""cells -> results: prepare the run once, run cells concurrently, clean up on any exit."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness import advice, timing
from harness.cells import Cell
from harness.checks import CheckStatus
from harness.diagnosis import explain
from harness.environments.base import CellEnvironment, ProbeSpec
from harness.errors import HarnessError, InfrastructureError
from harness.liveness import pid_alive
from harness.matrix import Package
from harness.verdict import (
    CellResult,
    CheckResult,
    ProbeRun,
    Verdict,
    check_order,
    judge,
    tested_wheel,
)
from harness.wheel import Release

TMP_PARENT = "q-kangaroo-smoke"
STOP_GRACE = 30.0  # seconds an aborted cell may take to stop before the run stops waiting

EnvironmentFactory = Callable[[Cell], CellEnvironment]  # prepare.Prepared.environment


@dataclass(kw_only=True)
class RunContext:
    """Everything shared by the cells of one run."""

    run_id: str
    root: Path
    release: Release  # its wheels staged in the run directory
    package: Package
    dependencies: Path | None = None  # the staged dependency wheelhouse, if the matrix has one
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


def _ours(path: Path, *, private: bool) -> bool:
    """A real directory (not a symlink) owned by this user (and closed to others)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()
            and not (private and st.st_mode & 0o077))


def private_parent() -> Path:
    """``$TMPDIR/q-kangaroo-smoke-<uid>``: this user's, mode 0700, never someone else's."""
    parent = Path(tempfile.gettempdir()) / f"{TMP_PARENT}-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        parent.mkdir(mode=0o700)
    if not _ours(parent, private=True):
        raise InfrastructureError(
            f"{parent}: exists but is not a private directory of this user (a symlink, "
            "another owner, or open to others); remove it, or set TMPDIR to a directory "
            "only you can write")
    return parent


def reap_temp_dirs(parent: Path) -> list[Path]:
    """Remove this user's run directories whose harness process no longer exists."""
    removed: list[Path] = []
    if not _ours(parent, private=True):
        return removed
    for run_dir in parent.glob("run-*"):
        if not _ours(run_dir, private=False):
            continue
        try:
            pid = int((run_dir / "owner.pid").read_text())
        except (OSError, ValueError):
            pid = 0
        if not pid_alive(pid):
            shutil.rmtree(run_dir, ignore_errors=True)
            removed.append(run_dir)
    return removed


def _stage(files: Sequence[Path], directory: Path) -> None:
    """Byte copies of ``files`` in a new ``directory`` readable by a container's uid."""
    directory.mkdir(mode=0o755)  # read by uid 1000 in containers
    for path in files:
        target = directory / path.name
        shutil.copyfile(path, target)
        target.chmod(0o644)


@dataclass(frozen=True, kw_only=True)
class Staged:
    """Where a run's files are: its id, private directory, wheels and dependency wheels."""

    run_id: str
    root: Path
    wheels: Path  # every wheel of the release set, nothing else (the installer picks)
    dependencies: Path | None


def _claim(parent: Path, run_id: str) -> Path:
    """A new run directory that is this process's from the moment the reaper can see it:
    made under a name the reaper ignores, its owner.pid written, then renamed to run-*."""
    born = Path(tempfile.mkdtemp(prefix=f".new-run-{run_id}-", dir=parent))
    try:
        (born / "owner.pid").write_text(str(os.getpid()))
        root = parent / born.name[len(".new-"):]
        born.rename(root)
    except BaseException:
        shutil.rmtree(born, ignore_errors=True)
        raise
    return root


@contextmanager
def run_directory(wheels: Sequence[Path], dependencies: Path | None = None
                  ) -> Iterator[Staged]:
    """A private temp dir for the run (mkdtemp: 0700, this user's) holding staged copies of
    every wheel of the set (and of the dependency wheelhouse's wheels); always removed.
    Leftovers of this user's killed runs are reaped first."""
    parent = private_parent()
    reap_temp_dirs(parent)
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    root = _claim(parent, run_id)
    try:
        _stage(wheels, root / "wheel")
        deps = None
        if dependencies is not None:
            deps = root / "deps"
            _stage(sorted(dependencies.glob("*.whl")), deps)
        yield Staged(run_id=run_id, root=root, wheels=root / "wheel", dependencies=deps)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def error_result(cell: Cell, package: Package, reason: str) -> CellResult:
    """A cell that could not be run at all."""
    return CellResult(cell_id=cell.id, kind=cell.kind, verdict=Verdict.ERROR, reason=reason,
                      checks=tuple(CheckResult(name=n, status=CheckStatus.NOT_RUN, code="not-run")
                                   for n in check_order(package)))


def run_cell(cell: Cell, ctx: RunContext, factory: EnvironmentFactory) -> CellResult:
    """One cell, start to finish: environment, probe, verdict, diagnosis."""
    if ctx.interrupted.is_set():
        return error_result(cell, ctx.package, "interrupted before start")
    start = time.monotonic()
    timing.begin(cell.id)
    try:
        env = factory(cell)
    except HarnessError as exc:
        return error_result(cell, ctx.package, str(exc))
    timing.mark("environment (once its kind is prepared)")
    with env:
        with ctx.lock:
            ctx.live.add(env)
        if ctx.interrupted.is_set():  # abort_all may have listed the live cells just before
            env.abort()
        try:
            run = env.run(ProbeSpec(package=ctx.package, release=ctx.release,
                                    dependencies=ctx.dependencies), cell.timeout)
        finally:
            with ctx.lock:
                ctx.live.discard(env)
        timing.probe(cell.id, run.events)
    timing.mark("teardown")
    if ctx.interrupted.is_set() and run.infra_error is None and not run.events:
        run = ProbeRun(infra_error="interrupted", environment=run.environment)
    result = judge(run, cell_id=cell.id, kind=cell.kind, release=ctx.release,
                   package=ctx.package, emulated=env.emulated)
    if env.note and result.verdict is Verdict.INVALID:
        result = replace(result, reason=f"{result.reason} ({env.note})")
    if env.emulation and result.verdict is Verdict.TIMEOUT:
        result = replace(result, reason=f"{result.reason} (under emulation: {env.emulation})")
    if env.kept:
        result = replace(result, reason=f"{result.reason} [kept for an hour: docker exec -it "
                         f"{env.kept} sh (the venv is /tmp/cell/venv); then docker rm -fv "
                         f"{env.kept}]")
    result = replace(result, seconds=time.monotonic() - start)
    timing.mark("judge")
    if result.verdict is Verdict.UNCOVERED and len(ctx.release.wheels) > 1:
        return result  # the fallback says it all; no one wheel to blame
    sdist = ctx.release.files.sdist
    explained = explain(result, tested_wheel(ctx.release, result), ctx.package,
                        advice.source_of(sdist.path if sdist is not None else None))
    timing.mark("diagnosis")
    return explained


def run_all(cells: Sequence[Cell], ctx: RunContext, factory: EnvironmentFactory, *, jobs: int,
            on_start: Callable[[Cell], None] = lambda c: None,
            on_result: Callable[[CellResult], None] = lambda r: None,
            grace: float = STOP_GRACE) -> list[CellResult]:
    """Run cells with at most ``jobs`` at once; when ``ctx.interrupted`` is set (a stop
    signal), abort every live cell, keep what finished, and return within ``grace`` seconds.

    Cells that were interrupted or never started come back as ERROR "interrupted".
    """
    results: dict[str, CellResult] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="cell")

    def task(cell: Cell) -> CellResult:
        if ctx.interrupted.is_set():
            return error_result(cell, ctx.package, "interrupted before start")
        on_start(cell)
        return run_cell(cell, ctx, factory)

    def collect(fut: Future[CellResult], cell: Cell) -> None:
        if fut.cancelled():
            result = error_result(cell, ctx.package, "interrupted before start")
        elif (exc := fut.exception()) is not None:  # a harness fault: never lose the others
            result = error_result(cell, ctx.package, f"harness fault: {exc!r}")
        else:
            result = fut.result()
        results[cell.id] = result
        on_result(result)

    futures: dict[Future[CellResult], Cell] = {pool.submit(task, c): c for c in cells}
    pending = set(futures)
    deadline: float | None = None
    try:
        while pending:
            if deadline is None and ctx.interrupted.is_set():
                deadline = time.monotonic() + grace
                for fut in pending:
                    fut.cancel()
                ctx.abort_all()
            if deadline is not None and time.monotonic() > deadline:
                break
            done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            for fut in done:
                collect(fut, futures[fut])
    finally:
        pool.shutdown(wait=not pending, cancel_futures=True)
    for fut in pending:  # did not stop within the grace period: reported, not waited for
        result = error_result(futures[fut], ctx.package,
                              f"interrupted: the cell did not stop within {grace:g} s")
        results[result.cell_id] = result
        on_result(result)
    return [results[c.id] for c in cells if c.id in results]
