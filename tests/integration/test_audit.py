"""The static audit and the picking on real fixture wheels and real release sets (built and
cached by tests/fixture_wheels/build.py): each broken wheel gets its blocker, the good release
is go, and the audit stays within a few seconds."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from harness import audit, release
from harness.policy import ReleasePolicy
from tests.conftest import _load_builder

AUDITED = ("good", "nogmp", "neededunchanged", "abi3floor", "fakeabi3", "wrongtag",
           "metamismatch", "badrecord", "oversize", "mingwbin", "musllinux")
OPTIONS = audit.AuditOptions(bundled_libraries=("gmp",))


@pytest.fixture(scope="session")
def builder() -> Any:
    return _load_builder()


@pytest.fixture(scope="session")
def fixture_files(builder: Any) -> dict[str, Path]:
    return dict(builder.build_variants([*AUDITED, "sdist"]))


@pytest.fixture(scope="session")
def release_dirs(builder: Any) -> dict[str, Path]:
    return {name: builder.build_release_set(name) for name in ("perpython", "mixed")}


def _audit_one(fixture_files: dict[str, Path], variant: str, tmp_path: Path,
               options: audit.AuditOptions = OPTIONS) -> audit.AuditReport:
    """The audit of a release made of one fixture wheel plus the good sdist."""
    for name in (variant, "sdist"):
        shutil.copy(fixture_files[name], tmp_path / fixture_files[name].name)
    return audit.audit_release(release.collect([tmp_path], "q_kangaroo"), options)


def _blockers(report: audit.AuditReport) -> dict[str, audit.Finding]:
    return {f.code: f for f in report.of("blocker")}


def test_good_wheel_is_go(fixture_files: dict[str, Path], tmp_path: Path) -> None:
    report = _audit_one(fixture_files, "good", tmp_path)
    assert report.go, list(audit.finding_lines(report))
    codes = {f.code for f in report.findings}
    assert "env-native-library-path-guarded" in codes  # the Windows-only MINGW_BIN branch
    assert not codes & {"contents-W009", "contents-W010"}  # auditwheel's .libs/ is fine


@pytest.mark.parametrize(("variant", "code", "words"), [
    ("nogmp", "external-library", "libgmp.so.10"),
    ("nogmp", "unbundled-library", "libgmp.so.10"),
    ("neededunchanged", "bundled-but-system-needed", "patchelf --replace-needed libgmp.so.10"),
    ("abi3floor", "abi3-floor-above-requires-python", "Python 3.9, 3.10 get no wheel"),
    ("fakeabi3", "abi3-version-mismatch", "needs the stable ABI of Python 3.10"),
    ("fakeabi3", "abi3-extension-suffix", "cpython-311"),
    ("wrongtag", "arch-mismatch", "x86_64 code but the tags say aarch64"),
    ("metamismatch", "metadata-version-mismatch", "METADATA Version 1.0.1"),
    ("badrecord", "record-hash-mismatch", "_q_kangaroo.abi3.so"),
    ("oversize", "size", "above the 50 MB threshold"),
    ("mingwbin", "env-native-library-path", "$MINGW_BIN"),
    ("musllinux", "libc-mismatch", "linked against musl"),
])
def test_blockers(fixture_files: dict[str, Path], tmp_path: Path, variant: str, code: str,
                  words: str) -> None:
    report = _audit_one(fixture_files, variant, tmp_path)
    blockers = _blockers(report)
    assert code in blockers, list(audit.finding_lines(report))
    finding = blockers[code]
    assert words in finding.message + " " + finding.fix
    assert finding.fix and finding.file == fixture_files[variant].name
    assert not report.go


def test_wrong_arch_makes_auditwheel_an_error_not_a_skip(fixture_files: dict[str, Path],
                                                        tmp_path: Path) -> None:
    report = _audit_one(fixture_files, "wrongtag", tmp_path)
    assert {f.code for f in report.of("error")} <= {"auditwheel-failed"}
    assert report.of("error") or "platform-tag-unmet" in _blockers(report)


def test_size_threshold_and_policy_are_configurable(fixture_files: dict[str, Path],
                                                    tmp_path: Path) -> None:
    relaxed = audit.AuditOptions(policy=ReleasePolicy(max_size_mb=100))
    assert "size" not in _blockers(_audit_one(fixture_files, "oversize", tmp_path, relaxed))
    strict = audit.AuditOptions(policy=ReleasePolicy(
        levels={"env-native-library-path-guarded": "blocker"}))
    (tmp_path / "strict").mkdir()
    report = _audit_one(fixture_files, "good", tmp_path / "strict", strict)
    assert "env-native-library-path-guarded" in _blockers(report)


def test_real_sdist(fixture_files: dict[str, Path]) -> None:
    contents = release.read_sdist(fixture_files["sdist"])
    assert contents.backend == "maturin" and "Cargo.toml" in contents.files
    assert contents.pkg_info["Version"] == "1.0.0"


def test_per_python_release_is_go(release_dirs: dict[str, Path]) -> None:
    rs = release.collect([release_dirs["perpython"]], "q_kangaroo")
    assert len(rs.wheels) == 5 and rs.sdist is not None
    started = time.monotonic()
    report = audit.audit_release(rs, OPTIONS)
    elapsed = time.monotonic() - started
    print(f"audit of {len(rs.files)} files: {elapsed:.2f} s")
    assert report.go, list(audit.finding_lines(report))


def _facts(minor: int, **extra: Any) -> dict[str, Any]:
    return {"version": f"3.{minor}.0", "version_info": [3, minor, 0],
            "implementation": "cpython", "abiflags": "", "machine": "x86_64",
            "glibc": "2.31", **extra}


def test_picking_on_real_release_sets(release_dirs: dict[str, Path]) -> None:
    per_python = release.collect([release_dirs["perpython"]], "q_kangaroo")
    for minor in range(9, 14):
        chosen = release.pick(per_python, _facts(minor))
        assert chosen.wheel is not None and f"-cp3{minor}-cp3{minor}-" in chosen.wheel.filename
    uncovered = release.pick(per_python, _facts(14))
    assert not uncovered.covered and "maturin" in uncovered.fallback
    mixed = release.collect([release_dirs["mixed"]], "q_kangaroo")
    picks = {m: release.pick(mixed, _facts(m)).wheel for m in range(9, 14)}
    names = {m: w.filename if w else None for m, w in picks.items()}
    assert all("-cp39-abi3-manylinux" in str(names[m]) for m in (9, 10, 11))
    assert "-cp312-cp312-" in str(names[12]) and "-cp313-cp313-" in str(names[13])
    musl = release.pick(mixed, _facts(12, glibc="", musl="1.2.4"))
    assert musl.wheel is not None and "musllinux_1_2" in musl.wheel.filename


RUST_WORDS = re.compile(r"pyo3|maturin|cargo|#\[pymodule\]|rust", re.I)


def test_setuptools_c_extension_gets_no_rust_advice(builder: Any, tmp_path: Path) -> None:
    """A real gmpy2-like wheel (a C extension linking GMP, built by setuptools, unrepaired):
    the audit and the diagnosis speak setuptools, never PyO3 or maturin."""
    from harness import wheel as wheel_mod
    from harness.advice import backend_of
    from harness.diagnosis import explain
    from harness.verdict import Verdict
    from tests.unit.conftest import FACTS_311, PACKAGE, judge_one, observed, passing_events

    cext = builder.build_variants(["cext"])["cext"]
    shutil.copy(cext, tmp_path / cext.name)
    info = wheel_mod.inspect(cext)
    assert info.generator.startswith("setuptools") and backend_of(info.generator) == "setuptools"
    report = audit.audit_release(release.collect([tmp_path], "q_kangaroo"), OPTIONS)
    by_code = {f.code: f for f in report.findings}
    assert "unbundled-library" in by_code and "no-sdist" in by_code
    assert "auditwheel repair" in by_code["unbundled-library"].fix
    for f in report.findings:
        assert not RUST_WORDS.search(f.message + f.fix), f
    # a Python 3.9 cell: pip refuses the cp311 wheel; why, and the fix in setuptools' terms
    facts = {**FACTS_311, "version": "3.9.2", "version_info": [3, 9, 2], "glibc": "2.31"}
    refused = observed("install", returncode=1, output=f"ERROR: {info.filename} is not a "
                       "supported wheel on this platform.", staged={info.filename: info.sha256})
    cell = judge_one(passing_events(facts, install=refused), info)
    assert cell.verdict is Verdict.UNCOVERED, cell.reason
    d = explain(cell, info, PACKAGE).diagnosis
    assert d is not None and "tag not accepted" in d.title
    assert "one wheel per Python" in d.advice and "limited API" in d.advice
    assert not RUST_WORDS.search(d.advice), d.advice
