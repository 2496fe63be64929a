"""Venv cells: a fresh venv per cell from an interpreter of this Linux host, in a sandbox
that hides the bundled libraries (``harness.environments.venv``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness import emulation
from harness.kinds.base import STR, VERSION, Cell, Entry, Kind, entry_of, entry_schema, slug

if TYPE_CHECKING:
    from harness.environments.base import Resources, Setup


@dataclass(frozen=True, kw_only=True)
class VenvEntry(Entry):
    """A host interpreter: a fresh venv per cell."""

    python: str
    cpu: str | None = None  # a floor cell: the CPU qemu-user emulates (harness.emulation)


class VenvKind(Kind):
    """``environments.venv``: ``venv-py3.12`` (alias ``py3.12-venv``)."""

    name = "venv"
    entry = VenvEntry
    schema = entry_schema(["python"], {
        "python": {**STR, "description": "A version (3.12: found on PATH or via pyenv) "
                   "or an explicit interpreter path."}, "cpu": emulation.CPU_SCHEMA})

    def cells(self, entry: VenvEntry, timeout: float) -> list[Cell]:
        """One cell per entry, named after its Python version (or interpreter file)."""
        aliases: tuple[str, ...] = ()
        if VERSION.match(entry.python):
            cid, aliases = f"venv-py{entry.python}", (f"py{entry.python}-venv",)
        else:
            cid = f"venv-{slug(entry.python.rsplit('/', 1)[-1])}"
        if entry.cpu:  # venv-py3.12-x86-64-v1, its budgets scaled for emulation
            cid, aliases, timeout = emulation.floor_cell(entry.cpu, cid, aliases, timeout)
        return [Cell(id=entry.id or cid, kind=self.name, entry=entry, timeout=timeout,
                     aliases=aliases)]

    def fields(self, cell: Cell) -> Mapping[str, str | None]:
        """The interpreter."""
        entry = entry_of(cell, VenvEntry)
        return {"python": entry.python, "cpu": entry.cpu}

    def check(self, cells: Sequence[Cell], source: str) -> None:
        """Floor cells: a known CPU, and qemu-user there."""
        emulation.check([c for c in (entry_of(x, VenvEntry).cpu for x in cells) if c], source)

    def prepare(self, setup: Setup, cells: Sequence[Cell]) -> Resources:
        """Find the interpreters, build the run's sandbox."""
        from harness.environments import venv

        return venv.prepare(setup, cells)


KIND = VenvKind()
