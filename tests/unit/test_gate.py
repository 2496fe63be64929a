"""The pre-publish gate on synthetic data: decide, the cross-check, promise vs coverage, the
release policy in matrix.yaml, and the markdown summary of a decision."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.tags import parse_tag
from packaging.utils import canonicalize_name
from packaging.version import Version

from harness import gate, matrix, outcome, policy, report, summary
from harness.audit import AuditReport, Finding, WheelFacts
from harness.errors import InputError
from harness.release import Dist, ReleaseSet
from harness.report_schema import ReportDoc
from harness.verdict import CellResult, Diagnosis, ProbeRun, judge
from harness.wheel import Release, WheelInfo
from tests.conftest import default_matrix_data
from tests.unit.conftest import (
    FACTS_311,
    GMP_IN_WHEEL,
    PACKAGE,
    SITE,
    install_observation,
    make_wheel,
    observed,
    passing_events,
)
from tests.unit.conftest import release_of as wheels_release

ABI3 = "q_kangaroo-1.0.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
COPY = "libgmp-1a2b3c4d.so.10"
SHA = "a" * 64
EXT = f"{SITE}/q_kangaroo/_q_kangaroo.abi3.so"
PKG = replace(PACKAGE, wheel_tags=())  # the release's tag promise is not the gate's subject


def dist(filename: str) -> Dist:
    tags = filename.removesuffix(".whl").split("-", 2)[2]
    return Dist(path=Path("/dist") / filename, kind="wheel", name=canonicalize_name(
        "q_kangaroo"), version=Version("1.0.0"), tags=frozenset(parse_tag(tags)))


def release_of(*filenames: str, sdist: bool = True) -> ReleaseSet:
    sdists = (Dist(path=Path("/dist/q_kangaroo-1.0.0.tar.gz"), kind="sdist",
                   name=canonicalize_name("q_kangaroo"), version=Version("1.0.0")),)
    return ReleaseSet(distribution=canonicalize_name("q_kangaroo"), version=Version("1.0.0"),
                      wheels=tuple(dist(f) for f in filenames),
                      sdists=sdists if sdist else (), ignored=())


def facts(filename: str = ABI3, *, needed: tuple[str, ...] = (COPY, "libc.so.6"),
          bundled: tuple[str, ...] = (f"q_kangaroo.libs/{COPY}",)) -> WheelFacts:
    return WheelFacts(file=filename, sha256=SHA,
                      needed={"q_kangaroo/_q_kangaroo.abi3.so": needed,
                              **{b: ("libc.so.6",) for b in bundled}},
                      extensions=("q_kangaroo/_q_kangaroo.abi3.so",), bundled=bundled)


def audit_of(*wheel_facts: WheelFacts, findings: tuple[Finding, ...] = ()) -> AuditReport:
    return AuditReport(findings=findings, seconds=1.5, wheels={w.file: w for w in wheel_facts})


def wheel(filename: str = ABI3, sha256: str = SHA) -> WheelInfo:
    """A fake wheel of that file name (q_kangaroo 1.0.0) and sha256."""
    return replace(make_wheel(filename.removesuffix(".whl").split("-", 2)[2]),
                   path=Path("/w") / filename, sha256=sha256)


def judged_release(*filenames: str, sha256: str = SHA) -> Release:
    """The release set the cells ran on (as staged: these bytes)."""
    return wheels_release(*(wheel(f, sha256) for f in filenames or (ABI3,)))


def cell(cell_id: str, *, file: str = ABI3, verdict: str = "PASS", python: str = "3.11.2",
         glibc: str = "2.36", musl: str = "", mapped: list[str] | None = None,
         sonames: dict[str, str] | None = None, observed_mapping: bool = True,
         import_error: bool = False, release: Release | None = None) -> CellResult:
    """A cell as the harness judges it (harness.verdict.judge): what the probe observed in
    a cell of that Python and libc installing ``file``, mapping ``mapped``; the import failed
    (``import_error``), GMP findable (INVALID) or the install refused (UNCOVERED)."""
    release = release or judged_release(file)
    installed = release.by_name(file) or wheel(file)
    facts = {**FACTS_311, "version": python,
             "version_info": [int(p) for p in python.split(".")], "glibc": glibc,
             "musl": musl}
    mapped = ["/usr/lib/x86_64-linux-gnu/libc.so.6", EXT, GMP_IN_WHEEL] if mapped is None \
        else mapped
    steps: dict[str, dict[str, Any] | None] = {
        "install": install_observation(installed, *release.wheels),
        "provenance": observed("provenance", mapped=mapped if observed_mapping else None,
                               loader_log=[], sonames={GMP_IN_WHEEL: "libgmp.so.10"}
                               if sonames is None else sonames,
                               in_record=[p for p in mapped if p.startswith(SITE)])}
    if import_error:
        steps["import"] = observed("import", exception={
            "type": "ImportError", "message": "libgmp.so.10: cannot open shared object file"})
    if verdict == "INVALID":
        steps["sterility"] = observed("sterility", env_set=[], evidence={"gmp": {
            "find_library": "libgmp.so.10", "ldconfig": [], "dlopen": [], "files": []}})
    if verdict == "UNCOVERED":
        steps["install"] = observed("install", returncode=1, staged={}, installed=None,
                                    output="ERROR: no matching distribution", matches=[])
    result = judge(ProbeRun(events=tuple(passing_events(facts, **steps))), cell_id=cell_id,
                   kind="venv", release=release, package=PKG)
    assert result.verdict.value == verdict, result.reason
    return result


def report_of(cells: list[CellResult], release: Release | None = None,
              interrupted: bool = False) -> ReportDoc:
    """The JSON report of these cells, as a run writes it (report.to_json)."""
    release = release or judged_release()
    info = report.RunInfo(run_id="r", matrix="m.yaml", release=release, started=0.0,
                          finished=1.0, interrupted=interrupted,
                          exit_code=outcome.exit_code(cells, interrupted=interrupted),
                          selected=tuple(c.cell_id for c in cells))
    return report.to_json(info, cells)


def decide(cells: list[CellResult], *, release: ReleaseSet | None = None,
           audit: AuditReport | None = None, pol: policy.ReleasePolicy | None = None,
           judged: Release | None = None, interrupted: bool = False,
           matrix_cells: tuple[str, ...] = (),
           runnable: dict[str, frozenset[tuple[int, int]]] | None = None) -> gate.Decision:
    return gate.decide(release or release_of(ABI3), audit or audit_of(facts()),
                       report_of(cells, judged, interrupted), pol or policy.ReleasePolicy(),
                       bundled_libraries=("gmp",), matrix_cells=matrix_cells,
                       runnable=runnable)


def codes(issues: tuple[gate.Issue, ...]) -> set[str]:
    return {i.code for i in issues}


def test_a_tested_release_with_no_blocker_is_go() -> None:
    d = decide([cell("venv-py3.11"), cell("docker-debian11-py3.9", python="3.9.2",
                                          glibc="2.31")])
    assert d.go and d.exit_code == 0 and not d.blockers, d.blockers
    assert [(t.cell, t.file) for t in d.tested] == [("venv-py3.11", ABI3),
                                                    ("docker-debian11-py3.9", ABI3)]


def test_a_judged_cell_goes_through_report_to_json_into_the_gate() -> None:
    passed = cell("venv-py3.11")
    data = report_of([passed])
    assert data["cells"][0]["artifact"] == {"file": ABI3, "sha256": SHA}
    d = gate.decide(release_of(ABI3), audit_of(facts()), data, policy.ReleasePolicy(),
                    bundled_libraries=("gmp",))
    assert d.go, d.blockers
    assert [(t.cell, t.file, t.sha256, t.verdict) for t in d.tested] == [
        ("venv-py3.11", ABI3, SHA, "PASS")]


def test_every_blocker_names_its_file_fix_and_cells() -> None:
    failing = replace(cell("venv-py3.12", verdict="FAIL", python="3.12.1", import_error=True),
                      diagnosis=Diagnosis(title="libgmp was not bundled",
                                          advice="repair the wheel"))
    finding = Finding(code="unbundled-library", severity="blocker", file=ABI3,
                      message="NEEDs libgmp.so.10", fix="auditwheel repair")
    d = decide([cell("venv-py3.11"), failing], audit=audit_of(facts(), findings=(finding,)))
    assert not d.go and d.exit_code == 1
    by_code = {b.code: b for b in d.blockers}
    assert by_code["unbundled-library"].source == "audit"
    assert by_code["cell-fail"].cells == ("venv-py3.12",)
    assert by_code["cell-fail"].file == ABI3
    assert by_code["cell-fail"].fix == "libgmp was not bundled: repair the wheel"
    assert "unbundled-library" in d.reason and "cell-fail" in d.reason


def test_unjudged_only_is_exit_2_and_invalid_cells_block() -> None:
    error = Finding(code="auditwheel-failed", severity="error", file=ABI3, message="crashed",
                    fix="run by hand")
    d = decide([cell("venv-py3.11")], audit=audit_of(facts(), findings=(error,)))
    assert not d.go and d.exit_code == 2
    d = decide([cell("venv-py3.11", verdict="INVALID")])
    assert not d.go and d.exit_code == 2 and codes(d.blockers) == {"cell-invalid"}
    assert decide([]).exit_code == 2  # no cell ran: nothing proven
    assert "interrupted" in codes(decide([cell("venv-py3.11")], interrupted=True).blockers)


def test_cells_fall_back_to_the_runs_one_wheel_and_must_test_the_audited_bytes() -> None:
    broken = judge(ProbeRun(infra_error="docker: gone"), cell_id="venv-py3.11", kind="venv",
                   release=judged_release(), package=PKG)  # no facts, no pick
    d = decide([broken])
    assert d.tested[0].file == ABI3 and codes(d.blockers) == {"cell-error"}
    other = judged_release(sha256="b" * 64)  # the cells ran on other bytes than audited
    d = decide([cell("venv-py3.11", release=other)], judged=other)
    assert codes(d.blockers) == {"tested-other-bytes"}
    outside = "q_kangaroo-1.0.0-cp39-abi3-manylinux_2_28_x86_64.whl"
    d = decide([cell("venv-py3.11", file=outside)], judged=judged_release(outside))
    assert codes(d.blockers) == {"tested-outside-release"}


def test_uncovered_cells_follow_the_policy() -> None:
    uncovered = cell("docker-alpine3-py3.12", verdict="UNCOVERED", python="3.12.8",
                     glibc="", musl="1.2.5")
    assert uncovered.pick is not None and uncovered.pick.fallback
    d = decide([cell("venv-py3.11"), uncovered])
    (issue,) = d.blockers
    assert issue.code == "uncovered" and issue.cells == ("docker-alpine3-py3.12",)
    assert uncovered.pick.fallback in issue.message
    lenient = policy.from_matrix({"uncovered": "warning"})
    d = decide([cell("venv-py3.11"), uncovered], pol=lenient)
    assert d.go and codes(d.warnings) >= {"uncovered"}
    assert "uncovered: blocker -> warning" in d.policy_changes


def test_cross_check_needed_but_never_mapped() -> None:
    lib_missing = [EXT, "/usr/lib/libc.so.6"]
    d = decide([cell("venv-py3.11", mapped=lib_missing, sonames={})])
    issue = next(b for b in d.blockers if b.code == "needed-never-mapped")
    assert issue.source == "cross-check" and COPY in issue.message
    assert issue.cells == ("venv-py3.11",) and issue.file == ABI3
    # the SONAME counts as the name the loader found
    renamed = [*lib_missing, f"{SITE}/q_kangaroo.libs/libgmp-1a2b3c4d.so.10.5.0"]
    good = cell("venv-py3.11", mapped=renamed, sonames={renamed[-1]: COPY})
    assert decide([good]).go
    ignored = policy.from_matrix({"policy": {"needed-never-mapped": "ignore"}})
    d = decide([cell("venv-py3.11", mapped=lib_missing, sonames={})],
               pol=ignored)
    assert "needed-never-mapped" not in codes(d.blockers) | codes(d.warnings)


def test_cross_check_needs_cells_that_imported_and_observed() -> None:
    failed = report_of([cell("venv-py3.11", verdict="FAIL", import_error=True)])["cells"]
    assert not gate.cross_check(facts(), failed, policy.ReleasePolicy(), ("gmp",))
    unobserved = report_of([cell("venv-py3.11", observed_mapping=False)])["cells"]
    assert not gate.cross_check(facts(), unobserved, policy.ReleasePolicy(), ("gmp",))


def test_cross_check_system_copy_shadows_the_bundled_one() -> None:
    shadowed = [EXT, "/usr/lib/x86_64-linux-gnu/libz.so.1", GMP_IN_WHEEL]
    wheel = facts(needed=("libz.so.1", "libc.so.6"),
                  bundled=("q_kangaroo.libs/libz-0a1b2c3d.so.1",))
    d = decide([cell("venv-py3.11", mapped=shadowed)], audit=audit_of(wheel))
    issue = next(b for b in d.blockers if b.code == "bundled-shadowed")
    assert "/usr/lib/x86_64-linux-gnu/libz.so.1" in issue.message


def test_cross_check_bundled_library_never_used_is_a_warning() -> None:
    wheel = facts(bundled=(f"q_kangaroo.libs/{COPY}", "q_kangaroo.libs/libfoo-0a1b2c3d.so.2"))
    d = decide([cell("venv-py3.11")], audit=audit_of(wheel))
    assert d.go and "bundled-never-mapped" in codes(d.warnings)
    assert "libfoo" in next(w for w in d.warnings if w.code == "bundled-never-mapped").message


def test_promise_vs_coverage_names_what_no_cell_tested() -> None:
    d = decide([cell("venv-py3.11"), cell("docker-debian11-py3.9", python="3.9.2",
                                          glibc="2.31")])
    (cov,) = d.coverage
    assert cov.promises == ("CPython ≥ 3.9 (abi3)", "glibc ≥ 2.17", "x86_64")
    assert cov.covered == ("CPython 3.9, 3.11", "glibc 2.31-2.36", "x86_64")
    assert "CPython 3.10, 3.12, 3.13, 3.14 and later" in cov.untested
    assert "glibc 2.17-2.30 (oldest tested 2.31)" in cov.untested
    assert cov.passed == 2 and len(cov.cells) == 2


def test_coverage_per_python_musl_and_untested_wheels() -> None:
    cp312 = "q_kangaroo-1.0.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    cp313 = "q_kangaroo-1.0.0-cp313-cp313-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    musl = "q_kangaroo-1.0.0-cp39-abi3-musllinux_1_2_x86_64.whl"
    rel = release_of(cp312, cp313, musl)
    judged = judged_release(cp312, cp313, musl)
    d = decide([cell("venv-py3.12", file=cp312, python="3.12.1", glibc="2.17",
                     release=judged),
                cell("docker-alpine3-py3.12", file=musl, python="3.12.8", glibc="",
                     musl="1.2.5", release=judged)],
               release=rel, audit=audit_of(facts(cp312), facts(cp313), facts(musl)),
               judged=judged)
    covs = {c.file: c for c in d.coverage}
    assert covs[cp312].promises[0] == "CPython 3.12" and covs[cp312].untested == ()
    assert covs[musl].promises[:2] == ("CPython ≥ 3.9 (abi3)", "musl ≥ 1.2")
    assert "musl 1.2.5" in covs[musl].covered
    assert not any("musl" in u for u in covs[musl].untested)
    assert covs[cp313].cells == () and "every glibc (no glibc cell installed it)" in \
        covs[cp313].untested
    untested = next(w for w in d.warnings if w.code == "wheel-untested")
    assert untested.file == cp313 and d.go
    strict = policy.from_matrix({"policy": {"wheel-untested": "blocker"}})
    assert not decide([cell("venv-py3.12", file=cp312, python="3.12.1", release=judged)],
                      release=rel, audit=audit_of(facts(cp312), facts(cp313), facts(musl)),
                      pol=strict, judged=judged).go


def test_decision_json_and_markdown_name_blockers_fixes_and_files() -> None:
    failing = replace(cell("venv-py3.12", verdict="FAIL", python="3.12.1", import_error=True),
                      reason="import | broke")
    d = decide([cell("venv-py3.11"), failing])
    data = report_of([cell("venv-py3.11"), failing])
    data["decision"] = gate.decision_json(d)
    assert data["decision"]["exit_code"] == 1
    text = summary.markdown(data)
    assert "**NO-GO**" in text and "### Blockers" in text
    assert "**cell-fail**" in text and "(cells: venv-py3.12)" in text and "**fix**" in text
    assert "import \\| broke" in text  # table/markdown safe
    assert f"| venv-py3.11 | {ABI3} | `{SHA[:16]}` | PASS |" in text
    assert "### Promise vs coverage" in text and "glibc ≥ 2.17" in text
    lines = gate.decision_lines(d)
    assert lines[0].startswith("NO-GO") and any("fix:" in line for line in lines)


def test_release_policy_levels_and_changes() -> None:
    pol = policy.from_matrix({"policy": {"no-sdist": "blocker", "contents": "ignore"},
                              "max_size_mb": 80, "uncovered": "warning"})
    assert pol.level("no-sdist") == "blocker" and pol.level("contents-W002") == "ignore"
    assert pol.level("size") == "blocker" and pol.level("never-heard-of-it") == "blocker"
    assert pol.merged()["uncovered"] == "warning"
    assert pol.changes() == ["contents: warning -> ignore", "no-sdist: warning -> blocker",
                             "uncovered: blocker -> warning", "max_size_mb: 50 -> 80"]


def test_matrix_release_section(tmp_path: Path) -> None:
    data = default_matrix_data()
    data["release"] = {"policy": {"twine-warning": "ignore", "contents-W002": "blocker"},
                       "max_size_mb": 20, "uncovered": "warning"}
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    m = matrix.load(path)
    assert m.release.max_size_mb == 20 and m.release.level("twine-warning") == "ignore"
    assert m.release.level("contents-W002") == "blocker"
    assert m.release.level("uncovered") == "warning"
    for bad, words in [({"policy": {"no-such-code": "warning"}}, "release.policy"),
                       ({"policy": {"size": "maybe"}}, "release.policy.size"),
                       ({"uncovered": "ignore"}, "release.uncovered"),
                       ({"max_size_mb": 0}, "release.max_size_mb")]:
        broken = copy.deepcopy(data)
        broken["release"] = bad
        path.write_text(yaml.safe_dump(broken))
        with pytest.raises(InputError, match=words.replace(".", r"\.")):
            matrix.load(path)


def test_a_partial_matrix_says_so_and_policy_can_make_it_block() -> None:
    cells = [cell("venv-py3.11")]
    matrix = ("venv-py3.11", "venv-py3.12", "docker-debian11-py3.9")
    d = decide(cells, matrix_cells=matrix)
    assert d.go and "1 of 3 cells" in d.reason
    (warning,) = [w for w in d.warnings if w.code == "partial-matrix"]
    assert "venv-py3.12, docker-debian11-py3.9 not proven" in warning.message
    strict = policy.ReleasePolicy(levels={"partial-matrix": "blocker"})
    d = decide(cells, pol=strict, matrix_cells=matrix)
    assert not d.go and codes(d.blockers) == {"partial-matrix"}


def test_untested_wheel_blocks_when_a_cell_of_its_arch_could_have_run() -> None:
    arm = "q_kangaroo-1.0.0-cp39-abi3-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
    win = "q_kangaroo-1.0.0-cp39-abi3-win_amd64.whl"
    rel = release_of(ABI3, arm, win)
    judged = judged_release(ABI3, arm, win)
    audit = audit_of(facts(), facts(arm), facts(win))
    cells = [cell("venv-py3.11", release=judged)]
    plain = decide(cells, release=rel, audit=audit, judged=judged)
    assert plain.go and {"wheel-untested"} == codes(plain.warnings)  # nothing could run them
    runnable = {"x86_64": frozenset({(3, 11)}), "aarch64": frozenset({(3, 9), (3, 13)})}
    d = decide(cells, release=rel, audit=audit, judged=judged, runnable=runnable)
    blocker = next(b for b in d.blockers if b.code == "wheel-untested-runnable")
    assert not d.go and blocker.file == arm
    assert "a cell (aarch64, CPython 3.9) could have run it" in blocker.message
    assert [w.file for w in d.warnings if w.code == "wheel-untested"] == [win]
    # a Python no aarch64 image has: nothing could have run it
    old = "q_kangaroo-1.0.0-cp38-cp38-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
    judged_old = judged_release(ABI3, old)
    d = decide([cell("venv-py3.11", release=judged_old)], release=release_of(ABI3, old),
               audit=audit_of(facts(), facts(old)), judged=judged_old, runnable=runnable)
    assert d.go and "wheel-untested" in codes(d.warnings)
    lenient = policy.from_matrix({"policy": {"wheel-untested-runnable": "warning"}})
    assert decide(cells, release=rel, audit=audit, judged=judged, runnable=runnable,
                  pol=lenient).go
