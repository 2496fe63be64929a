"""Audit pieces that need no real wheel: environment-driven native loads, policy grading,
sdist contents (synthetic sdists)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

from harness import audit, release
from harness.audit.model import Collector
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
