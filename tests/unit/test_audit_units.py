"""Audit pieces that need no real wheel: environment-driven native loads, policy grading,
sdist contents (synthetic sdists)."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from harness import audit, release
from harness import wheel as wheel_mod
from harness.audit import metadata
from harness.audit.model import Collector, WheelAudit, WheelFiles
from harness.policy import ReleasePolicy

GUARDED = '''
import os, sys
if sys.platform == "win32" and "MINGW_BIN" in os.environ:
    os.add_dll_directory(os.environ["MINGW_BIN"])
'''
UNGUARDED = '''
import os
_mingw_bin = os.environ["MINGW_BIN"]
if hasattr(os, "add_dll_directory"):
    os.add_dll_directory(_mingw_bin)
'''
CTYPES = '''
import ctypes, os
def load():
    base = os.getenv("GMP_HOME", "/usr")
    return ctypes.CDLL(os.path.join(base, "lib", "libgmp.so.10"))
'''
HARMLESS = '''
import ctypes, os
here = os.path.dirname(__file__)
lib = ctypes.CDLL(os.path.join(here, "libfoo.so"))
debug = os.environ.get("DEBUG")
'''


def test_env_native_loads_found_and_guard_recognised() -> None:
    [guarded] = audit.env_native_loads(GUARDED)
    assert guarded.variable == "MINGW_BIN" and guarded.windows_only
    assert guarded.loader == "os.add_dll_directory"
    [unguarded] = audit.env_native_loads(UNGUARDED)
    assert unguarded.variable == "MINGW_BIN" and not unguarded.windows_only  # hasattr is no guard
    [ctypes_load] = audit.env_native_loads(CTYPES)
    assert ctypes_load.variable == "GMP_HOME" and ctypes_load.loader == "ctypes.CDLL"
    assert audit.env_native_loads(HARMLESS) == []


def test_policy_grades_and_errors_cannot_be_ignored() -> None:
    out = Collector("f.whl", ReleasePolicy(levels={"no-sdist": "blocker",
                                                   "twine-warning": "ignore"}))
    out.add("no-sdist", "m", "f")
    out.add("twine-warning", "m", "f")
    out.add("contents-W002", "m", "f")  # family default: warning
    out.add("bundled-unused", "m", "f")  # not in the given policy: the default (warning)
    out.error("abi3audit-failed", "m", "f")
    assert [(f.code, f.severity) for f in out.findings] == [
        ("no-sdist", "blocker"), ("contents-W002", "warning"), ("bundled-unused", "warning"),
        ("abi3audit-failed", "error")]
    report = audit.AuditReport(findings=tuple(out.findings), seconds=0.0)
    assert not report.go and len(report.of("blocker")) == 1


def _sdist(path: Path, files: dict[str, str]) -> release.Dist:
    top = path.name.removesuffix(".tar.gz")
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(text.encode())
            tf.addfile(info, io.BytesIO(text.encode()))
    return release.Dist(path=path, kind="sdist", name=canonicalize_name("q_kangaroo"),
                        version=Version("1.0.0"))


MATURIN = "[build-system]\nrequires = ['maturin']\nbuild-backend = 'maturin'\n"


def test_sdist_checks(tmp_path: Path) -> None:
    complete = _sdist(tmp_path / "q_kangaroo-1.0.0.tar.gz", {
        "PKG-INFO": "Metadata-Version: 2.1\nName: q_kangaroo\nVersion: 1.0.0\n",
        "pyproject.toml": MATURIN, "Cargo.toml": "", "src/lib.rs": ""})
    assert audit.audit_sdist(complete, Version("1.0.0"), audit.AuditOptions()) == []
    (tmp_path / "b").mkdir()
    broken = _sdist(tmp_path / "b" / "q_kangaroo-1.0.0.tar.gz", {
        "PKG-INFO": "Metadata-Version: 2.1\nName: q_kangaroo\nVersion: 0.9.0\n",
        "pyproject.toml": MATURIN})
    codes = {f.code: f for f in audit.audit_sdist(broken, Version("1.0.0"),
                                                  audit.AuditOptions())}
    assert set(codes) == {"sdist-version-mismatch", "sdist-incomplete"}
    assert "Cargo.toml" in codes["sdist-incomplete"].message
    (tmp_path / "c").mkdir()
    garbage = tmp_path / "c" / "q_kangaroo-1.0.0.tar.gz"
    garbage.write_bytes(b"not a tarball")
    dist = release.Dist(path=garbage, kind="sdist", name=complete.name, version=Version("1"))
    assert [f.code for f in audit.audit_sdist(dist, Version("1"), audit.AuditOptions())] == [
        "sdist-unreadable"]


def test_one_library_stem_rule() -> None:
    from harness.probe_native import library_stem
    assert library_stem("pkg.libs/libgmp-1a2b3c4d.so.10") == "libgmp"
    assert library_stem("/usr/lib/x86_64-linux-gnu/libgmp.so.10.4.1") == "libgmp"
    assert library_stem("libgmpxx.so.4") == "libgmpxx"
    assert library_stem("libfoo-bar.so") == "libfoo-bar"  # not a repair hash


def test_policy_severity_drops_ignored_codes() -> None:
    policy = ReleasePolicy(levels={"no-sdist": "ignore", "contents": "blocker"})
    assert policy.severity("no-sdist") is None
    assert policy.severity("contents-W002") == "blocker"
    assert policy.severity("bundled-unused") == "warning"
    assert policy.severity("never-heard-of-it") == "blocker"


def _wheel_file(tmp_path: Path, members: dict[str, bytes], name: str = "demo") -> Path:
    """A small wheel (RECORD written) with these members besides its dist-info."""
    dist_info = f"{name}-1.0.0.dist-info"
    members = {**members,
               f"{dist_info}/METADATA": members.get(f"{dist_info}/METADATA", (
                   f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0.0\n"
                   "Description-Content-Type: text/x-rst\n\nTitle\n=====\n\nText.\n").encode()),
               f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: bdist_wheel (0.43.0)\n"
                                     b"Root-Is-Purelib: true\nTag: py3-none-any\n"}
    path = tmp_path / f"{name}-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
        zf.writestr(f"{dist_info}/RECORD", "".join(f"{m},,\n" for m in members)
                    + f"{dist_info}/RECORD,,\n")
    return path


def _check(path: Path, check: Callable[[WheelAudit, Collector], None]) -> list[tuple[str, str]]:
    dist = release.classify(path)
    assert isinstance(dist, release.Dist)
    with zipfile.ZipFile(path) as zf:
        data = {n: zf.read(n) for n in zf.namelist()}
    dist_info = next(n.split("/")[0] for n in data if ".dist-info/" in n)
    wheel = WheelAudit(dist=dist, files=WheelFiles(names=tuple(data), data=data,
                                                   dist_info=dist_info),
                       options=audit.AuditOptions(), version=Version("1.0.0"))
    out = Collector(path.name, ReleasePolicy())
    check(wheel, out)
    return [(f.code, f.message) for f in out.findings]


def test_contents_adapter_reads_check_wheel_contents(tmp_path: Path) -> None:
    """Fails loudly when check-wheel-contents' classes change (the one private-API use)."""
    from harness.audit.adapters import wheel_contents_failures

    path = _wheel_file(tmp_path, {"demo/__init__.py": b"", "demo/__pycache__/x.cpython-311.pyc":
                                  b"\0"})
    failures = {f.check: f for f in wheel_contents_failures(path)}
    assert "W001" in failures and failures["W001"].paths == (
        "demo/__pycache__/x.cpython-311.pyc",)
    assert "pyc" in failures["W001"].message.lower()
    assert ("contents-W001" in {c for c, _ in _check(path, metadata.check_contents)})


