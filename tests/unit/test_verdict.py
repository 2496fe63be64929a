"""Probe events -> verdicts: every verdict reachable, PASS only when everything passed."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from harness.matrix import Package
from harness.verdict import ProbeRun, Verdict, judge
from harness.wheel import Audit, WheelInfo
from tests.unit.conftest import FACTS_311, ev_check, make_wheel, passing_events


def run(events: list[dict[str, Any]], wheel: WheelInfo | None = None, pkg: Package | None = None,
        **kw: Any) -> Any:
    from tests.unit.conftest import PACKAGE

    return judge(ProbeRun(events=tuple(events), **kw), cell_id="c", kind="venv",
                 wheel=wheel or make_wheel(), package=pkg or PACKAGE)


def replace_check(events: list[dict[str, Any]], name: str, **kw: Any) -> list[dict[str, Any]]:
    return [ev_check(name, **kw) if e.get("name") == name else e for e in events]


def test_all_checks_pass() -> None:
    result = run(passing_events())
    assert result.verdict is Verdict.PASS
    assert [c.name for c in result.checks] == ["tags", "sterility", "install", "import",
                                               "version", "partition_gf", "provenance", "exit"]


def test_gmp_reachable_is_invalid_even_if_everything_else_passes() -> None:
    events = replace_check(passing_events(), "sterility", status="fail",
                           detail="dlopen(libgmp.so.10) succeeded")
    result = run(events)
    assert result.verdict is Verdict.INVALID
    assert "libgmp.so.10" in result.reason


def test_failing_check_names_itself_and_later_checks_still_reported() -> None:
    events = replace_check(passing_events(), "partition_gf", status="fail", detail="term 417")
    result = run(events)
    assert result.verdict is Verdict.FAIL
    assert result.failed_check is not None and result.failed_check.name == "partition_gf"
    assert result.check("provenance").status == "pass"  # type: ignore[union-attr]


def test_import_failure_blocks_later_checks() -> None:
    events = [e for e in passing_events() if e.get("name") not in (
        "version", "partition_gf", "provenance")]
    events = replace_check(events, "import", status="fail", detail="ImportError: x")
    result = run(events)
    assert result.verdict is Verdict.FAIL
    assert [c.status for c in result.checks][-3:] == ["not run"] * 3


def test_missing_required_tag_fails_tags_check() -> None:
    result = run(passing_events(), wheel=make_wheel("cp311-cp311-manylinux_2_17_x86_64"))
    assert result.verdict is Verdict.FAIL
    assert result.failed_check.name == "tags"  # type: ignore[union-attr]


def test_installer_accepting_an_incompatible_wheel_is_still_refused() -> None:
    facts = {**FACTS_311, "version": "3.9.2", "version_info": [3, 9, 2], "glibc": "2.31"}
    wheel = make_wheel("cp39-abi3-manylinux_2_34_x86_64")
    result = run(passing_events(facts), wheel=wheel)
    install = result.check("install")
    assert install is not None and install.status == "fail"
    assert "is not a supported wheel on this platform" in install.detail
    assert "pip would not" in install.detail


def test_process_crash_during_a_check_is_a_fail_in_that_check() -> None:
    events = [*passing_events()[:5], {"event": "check_started", "name": "partition_gf"},
              {"event": "checks_exit", "returncode": -11, "stderr": "Fatal Python error"}]
    result = run(events)
    assert result.verdict is Verdict.FAIL
    pg = result.check("partition_gf")
    assert pg is not None and pg.status == "fail" and "SIGSEGV" in pg.detail


def test_timeout_marks_the_running_check() -> None:
    events = [*passing_events()[:5], {"event": "check_started", "name": "partition_gf"}]
    result = run(events, timed_out=True, seconds=30.0)
    assert result.verdict is Verdict.TIMEOUT
    assert result.check("partition_gf").status == "timeout"  # type: ignore[union-attr]


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


def test_installing_another_file_than_the_wheel_under_test_is_an_error() -> None:
    wheel = make_wheel()
    events = replace_check(passing_events(), "install", wheel_sha256="f" * 64)
    result = run(events, wheel=wheel)
    assert result.verdict is Verdict.ERROR
    assert "different wheel file" in result.reason
    same = replace_check(passing_events(), "install", wheel_sha256=wheel.sha256)
    assert run(same, wheel=wheel).verdict is Verdict.PASS


@pytest.mark.parametrize(("values", "verdict"), [
    ({"metadata": "1.0.0rc1", "__version__": "1.0.0rc1", "version()": "1.0.0-rc.1"},
     Verdict.PASS),  # Cargo's spelling of the same PEP 440 version
    ({"metadata": "1.0.0rc1", "__version__": "1.0.0", "version()": "1.0.0rc1"}, Verdict.FAIL),
    ({"metadata": "1.0.0rc1", "__version__": None, "version()": "1.0.0rc1"}, Verdict.FAIL),
])
def test_versions_compare_by_pep_440(values: dict[str, Any], verdict: Verdict) -> None:
    events = replace_check(passing_events(), "version", status="fail", expected="1.0.0rc1",
                           values=values)
    assert run(events).verdict is verdict


def test_package_ending_the_process_mid_check_is_a_fail_not_an_error() -> None:
    events = [*passing_events()[:5], {"event": "check_started", "name": "partition_gf"},
              {"event": "checks_exit", "returncode": 0, "stderr": ""}]
    result = run(events)
    assert result.verdict is Verdict.FAIL
    assert result.check("partition_gf").detail == (  # type: ignore[union-attr]
        "the Python process exited (exit status 0) before reporting")


def test_crash_at_interpreter_exit_is_a_fail() -> None:
    events = [*passing_events()[:-1], {"event": "checks_exit", "returncode": -11,
                                       "stderr": "Segmentation fault"}]
    result = run(events)
    assert result.verdict is Verdict.FAIL
    assert result.failed_check.name == "exit"  # type: ignore[union-attr]
    assert "SIGSEGV after the checks" in result.reason


def test_a_check_reported_twice_is_a_forged_stream_and_never_a_pass() -> None:
    events = passing_events()
    events = [*events[:5], ev_check("partition_gf", status="fail", detail="term 3"),
              *events[5:]]
    result = run(events)
    assert result.verdict is Verdict.ERROR
    assert "reported twice" in result.reason


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
