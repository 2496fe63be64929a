"""Probe events -> verdicts: every verdict reachable, PASS only when everything passed."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from harness.checks import CheckStatus
from harness.matrix import Package
from harness.verdict import Verdict
from harness.wheel import Audit, WheelInfo
from tests.unit.conftest import (
    FACTS_311,
    install_observation,
    judge_one,
    make_wheel,
    observed,
    passing_events,
)


def run(events: list[dict[str, Any]], wheel: WheelInfo | None = None, pkg: Package | None = None,
        **kw: Any) -> Any:
    return judge_one(events, wheel, pkg, **kw)


def until_started(step: str, *then: dict[str, Any]) -> list[dict[str, Any]]:
    """The passing stream cut right after ``step`` started, then ``then``."""
    events = passing_events()
    cut = events.index({"event": "started", "step": step}) + 1
    return [*events[:cut], *then]


def test_all_checks_pass() -> None:
    result = run(passing_events())
    assert result.verdict is Verdict.PASS
    assert [c.name for c in result.checks] == ["tags", "sterility", "install", "import",
                                               "version", "partition_gf", "provenance", "exit"]
    assert all(c.status is CheckStatus.PASS for c in result.checks)


def test_gmp_reachable_is_invalid_even_if_everything_else_passes() -> None:
    dirty = observed("sterility", env_set=[], evidence={"gmp": {
        "find_library": None, "ldconfig": [], "files": [],
        "dlopen": [{"soname": "libgmp.so.10", "paths": ["/usr/lib/libgmp.so.10"]}]}})
    result = run(passing_events(sterility=dirty))
    assert result.verdict is Verdict.INVALID
    assert "dlopen(libgmp.so.10) succeeded" in result.reason


def test_failing_check_names_itself_and_later_checks_still_reported() -> None:
    wrong = observed("partition_gf", got=[1, 1, 2, 4], expected=[1, 1, 2, 3])
    result = run(passing_events(partition_gf=wrong))
    assert result.verdict is Verdict.FAIL
    assert result.failed_check is not None and result.failed_check.name == "partition_gf"
    assert "term 3: got 4, expected 3" in result.reason
    assert result.check("provenance").status is CheckStatus.PASS  # type: ignore[union-attr]


def test_import_failure_blocks_later_checks() -> None:
    events = until_started("import", observed("import", exception={
        "type": "ImportError", "message": "x", "traceback": ""}),
        observed("exit", returncode=0, stderr=""))
    result = run(events)
    assert result.verdict is Verdict.FAIL
    assert [c.status for c in result.checks][-4:] == [CheckStatus.NOT_RUN] * 4


def test_missing_required_tag_fails_tags_check() -> None:
    result = run(passing_events(), wheel=make_wheel("cp311-cp311-manylinux_2_17_x86_64"))
    assert result.verdict is Verdict.FAIL
    assert result.failed_check.name == "tags"  # type: ignore[union-attr]


def test_installer_accepting_an_incompatible_wheel_is_still_refused() -> None:
    facts = {**FACTS_311, "version": "3.9.2", "version_info": [3, 9, 2], "glibc": "2.31"}
    wheel = make_wheel("cp39-abi3-manylinux_2_34_x86_64")
    result = run(passing_events(facts), wheel=wheel)
    install = result.check("install")
    assert install is not None and install.status is CheckStatus.FAIL
    assert "is not a supported wheel on this platform" in install.detail
    assert "pip would not" in install.detail


def test_process_crash_during_a_check_is_a_fail_in_that_check() -> None:
    events = until_started("partition_gf", observed("exit", returncode=-11,
                                                    stderr="Fatal Python error"))
    result = run(events)
    assert result.verdict is Verdict.FAIL
    pg = result.check("partition_gf")
    assert pg is not None and pg.status is CheckStatus.FAIL and "SIGSEGV" in pg.detail


def test_timeout_marks_the_running_check() -> None:
    result = run(until_started("partition_gf"), timed_out=True, seconds=30.0)
    assert result.verdict is Verdict.TIMEOUT
    assert result.check("partition_gf").status is CheckStatus.TIMEOUT  # type: ignore[union-attr]
    assert result.check("provenance").status is CheckStatus.NOT_RUN  # type: ignore[union-attr]


@pytest.mark.parametrize("step", ["import", "partition_gf"])
def test_a_step_stopped_over_its_budget_is_a_timeout_naming_the_step(step: str) -> None:
    events = until_started(step, observed("exit", returncode=-9, stderr="", over_budget={
        "step": step, "budget": 20.0}))
    result = run(events)
    assert result.verdict is Verdict.TIMEOUT
    assert result.reason == f"{step}: no result within its 20s budget (stopped by the probe)"
    assert result.check(step).status is CheckStatus.TIMEOUT  # type: ignore[union-attr]
    assert result.check("exit").status is CheckStatus.NOT_RUN  # type: ignore[union-attr]


@pytest.mark.parametrize("kw", [{"infra_error": "docker: gone"},
                                {"events": ()}])
def test_infrastructure_problems_are_errors_never_pass(kw: dict[str, Any]) -> None:
    result = run(list(kw.pop("events", passing_events())), **kw)
    assert result.verdict is Verdict.ERROR


def test_probe_exception_is_error() -> None:
    events = [*passing_events()[:3], {"event": "error", "stage": "cell", "message": "boom"}]
    result = run(events, returncode=3)
    assert result.verdict is Verdict.ERROR
    assert "boom" in result.reason


def test_a_venv_that_cannot_be_made_is_an_error() -> None:
    events = until_started("install")[:-1]
    events = [e if e.get("step") != "venv" else observed("venv", returncode=1, output="no")
              for e in events]
    result = run(events, returncode=0)
    assert result.verdict is Verdict.ERROR
    assert "python -m venv failed" in result.reason


def test_installing_another_file_than_the_wheel_under_test_is_an_error() -> None:
    wheel = make_wheel()
    other = {**install_observation(wheel), "staged": {wheel.filename: "f" * 64}}
    result = run(passing_events(install=other), wheel=wheel)
    assert result.verdict is Verdict.ERROR
    assert "other wheel files than the release set's" in result.reason
    assert run(passing_events(), wheel=wheel).verdict is Verdict.PASS


@pytest.mark.parametrize(("values", "verdict"), [
    ({"metadata": "1.0.0rc1", "__version__": "1.0.0rc1", "version()": "1.0.0-rc.1"},
     Verdict.PASS),  # Cargo's spelling of the same PEP 440 version
    ({"metadata": "1.0.0rc1", "__version__": "1.0.0", "version()": "1.0.0rc1"}, Verdict.FAIL),
    ({"metadata": "1.0.0rc1", "__version__": None, "version()": "1.0.0rc1"}, Verdict.FAIL),
])
def test_versions_compare_by_pep_440(values: dict[str, Any], verdict: Verdict) -> None:
    wheel = dataclasses.replace(make_wheel(), metadata_version="1.0.0rc1")
    events = passing_events(version=observed("version", values=values))
    assert run(events, wheel=wheel).verdict is verdict


def test_package_ending_the_process_mid_check_is_a_fail_not_an_error() -> None:
    result = run(until_started("partition_gf", observed("exit", returncode=0, stderr="")))
    assert result.verdict is Verdict.FAIL
    assert result.check("partition_gf").detail == (  # type: ignore[union-attr]
        "the Python process exited (exit status 0) before reporting")


def test_crash_at_interpreter_exit_is_a_fail() -> None:
    crash = observed("exit", returncode=-11, stderr="Segmentation fault")
    result = run(passing_events(exit=crash))
    assert result.verdict is Verdict.FAIL
    assert result.failed_check.name == "exit"  # type: ignore[union-attr]
    assert "SIGSEGV after the checks" in result.reason


@pytest.mark.parametrize("forged", [
    observed("partition_gf", got=[1], expected=[2]),  # a step reported twice
    {"event": "started", "step": "import"},  # a step started twice
    {"event": "check", "name": "partition_gf", "status": "fail"},  # not a probe event
])
def test_a_forged_event_is_an_error_and_never_a_pass(forged: dict[str, Any]) -> None:
    events = passing_events()
    result = run([*events[:-1], forged, events[-1]])
    assert result.verdict is Verdict.ERROR
    assert "the package interfered with the probe" in result.reason


@pytest.mark.parametrize(("audit", "needle"), [
    (Audit(policy="linux_x86_64", glibc="2.17", external=("libgmp.so.10",)),
     "auditwheel finds only linux_x86_64: it needs libgmp.so.10"),
    (Audit(policy="manylinux_2_34_x86_64", glibc="2.34", external=()),
     "it needs glibc 2.34"),
])
def test_a_false_manylinux_tag_fails_the_tags_check(audit: Audit, needle: str) -> None:
    wheel = dataclasses.replace(make_wheel(), audit=audit)
    result = run(passing_events(), wheel=wheel)
    assert result.verdict is Verdict.FAIL
    assert result.failed_check.name == "tags" and needle in result.reason  # type: ignore[union-attr]
    honest = dataclasses.replace(make_wheel(), audit=Audit(
        policy="manylinux_2_17_x86_64", glibc="2.17", external=()))
    assert run(passing_events(), wheel=honest).verdict is Verdict.PASS


def test_auditwheel_failing_is_an_error_with_its_message_never_a_pass() -> None:
    wheel = dataclasses.replace(make_wheel(), audit=Audit(
        policy="?", glibc=None, external=(), error="ValueError: bad ELF"))
    result = run(passing_events(), wheel=wheel)
    assert result.verdict is Verdict.ERROR
    assert result.check("tags").status is CheckStatus.ERROR  # type: ignore[union-attr]
    assert "auditwheel could not analyse the wheel" in result.reason
    assert "ValueError: bad ELF" in result.reason


# ------------------------------------------------ evidence the package's process cannot write


def test_every_step_reported_but_never_looked_at_is_interference() -> None:
    """A package that reports every step itself and exits before the probe looks at its
    process (the forgery of issue 16) is ERROR, never PASS."""
    result = run(passing_events(observer=None))
    assert result.verdict is Verdict.ERROR
    assert "the package interfered with the probe" in result.reason
    assert "ended before the probe could look at it" in result.reason


def test_an_extension_claimed_loaded_but_never_mapped_is_interference() -> None:
    watcher = observed("observer", pid=7, error=None, mapped=["/usr/bin/python3"],
                       extensions={"q_kangaroo._q_kangaroo": None})
    result = run(passing_events(observer=watcher))
    assert result.verdict is Verdict.ERROR
    assert "q_kangaroo._q_kangaroo loaded, but the package's process never mapped" \
        in result.reason


def test_a_process_the_probe_could_not_look_at_is_interference() -> None:
    watcher = observed("observer", pid=7, error="Permission denied", mapped=None)
    assert run(passing_events(observer=watcher)).verdict is Verdict.ERROR


def test_what_the_observer_saw_mapped_counts_for_provenance() -> None:
    """A libgmp the package's process hid from its own report is still seen from outside."""
    system = "/usr/lib/x86_64-linux-gnu/libgmp.so.10"
    ext = "/v/site-packages/q_kangaroo/_q_kangaroo.abi3.so"
    watcher = observed("observer", pid=7, error=None, mapped=["/usr/bin/python3", ext, system],
                       extensions={"q_kangaroo._q_kangaroo": ext})
    result = run(passing_events(observer=watcher))
    assert result.verdict is Verdict.FAIL
    assert result.failed_check.name == "provenance"  # type: ignore[union-attr]


def test_a_failed_import_needs_no_observer() -> None:
    failed = observed("import", exception={"type": "ImportError", "message": "nope"})
    result = run(passing_events(observer=None, **{"import": failed}))
    assert result.verdict is Verdict.FAIL


def test_a_literal_expected_value_is_the_matrixs_not_the_cells_echo() -> None:
    from harness.matrix import Check
    from tests.unit.conftest import P20, PACKAGE

    pkg = dataclasses.replace(PACKAGE, checks=(Check(
        name="partition_gf", expr="q_kangaroo.partition_gf(20)", expected=P20),))
    echoed = observed("partition_gf", got=[1, 2], expected=[1, 2])  # the cell's own echo
    result = run(passing_events(partition_gf=echoed), pkg=pkg)
    assert result.verdict is Verdict.FAIL
    honest = observed("partition_gf", got=P20, expected=["anything"])
    assert run(passing_events(partition_gf=honest), pkg=pkg).verdict is Verdict.PASS
