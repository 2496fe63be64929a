"""Container cells: a fresh locked-down container per cell of a clean image (a recipe under
images/, or any image reference), through the docker SDK (``harness.environments.container``)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness import arches, emulation
from harness.errors import InputError
from harness.kinds.base import STR, Cell, Entry, Kind, Platform, entry_of, entry_schema, slug

if TYPE_CHECKING:
    from harness.environments.base import Resources, Setup

_RECIPE = re.compile(r"^(?P<os>[a-z0-9.]+)-py(?P<py>\d+\.\d+)$")


@dataclass(frozen=True, kw_only=True)
class ContainerEntry(Entry):
    """An image: a fresh locked-down container per cell."""

    image: str
    python: str | None = None
    arch: str | None = None  # another architecture than the host's: run under emulation
    cpu: str | None = None  # a floor cell: the CPU qemu-user emulates (harness.emulation)


def cell_arch(cell: Cell) -> str:
    """The architecture a cell's Python runs on (a container cell's ``arch``, else the
    host's)."""
    arch = getattr(cell.entry, "arch", None)
    return str(arch) if arch else arches.host().name


class ContainerKind(Kind):
    """``environments.container``: ``docker-debian11-py3.9`` (alias ``py3.9-debian11``)."""

    name = "container"
    entry = ContainerEntry
    schema = entry_schema(["image"], {
        "image": {**STR, "description": "A recipe name under images/ or any image ref."},
        "python": {**STR, "description": "Interpreter inside the image (default: the "
                   "recipe's, else python3)."},
        "arch": {"enum": list(arches.ARCHES), "description": "Architecture of the image "
                 "(default: the host's); another one runs under qemu-user through "
                 "binfmt_misc, a recipe's image is built for it (only recipes of a Debian "
                 "suite's own Python)."}, "cpu": emulation.CPU_SCHEMA})

    def cells(self, entry: ContainerEntry, timeout: float) -> list[Cell]:
        """One cell per entry, named after its image (and its architecture if foreign)."""
        m = _RECIPE.match(entry.image)
        aliases: tuple[str, ...] = (f"py{m['py']}-{m['os']}",) if m else ()  # py3.9-debian11
        cid = f"docker-{slug(entry.image)}"
        if arches.is_foreign(entry.arch):  # docker-debian11-py3.9-aarch64
            cid, aliases = f"{cid}-{entry.arch}", tuple(f"{a}-{entry.arch}" for a in aliases)
        if entry.cpu:  # docker-debian12-py3.12-x86-64-v1, its budgets scaled for emulation
            cid, aliases, timeout = emulation.floor_cell(entry.cpu, cid, aliases, timeout)
        return [Cell(id=entry.id or cid, kind=self.name, entry=entry, timeout=timeout,
                     aliases=aliases)]

    def fields(self, cell: Cell) -> Mapping[str, str | None]:
        """The image, the interpreter in it when the matrix names one, its architecture."""
        entry = entry_of(cell, ContainerEntry)
        return {"image": entry.image, "python": entry.python, "arch": cell_arch(cell),
                "cpu": entry.cpu}

    def platform(self, cell: Cell) -> Platform:
        """Linux of the cell's architecture."""
        return Platform(system="linux", machine=cell_arch(cell))

    def check(self, cells: Sequence[Cell], source: str) -> None:
        """A bare name must be a recipe (one that builds for the cell's architecture);
        anything else must look like an image reference."""
        from harness.imaging import ImageError, for_arch, load_recipes

        recipes = load_recipes()
        for cell in cells:
            entry = entry_of(cell, ContainerEntry)
            ref = entry.image
            if ref not in recipes and not any(ch in ref for ch in ":/@"):
                raise InputError(f"{source}: environments.container: image {ref!r} is not a "
                                 f"recipe under images/ ({', '.join(sorted(recipes))}); for an "
                                 f"image reference give its tag, e.g. {ref}:latest")
            if ref in recipes and entry.arch:
                try:
                    for_arch(recipes[ref], entry.arch)
                except ImageError as exc:
                    raise InputError(f"{source}: environments.container: {exc}") from None
            if entry.cpu and arches.is_foreign(entry.arch):
                raise InputError(f"{source}: environments.container: cpu: {entry.cpu} is for "
                                 f"cells of this machine's architecture ({arches.host().name}), "
                                 f"not arch: {entry.arch}")
        emulation.check([c for c in (entry_of(x, ContainerEntry).cpu for x in cells) if c],
                        source)

    def prepare(self, setup: Setup, cells: Sequence[Cell]) -> Resources:
        """Connect to the engine, reap leftovers, build missing recipe images."""
        from harness.environments import container

        return container.prepare(setup, cells)


KIND = ContainerKind()
