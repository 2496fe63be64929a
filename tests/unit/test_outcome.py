"""harness.outcome: verdict -> exit code and gate severity, the coverage rule with its policy
levels, the file a cell tested."""

from __future__ import annotations

import pytest

from harness import outcome, policy
from harness.verdict import CellResult, Predicted, Verdict


def r(v: Verdict, excluded: str = "") -> CellResult:
    pick = Predicted(file=None, sha256=None, tag=None, fallback="", excluded=excluded) \
        if v is Verdict.UNCOVERED else None
    return CellResult(cell_id="x", kind="venv", verdict=v, reason="", checks=(), pick=pick)


def coverage(**levels: policy.Level) -> outcome.Coverage:
    return outcome.Coverage.of(policy.ReleasePolicy(
        levels={k.replace("_", "-"): v for k, v in levels.items()}))


@pytest.mark.parametrize(("verdicts", "code"), [
    ([Verdict.PASS, Verdict.PASS], 0),
    ([Verdict.PASS, Verdict.FAIL], 1),
    ([Verdict.PASS, Verdict.INVALID], 1),
    ([Verdict.PASS, Verdict.TIMEOUT], 1),
    ([Verdict.PASS, Verdict.ERROR], 2),
    ([Verdict.FAIL, Verdict.ERROR], 1),  # a proven failure outranks "could not judge"
    ([Verdict.ERROR, Verdict.INVALID], 2),
    ([], 2),
])
def test_exit_codes(verdicts: list[Verdict], code: int) -> None:
    assert outcome.exit_code([r(v) for v in verdicts], interrupted=False) == code
    assert outcome.exit_code([r(v) for v in verdicts], interrupted=True) == 130


@pytest.mark.parametrize(("verdicts", "blocker", "warning"), [
    ([Verdict.PASS, Verdict.UNCOVERED], 1, 0),
    ([Verdict.UNCOVERED], 1, 0),
    ([Verdict.FAIL, Verdict.UNCOVERED], 1, 1),
    ([Verdict.ERROR, Verdict.UNCOVERED], 2, 2),
])
def test_uncovered_cells_block_only_by_policy(verdicts: list[Verdict], blocker: int,
                                              warning: int) -> None:
    results = [r(v) for v in verdicts]
    assert outcome.exit_code(results, interrupted=False, coverage=coverage()) == blocker
    assert outcome.exit_code(results, interrupted=False,
                             coverage=coverage(uncovered="warning")) == warning
    assert outcome.exit_code(results, interrupted=False,
                             coverage=coverage(uncovered="ignore")) == warning


def test_outside_requires_python_follows_its_own_level() -> None:
    outside = [r(Verdict.UNCOVERED, excluded=">=3.11")]
    assert outcome.exit_code(outside, interrupted=False) == 0  # default: a warning
    assert outcome.exit_code(outside, interrupted=False,
                             coverage=coverage(uncovered="warning")) == 0
    # the gate always honoured this level; the exit code now does too (was: ignored)
    strict = coverage(outside_requires_python="blocker")
    assert outcome.exit_code(outside, interrupted=False, coverage=strict) == 1
    assert outcome.exit_code([r(Verdict.UNCOVERED)], interrupted=False,
                             coverage=coverage(uncovered="warning",
                                               outside_requires_python="blocker")) == 0


def test_coverage_levels_survive_the_report() -> None:
    strict = coverage(uncovered="warning", outside_requires_python="blocker")
    assert outcome.Coverage.from_json(strict.to_json()) == strict
    assert outcome.Coverage.from_json(None) == outcome.DEFAULT_COVERAGE
    assert outcome.Coverage.from_json({"uncovered": "bogus"}) == outcome.DEFAULT_COVERAGE


def test_every_verdict_has_one_meaning() -> None:
    assert set(outcome.VERDICTS) == {v.value for v in Verdict}
    gate = {v: (m.gate.code, m.gate.severity) for v, m in outcome.VERDICTS.items() if m.gate}
    assert gate == {"FAIL": ("cell-fail", "blocker"), "TIMEOUT": ("cell-timeout", "blocker"),
                    "INVALID": ("cell-invalid", "error"), "ERROR": ("cell-error", "error")}


@pytest.mark.parametrize(("kw", "expected"), [
    ({"verdict": "PASS", "artifact": "a.whl", "pick": "b.whl", "pick_covered": True}, "a.whl"),
    ({"verdict": "FAIL", "artifact": None, "pick": "b.whl", "pick_covered": True}, "b.whl"),
    ({"verdict": "ERROR", "artifact": None, "pick": None, "pick_covered": None}, "only.whl"),
    ({"verdict": "UNCOVERED", "artifact": None, "pick": None, "pick_covered": False}, None),
    ({"verdict": "ERROR", "artifact": None, "pick": None, "pick_covered": False}, None),
])
def test_the_file_a_cell_tested(kw: dict[str, object], expected: str | None) -> None:
    assert outcome.tested_file(**kw, only_wheel="only.whl") == expected  # type: ignore[arg-type]
