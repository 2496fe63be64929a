"""What every kind of cell provides, and the cell itself (no kind is named here).

A kind is one module under ``harness/kinds/``: its matrix entry (a frozen dataclass of its
own, so a new per-entry option lands in that module only), the entry's JSON schema, entries
-> cells, the fields ``--list`` shows, the CI runner a cell needs, the wheels' platform a cell
installs, and ``prepare`` (once per run) whose ``Resources.environment(cell)`` makes one cell's
environment. The modules are registered in ``harness.kinds`` (cibuildwheel's
``platforms/__init__.py``: one module per platform behind one interface).
"""

from __future__ import annotations

import fnmatch
import platform as _platform
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:  # the environments are imported by ``prepare`` only (heavy: docker...)
    from harness.environments.base import Resources, Setup

VERSION = re.compile(r"^\d+\.\d+$")

# JSON schema pieces every kind's entry uses
STR: Mapping[str, Any] = {"type": "string", "minLength": 1}
ID: Mapping[str, Any] = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                         "description": "Cell id override (letters, digits, . _ -)."}
TIMEOUT: Mapping[str, Any] = {"type": "number", "exclusiveMinimum": 0,
                              "description": "Seconds per cell."}


def entry_schema(required: Sequence[str], properties: Mapping[str, Any]) -> dict[str, Any]:
    """The schema of one matrix entry: the kind's properties plus ``id`` and ``timeout``."""
    return {"type": "object", "additionalProperties": False, "required": list(required),
            "properties": {**properties, "id": properties.get("id", ID), "timeout": TIMEOUT}}


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One entry under ``environments.<kind>`` in matrix.yaml; kinds subclass it with their
    own options (frozen, kw_only)."""

    id: str | None = None
    timeout: float | None = None


@dataclass(frozen=True, kw_only=True)
class Cell:
    """One environment the wheel is tested in.  ``entry`` is its matrix entry, narrowed to
    this one cell when the entry makes several (e.g. a host entry's ``os: [windows, macos]``)."""

    id: str
    kind: str
    entry: Entry
    timeout: float
    aliases: tuple[str, ...] = ()

    def matches(self, pattern: str) -> bool:
        """fnmatch against the id and the aliases (e.g. ``py3.9-*``)."""
        return any(fnmatch.fnmatchcase(name, pattern) for name in (self.id, *self.aliases))


E = TypeVar("E", bound=Entry)


def entry_of(cell: Cell, kind: type[E]) -> E:
    """The cell's entry as its kind's dataclass."""
    if not isinstance(cell.entry, kind):
        raise TypeError(f"cell {cell.id}: its entry is a {type(cell.entry).__name__}, "
                        f"not a {kind.__name__}")
    return cell.entry


@dataclass(frozen=True, kw_only=True)
class Platform:
    """Where a cell's Python runs: the wheels it can install."""

    system: str  # "linux", "windows", "macos"
    machine: str | None = None  # None: any (the installer checks)

    def installs(self, platform_tag: str) -> bool:
        """Whether a wheel of this platform tag can install there."""
        prefixes = SYSTEM_PLATFORM_TAGS.get(self.system, ())
        return platform_tag.startswith(prefixes) and (
            self.machine is None or platform_tag.endswith(f"_{self.machine}"))

    def __str__(self) -> str:
        return self.system if self.machine is None else f"{self.system.capitalize()} " \
            f"{self.machine}"


#: platform-tag prefixes a system installs
SYSTEM_PLATFORM_TAGS: Mapping[str, tuple[str, ...]] = {
    "linux": ("linux_", "manylinux", "musllinux"), "windows": ("win",), "macos": ("macosx",)}
THIS_LINUX = Platform(system="linux", machine=_platform.machine())


def slug(text: str) -> str:
    """Text as a cell-id part (``/usr/bin/python3.12`` -> ``-usr-bin-python3.12``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


class Kind(ABC):
    """One kind of cell, behind one interface."""

    name: ClassVar[str]  # the key under ``environments:`` and each cell's ``kind``
    entry: ClassVar[type[Entry]]  # its matrix entry
    schema: ClassVar[Mapping[str, Any]]  # JSON schema of one entry (see ``entry_schema``)
    description: ClassVar[str] = ""  # of ``environments.<name>`` in the schema

    def parse(self, data: Mapping[str, Any]) -> Entry:
        """One schema-valid entry as the kind's dataclass."""
        return self.entry(**data)

    @abstractmethod
    def cells(self, entry: Any, timeout: float) -> list[Cell]:
        """The cells of one entry (``timeout``: its own, else the matrix's default)."""

    @abstractmethod
    def fields(self, cell: Cell) -> Mapping[str, str | None]:
        """What ``--list`` shows of a cell besides id and kind; the first is the text
        listing's target column, all of them are keys of ``--list --format json``."""

    def runner(self, cell: Cell) -> str:
        """The CI runner label the cell needs (GitHub-hosted)."""
        return "ubuntu-latest"

    def platform(self, cell: Cell) -> Platform:
        """Where the cell's Python runs (which wheels it can install)."""
        return THIS_LINUX

    def check(self, cells: Sequence[Cell], source: str) -> None:
        """Refuse (InputError) selected cells this kind can tell are wrong before a run."""
        return

    @abstractmethod
    def prepare(self, setup: Setup, cells: Sequence[Cell]) -> Resources:
        """What the run's cells of this kind share (once per run; the kinds in parallel)."""
