"""matrix.yaml -> frozen dataclasses: the package under test and the environments."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harness import emulation, kinds, policy
from harness.config import TOOL, MatrixSource
from harness.errors import InputError
from harness.kinds import Entry
from harness.schema import matrix_schema

if TYPE_CHECKING:  # imported by validate only: reading reports (merge) needs no validator
    import jsonschema

DEFAULT_TIMEOUT = 300.0
DEFAULT_BUDGETS = {"import": 15.0, "check": 120.0}  # seconds per step (defaults.budgets)
CHECKS_BEFORE = ("tags", "sterility", "install", "import", "version")  # built in, run first
CHECKS_AFTER = ("provenance", "exit")  # built in, run after the declared checks
RESERVED = (*CHECKS_BEFORE, *CHECKS_AFTER, "venv")  # names of the probe's own steps


@dataclass(frozen=True, kw_only=True)
class Check:
    """A declared functional check: ``expr`` evaluated in the cell equals the expectation."""

    name: str
    expr: str
    expected: Any = None
    expected_expr: str | None = None
    timeout: float | None = None  # seconds; default: defaults.budgets.check

    def to_probe(self) -> dict[str, Any]:
        """The probe's view of this check."""
        out: dict[str, Any] = {"name": self.name, "expr": self.expr}
        if self.expected_expr is not None:
            out["expected_expr"] = self.expected_expr
        else:
            out["expected"] = self.expected
        return out


@dataclass(frozen=True, kw_only=True)
class Reference:
    """The matrix's reference module: its source runs in the cell as ``reference``."""

    path: Path
    source: str

    def to_probe(self) -> dict[str, str]:
        """The probe's view: file name (for tracebacks) and source."""
        return {"path": self.path.name, "source": self.source}


@dataclass(frozen=True, kw_only=True)
class Package:
    """The package under test, as data."""

    distribution: str
    import_name: str
    version_from: tuple[str, ...] = ()
    wheel_tags: tuple[str, ...] = ()
    bundled_libraries: tuple[str, ...] = ()
    absent_env: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()
    reference: Reference | None = None
    import_budget: float = DEFAULT_BUDGETS["import"]
    check_budget: float = DEFAULT_BUDGETS["check"]
    dependencies_from: Path | None = None  # a wheelhouse for the Requires-Dist, if any
    skip_extensions: tuple[str, ...] = ()     # fnmatch patterns: never imported
    require_extensions: tuple[str, ...] = ()  # fnmatch patterns: must load, never optional

    def scaled(self, factor: float) -> Package:
        """The same package with every step budget ``factor`` times longer (emulated cells)."""
        return replace(self, import_budget=self.import_budget * factor,
                       check_budget=self.check_budget * factor,
                       checks=tuple(replace(c, timeout=c.timeout * factor) if c.timeout
                                    else c for c in self.checks))

    def step_budgets(self) -> dict[str, float]:
        """Seconds each timed step of the checks process may take before the probe stops it."""
        return {"import": self.import_budget, **{
            c.name: c.timeout or self.check_budget for c in self.checks}}


@dataclass(frozen=True, kw_only=True)
class Matrix:
    """What to test and where."""

    path: Path
    package: Package
    environments: Mapping[str, tuple[Entry, ...]] = field(default_factory=dict)  # by kind
    timeout: float = DEFAULT_TIMEOUT
    jobs: int | None = None
    follow_release: bool = True  # emulated cells for the release's other architectures
    release: policy.ReleasePolicy = field(default_factory=policy.ReleasePolicy)  # prepublish

    def entries(self, kind: str) -> tuple[Entry, ...]:
        """The entries under ``environments.<kind>``, in file order."""
        return tuple(self.environments.get(kind, ()))


