"""Host cells: a fresh venv on the Windows or macOS machine the harness runs on (the
nightly's runners), one cell per system of the entry (``harness.environments.host``)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from harness.kinds.base import (
    ID,
    STR,
    VERSION,
    Cell,
    Entry,
    Kind,
    Platform,
    entry_of,
    entry_schema,
    slug,
)

if TYPE_CHECKING:
    from harness.environments.base import Resources, Setup

SYSTEMS = ("windows", "macos")  # the systems a host cell can run on
RUNNERS = {"windows": "windows-latest", "macos": "macos-latest"}


@dataclass(frozen=True, kw_only=True)
class HostEntry(Entry):
    """An interpreter on a Windows or macOS machine: a fresh venv per cell there; a cell's
    entry has its one system in ``os``."""

    python: str
    os: tuple[str, ...] = SYSTEMS


def system(cell: Cell) -> str:
    """The system a host cell must run on."""
    return entry_of(cell, HostEntry).os[0]


class HostKind(Kind):
    """``environments.host``: ``host-windows-py3.12`` (alias ``py3.12-windows``)."""

    name = "host"
    entry = HostEntry
    description = "A fresh venv on a Windows or macOS machine (the nightly runs them on its " \
                  "runners)."
    schema = entry_schema(["python"], {
        "python": {**STR, "description": "A version (3.12: found as for venv cells, on "
                   "Windows also through the py launcher) or an interpreter path on that "
                   "machine."},
        "os": {"type": "array", "minItems": 1, "uniqueItems": True,
               "items": {"enum": list(SYSTEMS)},
               "description": "Systems to run on (default: windows and macos); each cell "
                              "runs only on its own (a CI runner of that system)."},
        "id": {**ID, "description": "Cell id override (with several systems, -<os> is "
               "appended)."}})

    def parse(self, data: Mapping[str, Any]) -> HostEntry:
        """The entry, its systems as a tuple."""
        return HostEntry(**{**data, "os": tuple(data.get("os", SYSTEMS))})

    def cells(self, entry: HostEntry, timeout: float) -> list[Cell]:
        """One cell per system."""
        version = entry.python if VERSION.match(entry.python) else None
        out = []
        for name in entry.os:
            if entry.id:
                cid = entry.id if len(entry.os) == 1 else f"{entry.id}-{name}"
            else:
                py = f"py{version}" if version else slug(re.split(r"[\\/]", entry.python)[-1])
                cid = f"host-{name}-{py}"
            out.append(Cell(id=cid, kind=self.name, entry=replace(entry, os=(name,)),
                            timeout=timeout,
                            aliases=(f"py{version}-{name}",) if version else ()))
        return out

    def fields(self, cell: Cell) -> Mapping[str, str | None]:
        """The interpreter and the system."""
        return {"python": entry_of(cell, HostEntry).python, "system": system(cell)}

    def runner(self, cell: Cell) -> str:
        """A runner of the cell's system."""
        return RUNNERS[system(cell)]

    def platform(self, cell: Cell) -> Platform:
        """The cell's system (any machine: the installer decides)."""
        return Platform(system=system(cell))

    def prepare(self, setup: Setup, cells: Sequence[Cell]) -> Resources:
        """Find the interpreters of the cells that run on this machine."""
        from harness.environments import host

        return host.prepare(setup, cells)


KIND = HostKind()
