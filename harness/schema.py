"""JSON schema of matrix.yaml.  ``python -m harness.schema`` regenerates matrix.schema.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from harness import emulation, kinds, policy
from harness.kinds.base import STR, TIMEOUT

SCHEMA_PATH = Path(__file__).with_name("matrix.schema.json")

_STR = STR
_STR_LIST = {"type": "array", "items": _STR}
_SECONDS = {"type": "number", "exclusiveMinimum": 0}
_TIMEOUT = TIMEOUT

CHECK = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "expr"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_.-]*$"},
        "expr": {**_STR, "description": "Python expression evaluated in the cell, with the "
                 "imported package bound to its import name and to `module`."},
        "expected": {"description": "Literal expected value (YAML)."},
        "expected_expr": {**_STR, "description": "Python expression for the expected value; "
                          "the package's `reference` module (package.reference) is "
                          "available."},
        "timeout": {**_SECONDS, "description": "Seconds this check may take (default: "
                    "defaults.budgets.check)."},
    },
    "oneOf": [{"required": ["expected"]}, {"required": ["expected_expr"]}],
}

PACKAGE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["distribution", "import"],
    "properties": {
        "distribution": {**_STR, "description": "Distribution name (the wheel's)."},
        "import": {**_STR, "description": "Import name."},
        "version_from": {"type": "array", "items": {
            "type": "string", "pattern": r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(\(\))?$"},
            "description": "Module attributes that must equal the wheel's version: a name "
                           "or dotted path (version.version: attributes or submodules); a "
                           "trailing () calls it."},
        "wheel_tags": {**_STR_LIST, "description": "Tags the wheel must carry (fnmatch "
                       "patterns, e.g. cp39-abi3-manylinux_2_17_*)."},
        "bundled_libraries": {**_STR_LIST, "description": "Native libraries (e.g. gmp) "
                              "that must come from inside the wheel; cells make the "
                              "system's copies unreachable."},
        "absent_env": {**_STR_LIST, "description": "Variables no cell may see."},
        "checks": {"type": "array", "items": CHECK},
        "reference": {**_STR, "description": "A Python file beside the matrix (path relative "
                      "to it) whose module is `reference` in expected_expr, run in the cell."},
        "extensions": {
            "type": "object", "additionalProperties": False,
            "description": "Extension modules (dotted names, fnmatch patterns) the cells "
                           "never import (skip), or that must load even where an optional "
                           "part of Python they use (tkinter, say) is absent (require).",
            "properties": {"skip": _STR_LIST, "require": _STR_LIST}},
        "dependencies_from": {**_STR, "description": "A directory of wheels (relative to the "
                              "matrix) the package's Requires-Dist are installed from, offline; "
                              "without it a wheel with requirements is an ERROR naming them."},
    },
}

BUDGETS = {
    "type": "object",
    "additionalProperties": False,
    "description": "Seconds a step may take before the probe stops it (TIMEOUT naming the "
                   "step); the whole cell is bounded by timeout.",
    "properties": {
        "import": {**_SECONDS, "description": "Importing the package (default 15)."},
        "check": {**_SECONDS, "description": "Each declared check (default 120)."},
    },
}

# release: what blocks a release (harness.policy; the gate and UNCOVERED cells)
RELEASE = {
    "type": "object",
    "additionalProperties": False,
    "description": "What blocks a release in the pre-publish gate (`--prepublish`).",
    "properties": {
        "policy": {
            "type": "object",
            "description": "Finding code -> blocker | warning | ignore, changing the default "
                           "policy (harness/policy.py; README 'Pre-publish'). Errors (a check "
                           "that could not run) always block.",
            "propertyNames": {"anyOf": [{"enum": sorted(policy.DEFAULT_POLICY)},
                                        {"pattern": r"^contents-W\d{3}$"}]},
            "additionalProperties": {"enum": list(policy.LEVELS)},
        },
        "max_size_mb": {**_SECONDS, "description": "Files above this size are a `size` "
                        f"finding (default {policy.DEFAULT_MAX_SIZE_MB:g})."},
        "uncovered": {"enum": ["blocker", "warning"], "description": "A cell no wheel of the "
                      "set fits is UNCOVERED; blocker (default): the run exits 1; warning: "
                      "reported, the exit code is unchanged."},
    },
}

def environments() -> dict[str, Any]:
    """``environments``: one array of entries per registered kind of cell (its own schema)."""
    return {"type": "object", "additionalProperties": False, "properties": {
        k.name: {"type": "array", "items": dict(k.schema),
                 **({"description": k.description} if k.description else {})}
        for k in kinds.all_kinds()}}


def matrix_schema() -> dict[str, Any]:
    """The whole schema, with the kinds registered now."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "q_kangaroo smoke matrix",
        "type": "object",
        "additionalProperties": False,
        "required": ["package", "environments"],
        "properties": {
            "package": PACKAGE,
            "defaults": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"timeout": _TIMEOUT, "jobs": {"type": "integer", "minimum": 1},
                               "budgets": BUDGETS,
                               "follow_release": {
                                   "type": "boolean",
                                   "description": "Add emulated container cells for the "
                                   "release's wheels of architectures the matrix has no cell "
                                   "of (the matrix's Pythons; default true)."},
                               "cpu_floor": {
                                   "type": "string", "minLength": 1,
                                   "description": "What an entry's cpu: floor means: the "
                                   "oldest CPU the wheels' tags promise (default "
                                   f"{emulation.DEFAULT_FLOOR}, manylinux/musllinux x86_64)."}},
            },
            "environments": environments(),
            "release": RELEASE,
        },
    }


def render() -> str:
    """The schema as committed in matrix.schema.json."""
    return json.dumps(matrix_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        if SCHEMA_PATH.read_text() != render():
            sys.exit(f"{SCHEMA_PATH} is stale: run python -m harness.schema")
        sys.exit(0)
    SCHEMA_PATH.write_text(render())
    sys.stdout.write(f"wrote {SCHEMA_PATH}\n")