def _key(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate(data: Any, source: str) -> list[str]:
    """Every schema error as one line: file, key, what was expected (and how to fix the
    usual slips: a number where a string belongs, a misspelled key)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(matrix_schema())
    lines = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
        if err.validator == "oneOf" and _key(err.path).endswith("]"):
            msg = "give exactly one of 'expected' or 'expected_expr'"
        elif err.validator == "additionalProperties":
            msg = _unknown_keys(err)
        elif err.validator == "type" and err.validator_value == "string" \
                and isinstance(err.instance, (int, float)) and not isinstance(err.instance, bool):
            msg = _quote_hint(err.instance)
        else:
            msg = err.message
        lines.append(f"{source}: {_key(err.path)}: {msg}")
    return lines


def _unknown_keys(err: jsonschema.ValidationError) -> str:
    """"unknown key 'pyton' (did you mean 'python'?)" for each key the schema does not know."""
    known = list(err.schema.get("properties", {})) if isinstance(err.schema, dict) else []
    parts = []
    for key in sorted(set(err.instance) - set(known)) if isinstance(err.instance, dict) else []:
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
        parts.append(f"unknown key {key!r}{hint}")
    return "; ".join(parts) or err.message


def _quote_hint(value: float) -> str:
    """A number where a string belongs: YAML read it as one (3.10 even becomes 3.1)."""
    text = repr(value)
    if isinstance(value, float) and text.endswith(".1"):
        return (f"{text} is a number, not a string: quote it, e.g. \"{text}0\" (YAML reads "
                f"an unquoted {text}0 as the number {text})")
    return f"{text} is a number, not a string: quote it, \"{text}\""


def _reference(name: str | None, matrix_path: Path) -> Reference | None:
    """The reference module named by the matrix, read from beside the matrix file."""
    if name is None:
        return None
    path = matrix_path.parent / name
    try:
        return Reference(path=path, source=path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise InputError(f"{matrix_path}: package.reference: cannot read {path} ({why}); "
                         "give a Python file's path relative to the matrix file") from exc


def _floor(entry: Entry, defaults: Mapping[str, Any]) -> Entry:
    """An entry's ``cpu: floor`` as the level it stands for (``defaults.cpu_floor``)."""
    if getattr(entry, "cpu", None) != emulation.FLOOR:
        return entry
    return replace(entry, **{"cpu": defaults.get("cpu_floor", emulation.DEFAULT_FLOOR)})


def parse(data: dict[str, Any], path: Path) -> Matrix:
    """Build the dataclasses from schema-valid data."""
    pkg = data["package"]
    envs = data.get("environments") or {}
    defaults = data.get("defaults") or {}
    budgets = {**DEFAULT_BUDGETS, **(defaults.get("budgets") or {})}
    package = Package(
        distribution=pkg["distribution"],
        import_name=pkg["import"],
        version_from=tuple(pkg.get("version_from", ["__version__"])),
        wheel_tags=tuple(pkg.get("wheel_tags", ())),
        bundled_libraries=tuple(pkg.get("bundled_libraries", ())),
        absent_env=tuple(pkg.get("absent_env", ())),
        checks=tuple(Check(**c) for c in pkg.get("checks", ())),
        reference=_reference(pkg.get("reference"), path),
        import_budget=float(budgets["import"]),
        check_budget=float(budgets["check"]),
        dependencies_from=(path.parent / pkg["dependencies_from"]
                           if pkg.get("dependencies_from") else None),
        skip_extensions=tuple((pkg.get("extensions") or {}).get("skip", ())),
        require_extensions=tuple((pkg.get("extensions") or {}).get("require", ())),
    )
    return Matrix(
        path=path,
        package=package,
        environments={k.name: tuple(_floor(k.parse(e), defaults) for e in envs.get(k.name, ()))
                      for k in kinds.all_kinds()},
        timeout=float(defaults.get("timeout", DEFAULT_TIMEOUT)),
        jobs=defaults.get("jobs"),
        follow_release=bool(defaults.get("follow_release", True)),
        release=policy.from_matrix(data.get("release")),
    )


class _NoAliases(yaml.SafeLoader):
    """The safe loader without anchors and aliases (``&a``/``*a``: an alias bomb expands
    to gigabytes; a matrix never needs them)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Refuse a node that is an alias or carries an anchor, before expanding anything."""
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&name, *name) are not allowed in a matrix; "
                "write the values out", event.start_mark)
        return super().compose_node(parent, index)


def load(path: Path) -> Matrix:
    """Read, validate and parse a matrix file; InputError lists every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read matrix ({exc.strerror}); pass --matrix FILE") \
            from exc
    try:
        data = yaml.load(text, Loader=_NoAliases)  # a safe loader without aliases
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise InputError(f"{path}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})") \
            from exc
    return from_data(data, path)


def load_found(found: MatrixSource) -> Matrix:
    """The matrix harness.config found: a matrix file, or a pyproject.toml's table."""
    if found.table is None:
        return load(found.path)
    return from_data(found.table, found.path, f"{found.path} [tool.{TOOL}]")


def from_data(data: Any, path: Path, source: str | None = None) -> Matrix:
    """Validate and parse matrix data read from ``path`` (a matrix file, or the pyproject.toml
    whose table holds it: ``source`` names that in messages); relative paths are from
    ``path``'s directory."""
    errors = validate(data, source or str(path))
    if errors:
        raise InputError("\n".join(errors))
    matrix = parse(data, path)
    reference = matrix.package.reference
    if reference is not None:
        try:
            compile(reference.source, str(reference.path), "exec")
        except SyntaxError as exc:
            raise InputError(f"{path}: package.reference: {reference.path} line {exc.lineno}: "
                             f"not valid Python ({exc.msg}); fix the module") from exc
    for i, check in enumerate(matrix.package.checks):
        try:
            json.dumps(check.expected, allow_nan=True)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path}: package.checks[{i}].expected: {exc}; use plain YAML "
                             "values (numbers, strings, lists, maps) or expected_expr") from exc
        for key in ("expr", "expected_expr"):
            code = getattr(check, key)
            if code is None:
                continue
            try:
                compile(code, f"{path}: package.checks[{i}].{key}", "eval")
            except SyntaxError as exc:
                raise InputError(f"{path}: package.checks[{i}].{key}: not a Python expression "
                                 f"({exc.msg}): {code}") from exc
    deps = matrix.package.dependencies_from
    if deps is not None and not deps.is_dir():
        raise InputError(f"{path}: package.dependencies_from: {deps} is not a directory; give "
                         "a directory of dependency wheels, relative to the matrix file")
    names = [c.name for c in matrix.package.checks]
    for i, name in enumerate(names):
        if name in RESERVED or names.index(name) != i:
            raise InputError(f"{path}: package.checks[{i}].name: {name!r} is reserved or "
                             "repeated; choose another name")
    return matrix
