"""Prepare what the cells share, once per run: one ``prepare`` per kind of cell, side by side.

A new kind of cell is one module under ``environments/`` with a ``prepare`` and one line in
``KINDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness import timing
from harness.cells import Cell
from harness.environments import container, host, venv
from harness.environments.base import CellEnvironment, Log, Resources, Setup
from harness.matrix import Package

Preparer = Callable[[Setup, Sequence[Cell]], Resources]
KINDS: Mapping[str, Preparer] = {"venv": venv.prepare, "container": container.prepare,
                                 "host": host.prepare}


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


def prepare(cells: Sequence[Cell], *, run_id: str, root: Path, package: Package, log: Log,
            keep_failed: bool = False, build_images: bool = True) -> Prepared:
    """Everything the selected cells need; the kinds are independent, so prepared in parallel."""
    # once, before the threads: uv's lookup loads sysconfig, which is not thread-safe then
    setup = Setup(run_id=run_id, root=root, package=package, uv=_uv(), log=log,
                  keep_failed=keep_failed, build_images=build_images)
    timing.mark("prepare: find uv")
    wanted = {kind: [c for c in cells if c.kind == kind] for kind in KINDS}
    with ThreadPoolExecutor(max_workers=len(KINDS)) as pool:
        jobs = {kind: pool.submit(KINDS[kind], setup, chosen)
                for kind, chosen in wanted.items() if chosen}
        prepared = Prepared(kinds={kind: job.result() for kind, job in jobs.items()})
    timing.mark("prepare: every kind")
    return prepared
