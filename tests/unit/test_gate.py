"""The pre-publish gate on synthetic data: decide, the cross-check, promise vs coverage, the
release policy in matrix.yaml, and the markdown summary of a decision."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.tags import parse_tag
from packaging.utils import canonicalize_name
from packaging.version import Version

from harness import gate, matrix, policy, summary
from harness.audit import AuditReport, Finding, WheelFacts
from harness.errors import InputError
from harness.release import Dist, ReleaseSet
from tests.conftest import default_matrix_data

ABI3 = "q_kangaroo-1.0.0-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
SITE = "/tmp/cell/venv/lib/python3.11/site-packages"
COPY = "libgmp-1a2b3c4d.so.10"
SHA = "a" * 64


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


def cell(cell_id: str, *, file: str = ABI3, verdict: str = "PASS", python: str = "3.11.2",
         glibc: str = "2.36", musl: str = "", mapped: list[str] | None = None,
         sha256: str = SHA, **extra: Any) -> dict[str, Any]:
    """A report cell as the JSON report holds it (artifact and pick as release runs add)."""
    ext = f"{SITE}/q_kangaroo/_q_kangaroo.abi3.so"
    lib = f"{SITE}/q_kangaroo.libs/{COPY}"
    if mapped is None:
        mapped = ["/usr/lib/x86_64-linux-gnu/libc.so.6", ext, lib]
    return {"id": cell_id, "verdict": verdict, "reason": extra.pop("reason", ""),
            "interpreter": {"version": python, "implementation": "cpython", "glibc": glibc,
                            "musl": musl, "machine": "x86_64"},
            "artifact": {"file": file, "sha256": sha256},
            "pick": {"file": file, "covered": True, "fallback": ""},
            "checks": [{"name": "import", "status": "pass" if verdict == "PASS" else "fail"},
                       {"name": "provenance", "status": "pass",
                        "data": {"mapped": mapped, "loader_log": [], "sonames": {},
                                 "in_record": [p for p in mapped if p.startswith(SITE)]}}],
            **extra}


def decide(cells: list[dict[str, Any]], *, release: ReleaseSet | None = None,
           audit: AuditReport | None = None, pol: policy.ReleasePolicy | None = None,
           **report: Any) -> gate.Decision:
    return gate.decide(release or release_of(ABI3), audit or audit_of(facts()),
                       {"cells": cells, **report}, pol or policy.ReleasePolicy(),
                       bundled_libraries=("gmp",))


def codes(issues: tuple[gate.Issue, ...]) -> set[str]:
    return {i.code for i in issues}


def test_a_tested_release_with_no_blocker_is_go() -> None:
    d = decide([cell("venv-py3.11"), cell("docker-debian11-py3.9", python="3.9.2",
                                          glibc="2.31")])
    assert d.go and d.exit_code == 0 and not d.blockers, d.blockers
    assert [(t.cell, t.file) for t in d.tested] == [("venv-py3.11", ABI3),
                                                    ("docker-debian11-py3.9", ABI3)]


def test_every_blocker_names_its_file_fix_and_cells() -> None:
    failing = cell("venv-py3.12", verdict="FAIL", python="3.12.1", reason="import: ImportError",
                   diagnosis={"title": "libgmp was not bundled", "advice": "repair the wheel"})
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
    d = decide([cell("venv-py3.11", verdict="INVALID", reason="libgmp findable")])
    assert not d.go and d.exit_code == 2 and codes(d.blockers) == {"cell-invalid"}
    assert decide([]).exit_code == 2  # no cell ran: nothing proven
    assert "interrupted" in codes(decide([cell("venv-py3.11")], interrupted=True).blockers)


def test_cells_fall_back_to_the_runs_one_wheel_and_must_test_the_audited_bytes() -> None:
    plain = cell("venv-py3.11")
    del plain["artifact"], plain["pick"]
    d = decide([plain], wheel={"file": ABI3, "sha256": SHA})
    assert d.go and d.tested[0].file == ABI3
    d = decide([cell("venv-py3.11", sha256="b" * 64)])
    assert codes(d.blockers) == {"tested-other-bytes"}
    d = decide([cell("venv-py3.11", file="other-1.0-py3-none-any.whl")])
    assert codes(d.blockers) == {"tested-outside-release"}


def test_uncovered_cells_follow_the_policy() -> None:
    uncovered = cell("docker-alpine3-py3.12", verdict="UNCOVERED", file="")
    uncovered["pick"] = {"file": None, "covered": False,
                         "fallback": "pip builds the sdist: needs Rust"}
    d = decide([cell("venv-py3.11"), uncovered])
    (issue,) = d.blockers
    assert issue.code == "uncovered" and issue.cells == ("docker-alpine3-py3.12",)
    assert "pip builds the sdist: needs Rust" in issue.message
    lenient = policy.from_matrix({"uncovered": "warning"})
    d = decide([cell("venv-py3.11"), uncovered], pol=lenient)
    assert d.go and codes(d.warnings) >= {"uncovered"}
    assert "uncovered: blocker -> warning" in d.policy_changes


def test_cross_check_needed_but_never_mapped() -> None:
    lib_missing = [f"{SITE}/q_kangaroo/_q_kangaroo.abi3.so", "/usr/lib/libc.so.6"]
    d = decide([cell("venv-py3.11", mapped=lib_missing)])
    issue = next(b for b in d.blockers if b.code == "needed-never-mapped")
    assert issue.source == "cross-check" and COPY in issue.message
    assert issue.cells == ("venv-py3.11",) and issue.file == ABI3
    # the SONAME counts as the name the loader found
    renamed = [*lib_missing, f"{SITE}/q_kangaroo.libs/libgmp-1a2b3c4d.so.10.5.0"]
    good = cell("venv-py3.11", mapped=renamed)
    good["checks"][1]["data"]["sonames"] = {renamed[-1]: COPY}
    assert decide([good]).go
    ignored = policy.from_matrix({"policy": {"needed-never-mapped": "ignore"}})
    d = decide([cell("venv-py3.11", mapped=lib_missing)], pol=ignored)
    assert "needed-never-mapped" not in codes(d.blockers) | codes(d.warnings)


def test_cross_check_needs_cells_that_imported_and_observed() -> None:
    failed = cell("venv-py3.11", verdict="FAIL", mapped=[])
    assert not gate.cross_check(facts(), [failed], policy.ReleasePolicy(), ("gmp",))
    unobserved = cell("venv-py3.11")
    unobserved["checks"][1]["data"]["mapped"] = None
    assert not gate.cross_check(facts(), [unobserved], policy.ReleasePolicy(), ("gmp",))


def test_cross_check_system_copy_shadows_the_bundled_one() -> None:
    shadowed = [f"{SITE}/q_kangaroo/_q_kangaroo.abi3.so", "/usr/lib/x86_64-linux-gnu/libz.so.1"]
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
    d = decide([cell("venv-py3.12", file=cp312, python="3.12.1", glibc="2.17"),
                cell("docker-alpine3-py3.12", file=musl, python="3.12.8", glibc="",
                     musl="1.2.5")],
               release=rel, audit=audit_of(facts(cp312), facts(cp313), facts(musl)))
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
    assert not decide(d_cells := [cell("venv-py3.12", file=cp312, python="3.12.1")],
                      release=rel, audit=audit_of(facts(cp312), facts(cp313), facts(musl)),
                      pol=strict).go and d_cells


def test_decision_json_and_markdown_name_blockers_fixes_and_files() -> None:
    failing = cell("venv-py3.12", verdict="FAIL", python="3.12.1", reason="import | broke")
    d = decide([cell("venv-py3.11"), failing])
    data = {"wheel": {"file": ABI3, "sha256": SHA}, "cells": [], "summary": {},
            "decision": gate.decision_json(d)}
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
    d = gate.decide(release_of(ABI3), audit_of(facts()), {"cells": cells},
                    policy.ReleasePolicy(), bundled_libraries=("gmp",), matrix_cells=matrix)
    assert d.go and "1 of 3 cells" in d.reason
    (warning,) = [w for w in d.warnings if w.code == "partial-matrix"]
    assert "venv-py3.12, docker-debian11-py3.9 not proven" in warning.message
    strict = policy.ReleasePolicy(levels={"partial-matrix": "blocker"})
    d = gate.decide(release_of(ABI3), audit_of(facts()), {"cells": cells}, strict,
                    bundled_libraries=("gmp",), matrix_cells=matrix)
    assert not d.go and codes(d.blockers) == {"partial-matrix"}
