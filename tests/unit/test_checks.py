"""Each check's judge called directly with recorded observations; the probe's step budgets."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from typing import Any

import pytest

from harness import checks, probe
from harness.checks import CheckStatus, Context
from harness.matrix import Check
from tests.unit.conftest import (
    FACTS_311,
    GMP_IN_WHEEL,
    PACKAGE,
    SITE,
    good_observations,
    make_wheel,
    observed,
    release_of,
)

CTX = Context(wheel=make_wheel(), package=PACKAGE, facts=FACTS_311)
GOOD = good_observations()


@pytest.mark.parametrize("step", [s for s in GOOD if s not in ("venv", "observer")])
def test_every_judge_passes_the_good_wheels_observation(step: str) -> None:
    result = checks.judge_step(step, GOOD[step], CTX)
    assert result.status is CheckStatus.PASS, result.detail
    assert result.name == step


def test_every_built_in_check_has_one_judge() -> None:
    from harness.matrix import CHECKS_AFTER, CHECKS_BEFORE

    assert set(checks.JUDGES) == {*CHECKS_BEFORE, *CHECKS_AFTER}


def test_sterility_lists_every_way_the_library_was_reachable() -> None:
    obs = observed("sterility", env_set=["MINGW_BIN"], evidence={"gmp": {
        "find_library": "libgmp.so.10", "ldconfig": [
            "libgmp.so.10 (libc6,x86-64) => /lib/x86_64-linux-gnu/libgmp.so.10"],
        "dlopen": [], "files": ["/usr/local/lib/libgmp.so.10"]}})
    result = checks.sterility(obs, CTX)
    assert result.status is CheckStatus.FAIL
    assert result.data["problems"] == [
        "ctypes.util.find_library('gmp') = 'libgmp.so.10'",
        "the linker cache lists /lib/x86_64-linux-gnu/libgmp.so.10",
        "/usr/local/lib/libgmp.so.10 exists in a library search directory",
        "environment variable MINGW_BIN is set"]


def test_import_from_outside_site_packages_or_record_fails() -> None:
    shadow = dict(GOOD["import"], modules={"q_kangaroo": "/src/q_kangaroo/__init__.py"})
    assert "outside site-packages" in checks.import_(shadow, CTX).detail
    stray = f"{SITE}/q_kangaroo/_old.so"
    unlisted = dict(GOOD["import"], modules={"q_kangaroo._old": stray})
    result = checks.import_(unlisted, CTX)
    assert result.status is CheckStatus.FAIL and "RECORD: " + stray in result.detail


def test_an_extension_that_does_not_load_fails_unless_it_lacks_an_optional_dependency() -> None:
    def ext_raising(missing: str) -> dict[str, Any]:
        exc = {"type": "ModuleNotFoundError", "message": f"No module named {missing!r}",
               "traceback": "", "missing": missing}
        return dict(GOOD["import"], extensions=[{"module": "q_kangaroo._q_kangaroo",
                                                 "exception": exc}])

    numpy = checks.import_(ext_raising("numpy"), CTX)
    assert numpy.status is CheckStatus.PASS
    assert numpy.data["notes"] == ["q_kangaroo._q_kangaroo needs numpy, which is not installed"]
    own = checks.import_(ext_raising("q_kangaroo._q_kangaroo"), CTX)
    assert own.status is CheckStatus.FAIL
    assert "its extension q_kangaroo._q_kangaroo does not load" in own.detail


def test_declared_check_results_the_wheel_fails_the_matrix_errs() -> None:
    def judge(**obs: Any) -> checks.CheckResult:
        return checks.declared(observed("partition_gf", seconds=0.1, **obs), CTX)

    ok = judge(got=[1, 1, 2**70], expected=[1, 1, 2**70])
    assert ok.status is CheckStatus.PASS and ok.detail == "3 terms, up to 2^71"
    wrong = judge(got=[1, 2], expected=[1, 1])
    assert wrong.status is CheckStatus.FAIL and wrong.data["first_bad_index"] == 1
    raised = {"type": "OverflowError", "message": "too big", "traceback": ""}
    assert judge(exception=raised).status is CheckStatus.FAIL
    typo = judge(exception={"type": "NameError", "message": "name 'q' is not defined",
                            "traceback": ""}, matrix_name_error=True)
    assert typo.status is CheckStatus.ERROR and typo.detail.startswith("the matrix's expression")
    bad_expected = judge(got=[1], expected_exception={"type": "AttributeError",
                                                      "message": "no partition_number"})
    assert bad_expected.status is CheckStatus.ERROR
    assert "the matrix's expected value failed" in bad_expected.detail


def test_provenance_by_file_name_or_soname_and_never_a_lookalike() -> None:
    renamed = "/tmp/elsewhere/libbignum.so.1"
    obs = dict(GOOD["provenance"], loader_log=[renamed, "/usr/lib/libgmpxx.so.4"],
               sonames={GMP_IN_WHEEL: "libgmp.so.10", renamed: "libgmp.so.10",
                        "/usr/lib/libgmpxx.so.4": "libgmpxx.so.4"})
    result = checks.provenance(obs, CTX)
    assert result.status is CheckStatus.FAIL
    assert result.detail == f"loaded from outside the wheel: {renamed}"
    assert result.data["libraries"] == {"gmp": [GMP_IN_WHEEL, renamed]}
    no_proc = checks.provenance(observed("provenance", mapped=None), CTX)
    assert no_proc.status is CheckStatus.SKIP


def test_exit_status_is_judged() -> None:
    assert checks.exit_(dict(GOOD["exit"], returncode=-6), CTX).status is CheckStatus.FAIL
    assert "SIGABRT" in checks.exit_(dict(GOOD["exit"], returncode=-6), CTX).detail


def test_a_new_built_in_check_is_one_table_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    def always_fails(obs: checks.Observation, ctx: Context) -> checks.CheckResult:
        return checks.CheckResult(name="exit", status=CheckStatus.FAIL, code="exit-failed",
                                  detail="new rule")

    monkeypatch.setitem(checks.JUDGES, "exit", always_fails)
    assert checks.judge_step("exit", GOOD["exit"], CTX).detail == "new rule"


# ---------------------------------------------------------------- budgets


def test_the_step_clock_reports_only_a_step_that_overran_its_budget() -> None:
    clock = probe.StepClock({"import": 20.0, "slow": 120.0})
    assert clock.overrun(1000.0) is None  # nothing running
    clock.event({"event": "started", "step": "import"}, 0.0)
    assert clock.overrun(19.9) is None
    assert clock.overrun(20.1) == {"step": "import", "budget": 20.0}
    clock.event({"event": "observed", "step": "import"}, 5.0)
    assert clock.overrun(500.0) is None  # it reported in time
    clock.event({"event": "started", "step": "slow"}, 10.0)
    assert clock.overrun(70.0) is None  # 60 s into a 120 s budget: still fine
    assert clock.overrun(131.0) == {"step": "slow", "budget": 120.0}
    clock.event({"event": "started", "step": "version"}, 200.0)
    assert clock.overrun(10_000.0) is None  # no budget: the cell's timeout bounds it


def test_budgets_come_from_the_matrix_with_per_check_overrides() -> None:
    pkg = dataclasses.replace(PACKAGE, import_budget=5.0, check_budget=60.0, checks=(
        *PACKAGE.checks, Check(name="slow", expr="1", expected=1, timeout=300.0)))
    assert pkg.step_budgets() == {"import": 5.0, "partition_gf": 60.0, "slow": 300.0}


def test_the_probe_stops_a_checks_process_that_overruns_and_says_which_step() -> None:
    hang = ("import os, sys, time\n"
            "os.write(1, b'@@probe {\"event\": \"started\", \"step\": \"import\"}\\n')\n"
            "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", hang], stdout=subprocess.PIPE)
    clock = probe.StepClock({"import": 0.5})
    import threading

    pump = threading.Thread(target=probe._forward_events, args=(proc.stdout, clock),
                            daemon=True)
    start = time.monotonic()
    pump.start()
    assert probe._watch(proc, clock) == {"step": "import", "budget": 0.5}
    assert time.monotonic() - start < 5
    assert proc.returncode == -9


def test_required_tags_are_the_releases_promise_not_each_wheels() -> None:
    abi3, cp312 = make_wheel(), make_wheel("cp312-cp312-manylinux_2_17_x86_64")
    mixed = dataclasses.replace(CTX, wheel=cp312, release=release_of(abi3, cp312))
    assert checks.tags_check({}, mixed).status is CheckStatus.PASS  # the set has the abi3 one
    alone = dataclasses.replace(CTX, wheel=cp312, release=release_of(cp312))
    result = checks.tags_check({}, alone)
    assert result.status is CheckStatus.FAIL and "must carry cp39-abi3" in result.detail
    per_python = dataclasses.replace(CTX, wheel=cp312, release=release_of(
        cp312, make_wheel("cp313-cp313-manylinux_2_17_x86_64")))
    assert "no wheel of the release" in checks.tags_check({}, per_python).detail
