"""Container cells: a fresh locked-down container per cell of a clean image (a recipe under
images/, or any image reference), through the docker SDK (``harness.environments.container``)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.errors import InputError
from harness.kinds.base import STR, Cell, Entry, Kind, entry_of, entry_schema, slug

if TYPE_CHECKING:
    from harness.environments.base import Resources, Setup

_RECIPE = re.compile(r"^(?P<os>[a-z0-9.]+)-py(?P<py>\d+\.\d+)$")


@dataclass(frozen=True, kw_only=True)
class ContainerEntry(Entry):
    """An image: a fresh locked-down container per cell."""

    image: str
    python: str | None = None


class ContainerKind(Kind):
    """``environments.container``: ``docker-debian11-py3.9`` (alias ``py3.9-debian11``)."""

    name = "container"
    entry = ContainerEntry
    schema = entry_schema(["image"], {
        "image": {**STR, "description": "A recipe name under images/ or any image ref."},
        "python": {**STR, "description": "Interpreter inside the image (default: the "
                   "recipe's, else python3)."}})

    def cells(self, entry: ContainerEntry, timeout: float) -> list[Cell]:
        """One cell per entry, named after its image."""
        m = _RECIPE.match(entry.image)
        aliases = (f"py{m['py']}-{m['os']}",) if m else ()  # e.g. py3.9-debian11
        return [Cell(id=entry.id or f"docker-{slug(entry.image)}", kind=self.name,
                     entry=entry, timeout=timeout, aliases=aliases)]

    def fields(self, cell: Cell) -> Mapping[str, str | None]:
        """The image, and the interpreter in it when the matrix names one."""
        entry = entry_of(cell, ContainerEntry)
        return {"image": entry.image, "python": entry.python}

    def check(self, cells: Sequence[Cell], source: str) -> None:
        """A bare name must be a recipe; anything else must look like an image reference."""
        from harness.imaging import load_recipes

        recipes = load_recipes()
        for cell in cells:
            ref = entry_of(cell, ContainerEntry).image
            if ref not in recipes and not any(ch in ref for ch in ":/@"):
                raise InputError(f"{source}: environments.container: image {ref!r} is not a "
                                 f"recipe under images/ ({', '.join(sorted(recipes))}); for an "
                                 f"image reference give its tag, e.g. {ref}:latest")

    def prepare(self, setup: Setup, cells: Sequence[Cell]) -> Resources:
        """Connect to the engine, reap leftovers, build missing recipe images."""
        from harness.environments import container

        return container.prepare(setup, cells)


KIND = ContainerKind()
