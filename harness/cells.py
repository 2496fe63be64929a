"""matrix -> cells: one cell per environment entry, with a stable readable id."""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from harness.errors import InputError
from harness.matrix import Matrix

_VERSION = re.compile(r"^\d+\.\d+$")
_RECIPE = re.compile(r"^(?P<os>[a-z0-9.]+)-py(?P<py>\d+\.\d+)$")


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One environment the wheel is tested in."""

    id: str
    kind: Literal["venv", "container", "host"]
    python: str | None
    image: str | None
    timeout: float
    aliases: tuple[str, ...] = ()
    system: str | None = None  # host cells: the system they must run on (windows, macos)

    def matches(self, pattern: str) -> bool:
        """fnmatch against the id and the aliases (e.g. ``py3.9-*``)."""
        return any(fnmatch.fnmatchcase(name, pattern) for name in (self.id, *self.aliases))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def expand(matrix: Matrix) -> list[Cell]:
    """All cells of the matrix: venvs, containers, hosts, each in file order."""
    _finite_timeouts(matrix)
    cells: list[Cell] = []
    explicit: set[str] = set()  # ids written in the matrix (not derived)
    for v in matrix.venvs:
        aliases: tuple[str, ...]
        if _VERSION.match(v.python):
            cid, aliases = f"venv-py{v.python}", (f"py{v.python}-venv",)
        else:
            cid, aliases = f"venv-{_slug(v.python.rsplit('/', 1)[-1])}", ()
        explicit |= {v.id} if v.id else set()
        cells.append(Cell(id=v.id or cid, kind="venv", python=v.python, image=None,
                          timeout=v.timeout or matrix.timeout, aliases=aliases))
    for c in matrix.containers:
        m = _RECIPE.match(c.image)
        aliases = (f"py{m['py']}-{m['os']}",) if m else ()  # e.g. py3.9-debian11
        explicit |= {c.id} if c.id else set()
        cells.append(Cell(id=c.id or f"docker-{_slug(c.image)}", kind="container",
                          python=c.python, image=c.image,
                          timeout=c.timeout or matrix.timeout, aliases=aliases))
    for h in matrix.hosts:
        version = h.python if _VERSION.match(h.python) else None
        for system in h.os:
            if h.id:
                cid = h.id if len(h.os) == 1 else f"{h.id}-{system}"
                explicit.add(cid)
            else:
                name = f"py{version}" if version else _slug(re.split(r"[\\/]", h.python)[-1])
                cid = f"host-{system}-{name}"
            cells.append(Cell(id=cid, kind="host", python=h.python, image=None,
                              timeout=h.timeout or matrix.timeout, system=system,
                              aliases=(f"py{version}-{system}",) if version else ()))
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
    entries += [(f"environments.venv[{i}].timeout", v.timeout)
                for i, v in enumerate(matrix.venvs)]
    entries += [(f"environments.container[{i}].timeout", c.timeout)
                for i, c in enumerate(matrix.containers)]
    entries += [(f"environments.host[{i}].timeout", h.timeout)
                for i, h in enumerate(matrix.hosts)]
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
