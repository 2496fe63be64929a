"""The release policy: what each finding means for a release (blocker, warning, ignore).

DEFAULT_POLICY grades every finding code of the static audit (harness.audit) and of the
go / no-go gate's own checks (harness.gate: cells vs audit, coverage). matrix.yaml's
``release`` section may change levels, the size threshold and whether an uncovered cell
blocks; every change from the default is listed in the decision, so loosening is never
silent. A check that could not run is an error, which no policy can ignore.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

Level = Literal["blocker", "warning", "ignore"]
Severity = Literal["blocker", "warning", "error"]  # a finding's weight; error: not judged
LEVELS: tuple[Level, ...] = ("blocker", "warning", "ignore")
DEFAULT_MAX_SIZE_MB = 50.0

#: finding code -> what it means for the release. Codes of check-wheel-contents are
#: ``contents-W001`` etc. (all warnings: layout smells that do not break an install).
DEFAULT_POLICY: Mapping[str, Level] = MappingProxyType({
    # static audit (harness.audit)
    "filename-invalid": "blocker",
    "metadata-missing": "blocker",
    "metadata-invalid": "warning",  # strict rules the index itself accepts (2.1 + License-File)
    "metadata-name-mismatch": "blocker",
    "metadata-version-mismatch": "blocker",
    "wheel-tags-mismatch": "blocker",
    "record-missing": "blocker",
    "record-hash-mismatch": "blocker",
    "record-unlisted-file": "blocker",
    "unsafe-path": "blocker",  # a member outside the install directory (zip-slip)
    "size": "blocker",
    "arch-mismatch": "blocker",
    "platform-tag-unmet": "blocker",
    "external-library": "blocker",
    "bundled-but-system-needed": "blocker",
    "unbundled-library": "blocker",
    "bundled-unused": "warning",
    "abi3-violation": "blocker",
    "abi3-version-mismatch": "blocker",
    "abi3-floor-above-requires-python": "blocker",
    "abi3-extension-suffix": "blocker",
    "env-native-library-path": "blocker",
    "env-native-library-path-guarded": "warning",
    "twine-render": "blocker",
    "twine-invalid": "blocker",
    "twine-warning": "warning",
    "contents": "warning",
    "sdist-unreadable": "blocker",
    "sdist-version-mismatch": "blocker",
    "sdist-incomplete": "blocker",
    "no-sdist": "warning",
    "libc-mismatch": "blocker",
    # evidence, not a verdict: a floor cell (cpu: floor) decides
    "isa-above-floor": "warning",
    "isa-declared-above-floor": "warning",
    # the gate (harness.gate): the cells against the audit, and coverage
    "needed-never-mapped": "blocker",
    "bundled-shadowed": "blocker",
    "bundled-never-mapped": "warning",
    "wheel-untested": "warning",  # no cell here could have run it (another system, musl)
    "wheel-untested-runnable": "blocker",  # one could have (its arch, natively or emulated)
    "partial-matrix": "warning",  # --select ran only some of the matrix's cells
    "uncovered": "blocker",
    "outside-requires-python": "warning",  # the release does not claim that Python at all
})
_CONTENTS_CODE = re.compile(r"^contents-W\d{3}$")


def family(code: str) -> str:
    """The policy key a code falls under: ``contents-W009`` -> ``contents``."""
    return "contents" if _CONTENTS_CODE.match(code) else code


@dataclass(frozen=True, kw_only=True)
class ReleasePolicy:
    """matrix.yaml's ``release`` section: levels that differ from the default, the size
    threshold, and whether a cell no wheel fits blocks the release."""

    levels: Mapping[str, Level] = field(default_factory=dict)  # only the matrix's changes
    max_size_mb: float = DEFAULT_MAX_SIZE_MB

    def level(self, code: str) -> Level:
        """How a finding of this code counts (unknown codes block: unjudged is not good)."""
        for key in (code, family(code)):
            if key in self.levels:
                return self.levels[key]
        return DEFAULT_POLICY.get(code, DEFAULT_POLICY.get(family(code), "blocker"))

    def severity(self, code: str) -> Severity | None:
        """The weight of a finding of this code; None when the policy ignores it."""
        level = self.level(code)
        return None if level == "ignore" else level

    def merged(self) -> dict[str, Level]:
        """The whole policy: the default with the matrix's changes."""
        return {**DEFAULT_POLICY, **self.levels}

    def changes(self) -> list[str]:
        """Each change from the default, in words ("no-sdist: warning -> blocker")."""
        out = [f"{code}: {DEFAULT_POLICY.get(family(code), 'blocker')} -> {level}"
               for code, level in sorted(self.levels.items())
               if level != DEFAULT_POLICY.get(code, DEFAULT_POLICY.get(family(code)))]
        if self.max_size_mb != DEFAULT_MAX_SIZE_MB:
            out.append(f"max_size_mb: {DEFAULT_MAX_SIZE_MB:g} -> {self.max_size_mb:g}")
        return out


def from_matrix(section: Mapping[str, Any] | None) -> ReleasePolicy:
    """The schema-valid ``release`` section of matrix.yaml as a ReleasePolicy; ``uncovered``
    is the level of the ``uncovered`` code."""
    section = section or {}
    levels: dict[str, Level] = dict(section.get("policy") or {})
    if "uncovered" in section:
        levels["uncovered"] = section["uncovered"]
    return ReleasePolicy(levels=levels,
                         max_size_mb=float(section.get("max_size_mb", DEFAULT_MAX_SIZE_MB)))
