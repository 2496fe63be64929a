"""What a cell's verdict means, decided in one place: the run's exit code, the gate's code and
severity, whether an uncovered cell counts (release policy), and which file a cell tested.
cli, report, merge and gate ask here; verdicts are their names ("PASS", ...), so this module
needs nothing of the judging.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from harness.errors import EXIT_FAIL, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_PASS
from harness.policy import DEFAULT_POLICY, LEVELS, Level, ReleasePolicy

GateSeverity = Literal["blocker", "error"]
UNCOVERED = "UNCOVERED"


@dataclass(frozen=True, kw_only=True)
class GateIssue:
    """How the gate reports a cell with this verdict."""

    code: str
    severity: GateSeverity  # error: nothing was judged (blocks whatever the policy says)
    fix: str


@dataclass(frozen=True, kw_only=True)
class Meaning:
    """One verdict's meaning; of several cells the highest ``rank`` decides the exit code."""

    exit_code: int
    rank: int
    gate: GateIssue | None  # None: PASS, or UNCOVERED (the coverage rule below decides)


VERDICTS: Mapping[str, Meaning] = {
    "PASS": Meaning(exit_code=EXIT_PASS, rank=0, gate=None),
    "FAIL": Meaning(exit_code=EXIT_FAIL, rank=3, gate=GateIssue(
        code="cell-fail", severity="blocker",
        fix="fix the wheel: it does not work where pip installs it")),
    "ERROR": Meaning(exit_code=EXIT_INPUT, rank=2, gate=GateIssue(
        code="cell-error", severity="error",
        fix="the harness could not judge this cell: fix the cause the reason names and run "
            "again")),
    "TIMEOUT": Meaning(exit_code=EXIT_FAIL, rank=1, gate=GateIssue(
        code="cell-timeout", severity="blocker",
        fix="find what hangs (the report names the step), or raise the step's budget")),
    "INVALID": Meaning(exit_code=EXIT_FAIL, rank=1, gate=GateIssue(
        code="cell-invalid", severity="error",
        fix="the cell was not provably clean, so nothing was proven: fix the image or host "
            "(the reason says what leaked) and run again")),
    UNCOVERED: Meaning(exit_code=EXIT_FAIL, rank=1, gate=None),
}


# --- cells no wheel fits ------------------------------------------------------------------------

COVERAGE_CODES = ("uncovered", "outside-requires-python")


def coverage_code(excluded: bool) -> str:
    """The finding of an uncovered cell: ``outside-requires-python`` when the release's
    Requires-Python leaves the cell's Python out (the release claims nothing there), else
    ``uncovered``."""
    return COVERAGE_CODES[1] if excluded else COVERAGE_CODES[0]


@dataclass(frozen=True, kw_only=True)
class Coverage:
    """The policy levels of the two coverage codes (matrix.yaml ``release``)."""

    levels: Mapping[str, Level]

    @classmethod
    def of(cls, policy: ReleasePolicy) -> Coverage:
        """The levels a matrix's release policy gives."""
        return cls(levels={code: policy.level(code) for code in COVERAGE_CODES})

    @classmethod
    def from_json(cls, data: Mapping[str, str] | None) -> Coverage:
        """Read back from a report (codes it does not name keep their default)."""
        given = dict(data or {})
        return cls(levels={code: next((lv for lv in LEVELS if lv == given.get(code)),
                                      DEFAULT_POLICY[code]) for code in COVERAGE_CODES})

    def level(self, excluded: bool) -> Level:
        """How an uncovered cell counts."""
        return self.levels[coverage_code(excluded)]

    def to_json(self) -> dict[str, str]:
        """For the report (``release.coverage``)."""
        return dict(self.levels)


DEFAULT_COVERAGE = Coverage.of(ReleasePolicy())


class _Named(Protocol):
    @property
    def value(self) -> str: ...


class _Pick(Protocol):
    @property
    def excluded(self) -> str: ...


class Judged(Protocol):
    """A judged cell (harness.verdict.CellResult)."""

    @property
    def verdict(self) -> _Named: ...

    @property
    def pick(self) -> _Pick | None: ...


def counts(cell: Judged, coverage: Coverage) -> bool:
    """Whether a cell's verdict counts toward the exit code: every verdict, but an uncovered
    cell only while its coverage code is a blocker."""
    excluded = bool(cell.pick and cell.pick.excluded)
    return cell.verdict.value != UNCOVERED or coverage.level(excluded) == "blocker"


def exit_code(cells: Iterable[Judged], *, interrupted: bool,
              coverage: Coverage = DEFAULT_COVERAGE) -> int:
    """The run's exit code: 130 interrupted; else the most serious counted verdict's (FAIL 1
    over ERROR 2 over TIMEOUT, INVALID, UNCOVERED 1); 0 all PASS; 2 when no cell was judged."""
    cells = list(cells)
    if interrupted:
        return EXIT_INTERRUPTED
    if not cells:
        return EXIT_INPUT  # nothing was judged
    counted = [VERDICTS[c.verdict.value] for c in cells if counts(c, coverage)]
    return max(counted, key=lambda m: m.rank).exit_code if counted else EXIT_PASS


# --- which file a cell tested -------------------------------------------------------------------


def uncovered(verdict: str, pick_covered: bool | None) -> bool:
    """Whether no wheel of the release fits the cell (pip's pick says so, or the verdict)."""
    return verdict == UNCOVERED or pick_covered is False


def tested_file(*, verdict: str, artifact: str | None, pick: str | None,
                pick_covered: bool | None, only_wheel: str | None) -> str | None:
    """The file a cell is about: None when no wheel fits it; else the one it installed
    (proven by RECORD), else pip's pick for it (its install failed), else the release's only
    wheel; None when none of these is known."""
    if uncovered(verdict, pick_covered):
        return None
    return artifact or pick or only_wheel
