"""Prepare what the cells share, once per run: each kind's ``prepare`` (harness.kinds),
side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness import kinds, timing
from harness.cells import Cell
from harness.environments.base import CellEnvironment, Log, Resources, Setup
from harness.matrix import Package


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
    wanted = {k: [c for c in cells if c.kind == k.name] for k in kinds.all_kinds()}
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        jobs = {k.name: pool.submit(k.prepare, setup, chosen)
                for k, chosen in wanted.items() if chosen}
        prepared = Prepared(kinds={kind: job.result() for kind, job in jobs.items()})
    timing.mark("prepare: every kind")
    return prepared
