"""The registry of cell kinds: one module per kind (``venv``, ``container``, ``host``), each
behind ``harness.kinds.base.Kind``.  Nothing else in the harness names a kind.

A new kind is a module with a ``Kind`` subclass, registered here with one line (or with
``register`` from outside, as the tests do).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from harness.kinds import container, host, venv
from harness.kinds.base import Cell, Entry, Kind, Platform

__all__ = ["Cell", "Entry", "Kind", "Platform", "all_kinds", "get", "register", "registered"]

_REGISTRY: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add a kind (its ``name`` must be new); cells are grouped in registration order."""
    if kind.name in _REGISTRY:
        raise ValueError(f"cell kind {kind.name!r} is registered already")
    _REGISTRY[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a kind (tests)."""
    del _REGISTRY[name]


@contextmanager
def registered(kind: Kind) -> Iterator[Kind]:
    """A kind registered for the duration of a ``with`` block."""
    register(kind)
    try:
        yield kind
    finally:
        unregister(kind.name)


def all_kinds() -> tuple[Kind, ...]:
    """Every registered kind, in registration order."""
    return tuple(_REGISTRY.values())


def get(name: str) -> Kind:
    """The kind of that name (a cell's ``kind``)."""
    return _REGISTRY[name]


def of(cell: Cell) -> Kind:
    """The kind of a cell."""
    return _REGISTRY[cell.kind]


for _kind in (venv.KIND, container.KIND, host.KIND):
    register(_kind)
