"""Where a cell runs: a fresh venv on the host or a fresh container; same probe in both."""

from harness.environments.base import CellEnvironment, ProbeSpec, cell_variables

__all__ = ["CellEnvironment", "ProbeSpec", "cell_variables"]
