"""Where a cell runs: the environments the kinds of cell (harness.kinds) prepare; the same
probe in all.

A kind's ``prepare(setup, cells) -> Resources`` runs once per run and its
``Resources.environment(cell)`` makes the ``CellEnvironment`` of one cell.
"""

from harness.environments.base import CellEnvironment, ProbeSpec, Resources, Setup, cell_variables

__all__ = ["CellEnvironment", "ProbeSpec", "Resources", "Setup", "cell_variables"]
