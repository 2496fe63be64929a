"""matrix.yaml -> frozen dataclasses: the package under test and the environments."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from harness.errors import InputError
from harness.schema import MATRIX_SCHEMA

DEFAULT_TIMEOUT = 300.0
CHECKS_BEFORE = ("tags", "sterility", "install", "import", "version")  # built in, run first
CHECKS_AFTER = ("provenance", "exit")  # built in, run after the declared checks


@dataclass(frozen=True, kw_only=True)
class Check:
    """A declared functional check: ``expr`` evaluated in the cell equals the expectation."""

    name: str
    expr: str
    expected: Any = None
    expected_expr: str | None = None

    def to_probe(self) -> dict[str, Any]:
        """The probe's view of this check."""
        out: dict[str, Any] = {"name": self.name, "expr": self.expr}
        if self.expected_expr is not None:
            out["expected_expr"] = self.expected_expr
        else:
            out["expected"] = self.expected
        return out


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


@dataclass(frozen=True, kw_only=True)
class VenvEntry:
    """A host interpreter: a fresh venv per cell."""

    python: str
    id: str | None = None
    timeout: float | None = None


@dataclass(frozen=True, kw_only=True)
class ContainerEntry:
    """An image: a fresh locked-down container per cell."""

    image: str
    python: str | None = None
    id: str | None = None
    timeout: float | None = None


@dataclass(frozen=True, kw_only=True)
class Matrix:
    """What to test and where."""

    path: Path
    package: Package
    venvs: tuple[VenvEntry, ...] = ()
    containers: tuple[ContainerEntry, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    jobs: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def _key(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate(data: Any, source: str) -> list[str]:
    """Every schema error as one line: file, key, what was expected."""
    validator = jsonschema.Draft202012Validator(MATRIX_SCHEMA)
    lines = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
        if err.validator == "oneOf" and _key(err.path).endswith("]"):
            msg = "give exactly one of 'expected' or 'expected_expr'"
        elif err.validator == "additionalProperties":
            msg = err.message.replace("Additional properties are not allowed", "unknown key")
        else:
            msg = err.message
        lines.append(f"{source}: {_key(err.path)}: {msg}")
    return lines


def parse(data: dict[str, Any], path: Path) -> Matrix:
    """Build the dataclasses from schema-valid data."""
    pkg = data["package"]
    envs = data.get("environments") or {}
    defaults = data.get("defaults") or {}
    package = Package(
        distribution=pkg["distribution"],
        import_name=pkg["import"],
        version_from=tuple(pkg.get("version_from", ["__version__"])),
        wheel_tags=tuple(pkg.get("wheel_tags", ())),
        bundled_libraries=tuple(pkg.get("bundled_libraries", ())),
        absent_env=tuple(pkg.get("absent_env", ())),
        checks=tuple(Check(**c) for c in pkg.get("checks", ())),
    )
    return Matrix(
        path=path,
        package=package,
        venvs=tuple(VenvEntry(**v) for v in envs.get("venv", ())),
        containers=tuple(ContainerEntry(**c) for c in envs.get("container", ())),
        timeout=float(defaults.get("timeout", DEFAULT_TIMEOUT)),
        jobs=defaults.get("jobs"),
        raw=data,
    )


def load(path: Path) -> Matrix:
    """Read, validate and parse a matrix file; InputError lists every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read matrix ({exc.strerror}); pass --matrix FILE") \
            from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise InputError(f"{path}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})") \
            from exc
    errors = validate(data, str(path))
    if errors:
        raise InputError("\n".join(errors))
    matrix = parse(data, path)
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
    names = [c.name for c in matrix.package.checks]
    reserved = {*CHECKS_BEFORE, *CHECKS_AFTER}
    for i, name in enumerate(names):
        if name in reserved or names.index(name) != i:
            raise InputError(f"{path}: package.checks[{i}].name: {name!r} is reserved or "
                             "repeated; choose another name")
    return matrix
