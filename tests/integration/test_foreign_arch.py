"""Foreign architectures on real wheels: a real GMP-bundling project's aarch64 wheels (gmpy2,
from the package index, cached) run in aarch64 containers under qemu-user (binfmt_misc).

An x86_64-only matrix covers the release's aarch64 wheels without edits (the harness adds the
emulated cells and says so); the real wheels PASS there; broken copies of them (the bundled
GMP removed; NEEDED pointed at the system's libgmp) FAIL in the aarch64 cell only.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, RunHarness
from tests.integration.wheel_surgery import rewrite

INDEX = ROOT / "tests" / "fixture_wheels" / "index.py"


@pytest.fixture(scope="module")
def gmpy2_dir() -> Path:
    """gmpy2's real wheels (cp39, cp311, cp313 x x86_64, aarch64), downloaded once."""
    out = subprocess.run([sys.executable, str(INDEX)], capture_output=True, text=True,
                         check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def _matrix(tmp_path: Path, **defaults: Any) -> Path:
    """gmpy2 as the package under test; one x86_64 container cell (Python 3.9)."""
    data = {
        "package": {
            "distribution": "gmpy2", "import": "gmpy2", "version_from": ["version()"],
            "bundled_libraries": ["gmp"],
            "checks": [{"name": "bigint", "expr": "int(gmpy2.mpz(3) ** 100 + 1)",
                        "expected": 3 ** 100 + 1},
                       {"name": "mpfr", "expr": "str(gmpy2.sqrt(gmpy2.mpfr(2)))[:8]",
                        "expected": "1.414213"}]},
        "defaults": {"timeout": 600, **defaults},
        "environments": {"container": [{"image": "debian11-py3.9"}]},
    }
    path = tmp_path / "gmpy2.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _dist(tmp_path: Path, gmpy2_dir: Path, *, broken: Path | None = None) -> Path:
    """The cp39 wheels of both architectures (``broken`` replaces the aarch64 one)."""
    out = tmp_path / "dist"
    out.mkdir()
    for whl in gmpy2_dir.glob("gmpy2-*-cp39-cp39-*.whl"):
        src = broken if broken is not None and "aarch64" in whl.name else whl
        shutil.copy(src, out / whl.name)
    return out


def _aarch64(gmpy2_dir: Path) -> Path:
    return next(gmpy2_dir.glob("gmpy2-*-cp39-cp39-*aarch64*.whl"))


def _without_bundled_gmp(files: dict[str, bytes]) -> dict[str, bytes]:
    """The files minus the bundled GMP (and the zip's directory entries, which RECORD and
    auditwheel do not expect)."""
    return {n: d for n, d in files.items()
            if not n.startswith("gmpy2.libs/libgmp-") and not n.endswith("/")}


def _needing_system_gmp(tmp_path: Path, wheel: Path) -> Path:
    """The bundled GMP dropped and every NEEDED of it renamed to the system's libgmp.so.10
    (the wheel of a project that forgot to bundle), made with patchelf."""
    work = tmp_path / "patch"
    work.mkdir()

    def edit(files: dict[str, bytes]) -> dict[str, bytes]:
        bundled = next(n for n in files if n.startswith("gmpy2.libs/libgmp-"))
        soname = Path(bundled).name
        out = {}
        for name, data in _without_bundled_gmp(files).items():
            if name.endswith(".so") or ".so." in name:
                path = work / Path(name).name
                path.write_bytes(data)
                subprocess.run(["patchelf", "--replace-needed", soname, "libgmp.so.10",
                                str(path)], check=True)
                data = path.read_bytes()
            out[name] = data
        return out

    return rewrite(wheel, tmp_path / "needed-system", edit)


def _cells(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in report["cells"]}


AARCH64_CELL = "docker-debian11-py3.9-aarch64"


def test_x86_matrix_covers_the_aarch64_wheels_and_they_pass(
        gmpy2_dir: Path, run_harness: RunHarness, tmp_path: Path) -> None:
    run = run_harness(str(_dist(tmp_path, gmpy2_dir)), "--matrix", str(_matrix(tmp_path)),
                      "--prepublish")
    assert run.report is not None, run.output
    cells = _cells(run.report)
    assert set(cells) == {"docker-debian11-py3.9", AARCH64_CELL}, run.output
    assert "added 1 emulated cell" in run.output
    arm = cells[AARCH64_CELL]
    assert arm["verdict"] == "PASS", arm
    assert arm["artifact"]["file"] == _aarch64(gmpy2_dir).name
    assert arm["interpreter"]["machine"] == "aarch64"
    assert cells["docker-debian11-py3.9"]["interpreter"]["machine"] == "x86_64"
    decision = run.report["decision"]
    assert "wheel-untested-runnable" not in {b["code"] for b in decision["blockers"]}
    cov = {c["file"]: c for c in decision["coverage"]}[_aarch64(gmpy2_dir).name]
    assert cov["cells"] == [AARCH64_CELL] and "aarch64" in cov["covered"]


@pytest.mark.parametrize("how", ["no-bundled-gmp", "needed-system"])
def test_broken_aarch64_copy_fails_in_the_aarch64_cell_only(
        how: str, gmpy2_dir: Path, run_harness: RunHarness, tmp_path: Path) -> None:
    src = _aarch64(gmpy2_dir)
    broken = (rewrite(src, tmp_path / "broken", _without_bundled_gmp) if how == "no-bundled-gmp"
              else _needing_system_gmp(tmp_path, src))
    run = run_harness(str(_dist(tmp_path, gmpy2_dir, broken=broken)), "--matrix",
                      str(_matrix(tmp_path)))
    assert run.returncode == 1, run.output
    cells = _cells(run.report or {})
    assert cells["docker-debian11-py3.9"]["verdict"] == "PASS"
    arm = cells[AARCH64_CELL]
    assert arm["verdict"] == "FAIL", arm
    checks = {c["name"]: c for c in arm["checks"]}
    assert checks["import"]["status"] == "fail", checks
    assert "libgmp" in checks["import"]["detail"]


def test_opting_out_leaves_the_aarch64_wheel_untested_and_that_blocks(
        gmpy2_dir: Path, run_harness: RunHarness, tmp_path: Path) -> None:
    run = run_harness(str(_dist(tmp_path, gmpy2_dir)), "--matrix",
                      str(_matrix(tmp_path, follow_release=False)), "--prepublish")
    assert run.returncode == 1, run.output
    assert run.report is not None
    assert set(_cells(run.report)) == {"docker-debian11-py3.9"}
    assert "follow_release: false" in run.output
    blocker = next(b for b in run.report["decision"]["blockers"]
                   if b["code"] == "wheel-untested-runnable")
    assert blocker["file"] == _aarch64(gmpy2_dir).name
    assert "aarch64" in blocker["message"]
