"""Cells follow the release: emulated container cells for the release's other architectures.

When the release carries Linux (glibc) wheels for an architecture the matrix has no cell of,
the run gains container cells of that architecture: one per Python of the matrix that a
clean image can be built for there (a Debian suite's own Python: 3.9, 3.11, 3.13), run under
qemu-user through binfmt_misc. ``defaults.follow_release: false`` in the matrix turns it off;
``--shard`` runs (slices of the matrix's own cells, as ``--list`` gives them) do not add them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness import arches, kinds, tags
from harness.kinds import Cell
from harness.kinds.container import ContainerEntry, cell_arch
from harness.matrix import Matrix

_PY = re.compile(r"^py(\d+)\.(\d+)-")  # the version alias every versioned cell has
_RECIPE_PY = re.compile(r"-py(\d+)\.(\d+)$")

Version = tuple[int, int]


@dataclass(frozen=True, kw_only=True)
class Followed:
    """The cells following the release adds, and what to say about it."""

    added: tuple[Cell, ...] = ()
    notes: tuple[str, ...] = ()


def release_arches(platform_tags: Iterable[str]) -> set[str]:
    """Architectures of the release's glibc Linux wheels (manylinux, linux_) that the harness
    knows."""
    out = set()
    for tag in platform_tags:
        if tag.startswith(("manylinux", "linux_")):
            arch = tags.linux_arch(tag)
            if arch in arches.ARCHES:
                out.add(arch)
    return out


def cell_version(cell: Cell) -> Version | None:
    """The CPython version a cell's aliases name (``py3.12-venv`` -> (3, 12))."""
    for alias in cell.aliases:
        if m := _PY.match(alias):
            return int(m[1]), int(m[2])
    return None


def recipe_versions(recipes: Mapping[str, object], names: Iterable[str]) -> dict[Version, str]:
    """Recipe name by the Python version its name says (``debian11-py3.9``), first wins."""
    out: dict[Version, str] = {}
    for name in names:
        if name in recipes and (m := _RECIPE_PY.search(name)):
            out.setdefault((int(m[1]), int(m[2])), name)
    return out


def _foreign_images() -> dict[Version, str]:
    """The recipes that build for another architecture, by Python version (extras last)."""
    from harness.imaging import foreign_capable, load_recipes

    recipes = load_recipes()
    able = foreign_capable(recipes)
    ordered = [n for n in able if not recipes[n].extra] + [n for n in able if recipes[n].extra]
    return recipe_versions(recipes, ordered)


def runnable(matrix_cells: Sequence[Cell], release_arch: Iterable[str]
             ) -> dict[str, frozenset[Version]]:
    """Per architecture, the CPython versions a cell here could have: the host's from the
    matrix's cells of it, another architecture's from the images that build for it."""
    host = arches.host().name
    linux = [c for c in matrix_cells if kinds.of(c).platform(c).system == "linux"]
    out = {host: frozenset(v for c in linux if cell_arch(c) == host and (v := cell_version(c)))}
    foreign = frozenset(_foreign_images())
    for arch in release_arch:
        if arch != host:
            out[arch] = foreign | frozenset(v for c in linux if cell_arch(c) == arch
                                            and (v := cell_version(c)))
    return out


def follow(matrix: Matrix, matrix_cells: Sequence[Cell], platform_tags: Iterable[str]
           ) -> Followed:
    """Emulated cells for the release's architectures ``matrix_cells`` (the whole matrix)
    have none of, and notes that say what was added, or why not."""
    have = {cell_arch(c) for c in matrix_cells if kinds.of(c).platform(c).system == "linux"}
    missing = sorted(release_arches(platform_tags) - have)
    if not missing:
        return Followed()
    if not matrix.follow_release:
        return Followed(notes=tuple(
            f"the release has {a} wheels and the matrix no {a} cell (follow_release: false): "
            "no cell runs them" for a in missing))
    versions = sorted({v for c in matrix_cells if (v := cell_version(c))})
    images = _foreign_images()
    kind = kinds.get("container")
    added: list[Cell] = []
    notes = []
    for arch in missing:
        made = [c for v in versions if v in images
                for c in kind.cells(ContainerEntry(image=images[v], arch=arch), matrix.timeout)]
        added += made
        lacking = [".".join(map(str, v)) for v in versions if v not in images]
        notes.append(f"the release has {arch} wheels and the matrix no {arch} cell: added "
                     f"{len(made)} emulated cell{'s' * (len(made) != 1)} "
                     f"({', '.join(c.id for c in made) or 'none'})"
                     + (f"; no clean {arch} image has Python {', '.join(lacking)}"
                        if lacking else ""))
    return Followed(added=tuple(added), notes=tuple(notes))