def test_index_metadata_and_rendering_checks(tmp_path: Path) -> None:
    """What `twine check` reports, from packaging and readme_renderer (public APIs)."""
    (tmp_path / "a").mkdir()
    good = _wheel_file(tmp_path / "a", {})
    assert _check(good, metadata.check_twine) == []
    (tmp_path / "b").mkdir()
    broken = _wheel_file(tmp_path / "b", {"demo-1.0.0.dist-info/METADATA": (
        b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0.0\nDescription-Content-Type: "
        b"text/x-rst\n\nTitle\n==\n\n`unclosed\n\n.. no-such-directive::\n")})
    assert [c for c, _ in _check(broken, metadata.check_twine)] == ["twine-render"]
    (tmp_path / "c").mkdir()
    invalid = _wheel_file(tmp_path / "c", {"demo-1.0.0.dist-info/METADATA": (
        b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0.0\nRequires-Dist: !!!\n")})
    [(code, message)] = _check(invalid, metadata.check_twine)
    assert code == "twine-invalid" and "requires-dist" in message
    (tmp_path / "d").mkdir()
    bare = _wheel_file(tmp_path / "d", {"demo-1.0.0.dist-info/METADATA": (
        b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0.0\n")})
    assert [c for c, _ in _check(bare, metadata.check_twine)] == ["twine-warning"] * 2


def test_auditwheel_show_json_is_read_and_its_version_checked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pure = _wheel_file(tmp_path, {"demo/__init__.py": b""})
    shown = wheel_mod.auditwheel_show(pure)  # the real tool: a pure wheel is no platform wheel
    assert shown.not_platform and shown.failed is None
    answer = {"version": 2, "wheel": pure.name, "pure": False}
    monkeypatch.setattr(wheel_mod.subprocess, "run", lambda *a, **k: subprocess.
                        CompletedProcess(a, 0, stdout=json.dumps(answer), stderr=""))
    assert "schema version 2" in (wheel_mod.auditwheel_show(pure).failed or "")


def _hooked(folder: Path, tag: str, *members: str) -> Path:
    """A wheel whose ``__init__`` carries the Windows-guarded MINGW_BIN hook."""
    path = folder / f"q_kangaroo-1.0.0-{tag}.whl"
    dist_info = "q_kangaroo-1.0.0.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("q_kangaroo/__init__.py", GUARDED)
        for member in members:
            zf.writestr(member, b"MZ")
        zf.writestr(f"{dist_info}/METADATA",
                    "Metadata-Version: 2.1\nName: q_kangaroo\nVersion: 1.0.0\n")
        zf.writestr(f"{dist_info}/WHEEL",
                    f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n")
        zf.writestr(f"{dist_info}/RECORD", "")
    return path


LINUX = "cp39-abi3-manylinux_2_17_x86_64"
WINDOWS = "cp39-abi3-win_amd64"


@pytest.mark.parametrize(("windows", "graded"), [
    (None, {LINUX: "warning"}),  # Linux-only: the hook cannot run
    (("q_kangaroo/_q_kangaroo.pyd",), {LINUX: "warning", WINDOWS: "blocker"}),
    (("q_kangaroo/_q_kangaroo.pyd", "q_kangaroo.libs/libgmp-10-1a2b.dll"),
     {LINUX: "warning", WINDOWS: "warning"}),  # a fallback the bundled DLL makes unneeded
    (("q_kangaroo/_q_kangaroo.pyd", "q_kangaroo/gmp.h", "q_kangaroo/libgmp.a"),
     {LINUX: "warning", WINDOWS: "blocker"}),  # no DLL of it: not bundled
])
def test_a_guarded_mingw_hook_blocks_only_beside_a_windows_wheel_lacking_the_library(
        tmp_path: Path, windows: tuple[str, ...] | None, graded: dict[str, str]) -> None:
    from harness import gate
    from tests.unit.test_gate import cell, report_of

    _hooked(tmp_path, LINUX, "q_kangaroo/_q_kangaroo.abi3.so")
    if windows is not None:
        _hooked(tmp_path, WINDOWS, *windows)
    found = release.collect([tmp_path], "q_kangaroo")
    report = audit.audit_release(found, audit.AuditOptions(bundled_libraries=("gmp",)))
    hooks = {f.file.split("-", 2)[2].removesuffix(".whl"): f for f in report.findings
             if f.code.startswith("env-native-library-path")}
    assert {tag: f.severity for tag, f in hooks.items()} == graded
    if graded.get(WINDOWS) == "blocker":
        assert "does not bundle gmp" in hooks[WINDOWS].message
    decision = gate.decide(found, report, report_of([cell("venv-py3.11")]), ReleasePolicy(),
                           bundled_libraries=("gmp",))
    blocking = {i.code for i in decision.blockers if i.code.startswith("env-native")}
    assert blocking == ({"env-native-library-path"} if "blocker" in graded.values() else set())
