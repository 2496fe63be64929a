"""Prepare what the cells share, once per run: each kind's ``prepare`` (harness.kinds),
side by side."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from harness import kinds, timing
from harness.cells import Cell
from harness.environments.base import CellEnvironment, Log, Resources, Setup
from harness.errors import InfrastructureError
from harness.matrix import Package
from harness.stop import Stopped


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """What the run's cells share, by kind of cell; ``environment`` is the cell factory."""

    kinds: Mapping[str, Resources]

    def environment(self, cell: Cell) -> CellEnvironment:
        """The real environment for a cell (tests substitute their own factory)."""
        return self.kinds[cell.kind].environment(cell)


def _uv() -> str:
    import uv

    return str(uv.find_uv_bin())


class Preparing:
    """Each kind's ``prepare`` under way in its own thread: a cell waits for its own kind
    only (venv cells run while the images are checked or built)."""

    def __init__(self, jobs: Mapping[str, Future[Resources]], stop: threading.Event) -> None:
        self.jobs = jobs
        self.stop = stop

    def environment(self, cell: Cell) -> CellEnvironment:
        """The cell's environment once its kind is prepared; InfrastructureError if a stop
        signal came first."""
        job = self.jobs[cell.kind]
        while not wait([job], timeout=0.1).done:
            if self.stop.is_set():
                raise InfrastructureError(f"{cell.id}: not prepared (the run was stopped)")
        try:
            resources = job.result()
        except Stopped as exc:  # an image build unwound after a stop signal
            raise InfrastructureError(f"{cell.id}: not prepared (the run was stopped)") from exc
        return resources.environment(cell)

    def wait(self, timeout: float | None = None) -> Prepared:
        """Every kind prepared (``timeout``: TimeoutError); a kind's failure is raised."""
        pending = wait(self.jobs.values(), timeout=timeout).not_done
        if pending:
            raise TimeoutError(f"{len(pending)} kind(s) of cell still preparing")
        return Prepared(kinds={kind: job.result() for kind, job in self.jobs.items()})


def start(cells: Sequence[Cell], *, run_id: str, root: Path, package: Package, log: Log,
          stop: threading.Event | None = None, keep_failed: bool = False,
          build_images: bool = True) -> Preparing:
    """Start preparing what the selected cells need, each kind in its own thread."""
    # once, before the threads: uv's lookup loads sysconfig, which is not thread-safe then
    setup = Setup(run_id=run_id, root=root, package=package, uv=_uv(), log=log,
                  keep_failed=keep_failed, build_images=build_images)
    timing.mark("prepare: find uv")
    wanted = {k: [c for c in cells if c.kind == k.name] for k in kinds.all_kinds()}
    pool = ThreadPoolExecutor(max_workers=len(wanted), thread_name_prefix="prepare")
    jobs = {k.name: pool.submit(k.prepare, setup, chosen) for k, chosen in wanted.items()
            if chosen}
    pool.shutdown(wait=False)  # its threads end with their kind's prepare
    return Preparing(jobs, stop or threading.Event())


def prepare(cells: Sequence[Cell], *, run_id: str, root: Path, package: Package, log: Log,
            keep_failed: bool = False, build_images: bool = True) -> Prepared:
    """Everything the selected cells need, the kinds side by side; returns when all are."""
    return start(cells, run_id=run_id, root=root, package=package, log=log,
                 keep_failed=keep_failed, build_images=build_images).wait()
