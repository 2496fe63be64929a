"""Where a cell runs: one module per kind of cell (``venv``, ``container``); same probe in all.

Each kind's module has ``prepare(setup, cells) -> Resources`` (once per run) and its
``Resources.environment(cell)`` makes the ``CellEnvironment`` of one cell.
"""

from harness.environments.base import CellEnvironment, ProbeSpec, Resources, Setup, cell_variables

__all__ = ["CellEnvironment", "ProbeSpec", "Resources", "Setup", "cell_variables"]
