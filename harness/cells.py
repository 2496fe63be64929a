"""matrix -> cells: each kind's entries become cells (harness.kinds), with stable readable
ids; then the selection (``--select``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from harness import kinds
from harness.errors import InputError
from harness.kinds import Cell
from harness.matrix import Matrix

__all__ = ["Cell", "expand", "select"]


def expand(matrix: Matrix) -> list[Cell]:
    """All cells of the matrix: kind by kind (registration order), each in file order."""
    _finite_timeouts(matrix)
    cells: list[Cell] = []
    explicit: set[str] = set()  # ids written in the matrix (not derived)
    for kind in kinds.all_kinds():
        for entry in matrix.entries(kind.name):
            made = kind.cells(entry, entry.timeout or matrix.timeout)
            explicit |= {c.id for c in made} if entry.id else set()
            cells += made
    ids = [c.id for c in cells]
    for cid in ids:
        if ids.count(cid) < 2:
            continue
        if cid in explicit:
            raise InputError(f"{matrix.path}: environments: the id {cid!r} names two cells; "
                             "make every 'id' different (and unlike the derived ids, "
                             "see --list)")
        raise InputError(f"{matrix.path}: environments: two entries make the same cell id "
                         f"{cid!r}; give one of them an 'id'")
    return cells


def _finite_timeouts(matrix: Matrix) -> None:
    """YAML's .inf and .nan are numbers the schema lets through; no cell can wait for them."""
    entries: list[tuple[str, float | None]] = [("defaults.timeout", matrix.timeout)]
    for kind in kinds.all_kinds():
        entries += [(f"environments.{kind.name}[{i}].timeout", e.timeout)
                    for i, e in enumerate(matrix.entries(kind.name))]
    for key, value in entries:
        if value is not None and not math.isfinite(value):
            raise InputError(f"{matrix.path}: {key}: {value} is not a number of seconds; "
                             "give a finite number above 0")


def select(cells: Sequence[Cell], patterns: Iterable[str]) -> list[Cell]:
    """Cells matching any pattern (all cells when there is none)."""
    pats = [p for raw in patterns for p in raw.split(",") if p]
    if not pats:
        return list(cells)
    for p in pats:
        if not any(c.matches(p) for c in cells):
            raise InputError(f"--select {p!r} matches no cell; cells are: "
                             + ", ".join(c.id for c in cells))
    return [c for c in cells if any(c.matches(p) for p in pats)]


def check(cells: Sequence[Cell], source: str) -> None:
    """Each kind refuses the selected cells it can tell are wrong before a run."""
    for kind in kinds.all_kinds():
        mine = [c for c in cells if c.kind == kind.name]
        if mine:
            kind.check(mine, source)
