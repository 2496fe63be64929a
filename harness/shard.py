"""cells -> CI jobs: a matrix digest, deterministic shards, and the cell list as JSON.

A CI system's own job matrix is the distributed engine: ``--list --format json`` hands it the
cells (each with the runner OS it needs and the ``--shard`` that runs exactly that cell), and
``--shard I/N`` runs one slice. Shards are disjoint, together the whole selection, and
balanced by cell kind (round-robin within each kind), so no shard gets every container cell.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness import kinds
from harness.cells import Cell
from harness.errors import InputError
from harness.matrix import Matrix

_SPEC = re.compile(r"^(?P<index>\d+)/(?P<count>\d+)$")


@dataclass(frozen=True, kw_only=True)
class Shard:
    """Slice ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE = Shard(index=1, count=1)


def parse(spec: str) -> Shard:
    """``"I/N"`` -> Shard; anything else is an InputError."""
    m = _SPEC.match(spec.strip())
    if not m or not 1 <= int(m["index"]) <= int(m["count"]):
        raise InputError(f"--shard {spec!r}: give I/N with 1 <= I <= N, e.g. --shard 2/4")
    return Shard(index=int(m["index"]), count=int(m["count"]))


def _by_kind(cells: Sequence[Cell]) -> list[Cell]:
    """Cells grouped by kind (registration order), each group in selection order."""
    rank = {k.name: i for i, k in enumerate(kinds.all_kinds())}
    return sorted(cells, key=lambda c: rank[c.kind])


def positions(cells: Sequence[Cell], count: int) -> dict[str, int]:
    """Cell id -> its 1-based shard of ``count``: round-robin over the kind-grouped cells."""
    return {c.id: i % count + 1 for i, c in enumerate(_by_kind(cells))}


def select(cells: Sequence[Cell], shard: Shard) -> list[Cell]:
    """The cells of one shard, in selection order."""
    where = positions(cells, shard.count)
    return [c for c in cells if where[c.id] == shard.index]


def matrix_digest(m: Matrix, cells: Sequence[Cell]) -> str:
    """sha256 over the matrix file and the whole (unsharded) selection of cells."""
    data = {"matrix": hashlib.sha256(m.path.read_bytes()).hexdigest(),
            "cells": [{"id": c.id, "kind": c.kind, "timeout": c.timeout,
                       "entry": asdict(c.entry)} for c in cells]}
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def runner(cell: Cell) -> str:
    """The CI runner label a cell needs (its kind says)."""
    return kinds.of(cell).runner(cell)


def job_list(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    """The cells as CI matrix entries: id, kind, every kind's ``fields`` (None where a
    cell's kind has no such field), runner; ``shard`` makes ``--shard`` run exactly that
    cell."""
    where = positions(cells, len(cells))
    fields = {c.id: kinds.of(c).fields(c) for c in cells}
    keys = sorted({k for f in fields.values() for k in f})
    return [{"id": c.id, "kind": c.kind, **{k: fields[c.id].get(k) for k in keys},
             "runner": runner(c), "shard": f"{where[c.id]}/{len(cells)}"} for c in cells]
