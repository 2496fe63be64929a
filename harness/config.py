"""Where the configuration comes from, the way Python tools look for it.

The matrix: ``--matrix FILE``; else ``matrix.yaml`` in the current directory; else a
``[tool.q-kangaroo-smoke]`` table in ``./pyproject.toml`` (the matrix's keys, in TOML); else
the bundled default.  Every option also reads an environment variable,
``Q_KANGAROO_SMOKE_<OPTION>`` (as cibuildwheel reads ``CIBW_*``); the command line wins.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import InputError
from harness.resources import default_matrix

TOOL = "q-kangaroo-smoke"  # the distribution: its console script and its pyproject table
ENV_PREFIX = "Q_KANGAROO_SMOKE_"
MATRIX_FILE = "matrix.yaml"
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True, kw_only=True)
class MatrixSource:
    """Which matrix a run uses, and why that one."""

    path: Path  # the file read (for the pyproject table: pyproject.toml)
    how: str  # "--matrix", "env", "current directory", "pyproject", "bundled default"
    table: Mapping[str, Any] | None = None  # the [tool.q-kangaroo-smoke] table, if that

    def describe(self) -> str:
        """One line for the console."""
        where = {"--matrix": "--matrix", "env": f"${ENV_PREFIX}MATRIX",
                 "current directory": "found in the current directory",
                 "pyproject": f"[tool.{TOOL}] table",
                 "bundled default": f"bundled default: q_kangaroo's; put a {MATRIX_FILE} "
                                    f"here or a [tool.{TOOL}] table in pyproject.toml "
                                    "for your package"}[self.how]
        shown = str(self.path)
        if self.how in ("current directory", "pyproject"):  # ./matrix.yaml, ./pyproject.toml
            shown = f"./{self.path.name}"
        return f"matrix: {shown} ({where})"


def find_matrix(given: Path | None, *, cwd: Path | None = None,
                from_env: bool = False) -> MatrixSource:
    """The first of: the given file, ./matrix.yaml, ./pyproject.toml's table, the default."""
    if given is not None:
        return MatrixSource(path=given, how="env" if from_env else "--matrix")
    here = cwd or Path.cwd()
    if (here / MATRIX_FILE).is_file():
        return MatrixSource(path=here / MATRIX_FILE, how="current directory")
    pyproject = here / "pyproject.toml"
    table = _tool_table(pyproject) if pyproject.is_file() else None
    if table is not None:
        return MatrixSource(path=pyproject, how="pyproject", table=table)
    return MatrixSource(path=default_matrix(), how="bundled default")


def _tool_table(pyproject: Path) -> Mapping[str, Any] | None:
    """``[tool.q-kangaroo-smoke]`` of a pyproject.toml, if there is one."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{pyproject}: cannot read it as TOML ({exc}); fix it, or pass "
                         "--matrix FILE") from exc
    table = data.get("tool", {}).get(TOOL)
    if table is not None and not isinstance(table, dict):
        raise InputError(f"{pyproject}: [tool.{TOOL}] must be a table of the matrix's keys "
                         "(package, environments, defaults, release)")
    return table


# --- options from the environment ------------------------------------------------------------


def env_name(action: argparse.Action) -> str | None:
    """The variable of an option (``--report-dir`` -> ``Q_KANGAROO_SMOKE_REPORT_DIR``), or
    None for what is no setting (help, version, list, completion)."""
    longs = [s for s in action.option_strings if s.startswith("--")]
    if not longs or action.dest in ("help", "version", "list", "format", "print_completion"):
        return None
    return ENV_PREFIX + longs[0][2:].replace("-", "_").upper()


def document_environment(parser: argparse.ArgumentParser) -> None:
    """Name each option's variable in its --help line."""
    for action in parser._actions:
        name = env_name(action)
        if name and action.help is not argparse.SUPPRESS:
            action.help = f"{action.help or ''} [env {name}]".strip()


def apply_environment(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> set[str]:
    """Set the options' defaults from their variables (the command line still wins);
    a value that does not fit is an InputError naming the variable.  Returns the dests set."""
    defaults: dict[str, Any] = {}
    for action in parser._actions:
        name = env_name(action)
        if name is None or name not in environ:
            continue
        defaults[action.dest] = _convert(action, name, environ[name])
    parser.set_defaults(**defaults)
    return set(defaults)


def misspelled_variables(parser: argparse.ArgumentParser,
                         environ: Mapping[str, str]) -> list[str]:
    """A warning for each set variable with the prefix that is no option's but close to one
    (``Q_KANGAROO_SMOKE_JOB``: did you mean ``..._JOBS``?); others of the prefix are left be
    (the image builder reads ``Q_KANGAROO_SMOKE_MIRROR``)."""
    names = [n for a in parser._actions if (n := env_name(a))]
    warnings = []
    for var in sorted(v for v in environ if v.startswith(ENV_PREFIX) and v not in names):
        close = difflib.get_close_matches(var, names, n=1, cutoff=0.85)
        if close:
            warnings.append(f"{var} is not an option's variable; did you mean {close[0]}? "
                            "(ignored)")
    return warnings


def _convert(action: argparse.Action, name: str, raw: str) -> Any:
    """One variable's text as the option's value."""
    value = raw.strip()
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if value.lower() not in TRUE + FALSE:
            raise InputError(f"{name}={raw!r}: give 1 or 0 (true/false, yes/no)")
        return (value.lower() in TRUE) == isinstance(action, argparse._StoreTrueAction)
    if isinstance(action, argparse._CountAction):
        if not value.isdigit():
            raise InputError(f"{name}={raw!r}: give a count (0, 1, 2)")
        return int(value)
    if isinstance(action, argparse._AppendAction):
        return [p for p in value.split() if p]  # patterns separated by spaces (or a,b)
    convert = action.type if callable(action.type) else str
    try:
        result = convert(value)
    except (TypeError, ValueError) as exc:
        kind = "a whole number" if convert is int else "a number" if convert is float else \
            "another value"
        raise InputError(f"{name}={raw!r}: {action.option_strings[0]} takes {kind}") from exc
    if action.choices is not None and result not in action.choices:
        raise InputError(f"{name}={raw!r}: give one of {', '.join(map(str, action.choices))}")
    return result
