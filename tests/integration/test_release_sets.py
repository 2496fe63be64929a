"""A dist/ as a release set, on real fixture release sets, real venvs and real containers:
each cell's installer picks from every wheel of the set, the cell proves which file it
installed (sha256 in the report), and that file is pip's pick; uncovered cells say what a
user there gets instead; a wheel's Requires-Dist come from a declared wheelhouse only."""

from __future__ import annotations

import importlib.util
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import BUILD, RunHarness, default_matrix_data
from tests.integration import wheel_surgery

PY = ("3.9", "3.10", "3.11", "3.12", "3.13")


@pytest.fixture(scope="session")
def release_dirs() -> dict[str, Path]:
    spec = importlib.util.spec_from_file_location("fixture_wheels_build", BUILD)
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    return {name: builder.build_release_set(name) for name in ("perpython", "mixed")}


@pytest.fixture
def release_matrix(tmp_path: Path) -> Callable[..., Path]:
    """The default matrix without its abi3 tag requirement (a release may hold per-Python
    wheels), with the given environments and extra top-level or package keys."""
    def make(*, container: list[dict[str, Any]] | None = None,
             package: dict[str, Any] | None = None, **top: Any) -> Path:
        data = default_matrix_data()
        data["package"].pop("wheel_tags", None)
        data["package"].update(package or {})
        data["environments"] = {"venv": [{"python": v} for v in PY],
                                **({"container": container} if container else {})}
        data.update(top)
        path = tmp_path / "matrix.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return make


def _file(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    assert len(found) == 1, (pattern, found)
    return found[0]


def _assert_each_cell_installed_pips_pick(report: dict[str, Any]) -> None:
    shas = {f["file"]: f["sha256"] for f in report["release"]["files"]}
    for cell in report["cells"]:
        artifact, pick = cell["artifact"], cell["pick"]
        assert artifact is not None and pick is not None, cell["id"]
        assert artifact == {"file": pick["file"], "sha256": pick["sha256"]}, cell["id"]
        assert artifact["sha256"] == shas[artifact["file"]]


def test_mixed_set_each_cell_installs_the_file_pip_picks(
        run_harness: RunHarness, release_matrix: Callable[..., Path],
        release_dirs: dict[str, Path]) -> None:
    mixed = release_dirs["mixed"]
    result = run_harness(str(mixed), "--matrix", str(release_matrix()),
                         "-k", "venv-py3.9,venv-py3.11,venv-py3.12,venv-py3.13")
    assert result.returncode == 0, result.output
    report = result.report
    assert report is not None
    cells = result.cells()
    assert {c: v["verdict"] for c, v in cells.items()} == dict.fromkeys(cells, "PASS")
    expected = {"venv-py3.9": "*-cp39-abi3-manylinux*", "venv-py3.11": "*-cp39-abi3-manylinux*",
                "venv-py3.12": "*-cp312-cp312-*", "venv-py3.13": "*-cp313-cp313-*"}
    for cell_id, pattern in expected.items():
        assert cells[cell_id]["artifact"]["file"] == _file(mixed, pattern).name
    _assert_each_cell_installed_pips_pick(report)
    kinds = sorted(f["kind"] for f in report["release"]["files"])
    assert kinds == ["sdist", "wheel", "wheel", "wheel", "wheel"]
    assert report["release"]["version"] == "1.0.0" and report["release"]["ignored"] == []
    assert "cp39-abi3-musllinux_1_2" in result.output  # the set is listed on the console
    install = next(c for c in cells["venv-py3.12"]["checks"] if c["name"] == "install")
    assert len(install["data"]["staged"]) == 4  # every wheel went in; the installer chose


def test_per_python_set_passes_on_venv_and_container_cells(
        run_harness: RunHarness, release_matrix: Callable[..., Path],
        release_dirs: dict[str, Path], images: Any) -> None:
    perpython = release_dirs["perpython"]
    matrix = release_matrix(container=[{"image": "debian11-py3.9"},
                                       {"image": "debian13-py3.13"}])
    result = run_harness(str(perpython), "--matrix", str(matrix))
    assert result.returncode == 0, result.output
    assert result.report is not None
    cells = result.cells()
    assert len(cells) == 7 and all(c["verdict"] == "PASS" for c in cells.values()), \
        result.output
    for cell_id, cell in cells.items():
        minor = cell["interpreter"]["version"].split(".")[1]
        assert f"-cp3{minor}-cp3{minor}-" in cell["artifact"]["file"], cell_id
    _assert_each_cell_installed_pips_pick(result.report)


def test_cells_no_wheel_fits_are_uncovered_with_the_fallback(
        run_harness: RunHarness, release_matrix: Callable[..., Path],
        release_dirs: dict[str, Path], tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    for pattern in ("*-cp312-cp312-*.whl", "*.tar.gz"):
        shutil.copy(_file(release_dirs["perpython"], pattern), dist)
    (dist / "README.txt").write_text("not a distribution")
    select = ("-k", "venv-py3.11,venv-py3.12")
    result = run_harness(str(dist), "--matrix", str(release_matrix()), *select)
    assert result.returncode == 1, result.output  # uncovered blocks by default
    cells = result.cells()
    assert cells["venv-py3.12"]["verdict"] == "PASS"
    uncovered = cells["venv-py3.11"]
    assert uncovered["verdict"] == "UNCOVERED"
    assert uncovered["artifact"] is None and uncovered["pick"]["covered"] is False
    assert "pip builds the sdist q_kangaroo-1.0.0.tar.gz from source (unproven: no cell " \
        "built it)" in uncovered["reason"]
    assert "Rust toolchain" in uncovered["reason"]
    assert uncovered["pick"]["fallback"] == uncovered["reason"]
    assert {c["name"]: c["status"] for c in uncovered["checks"]}["install"] == "not run"
    assert result.report is not None
    assert result.report["release"]["ignored"] == [
        {"file": "README.txt", "reason": "neither a wheel (.whl) nor an sdist (.tar.gz, .zip)"}]
    assert "ignored README.txt" in result.output

    (dist / "q_kangaroo-1.0.0.tar.gz").unlink()
    warned = run_harness(str(dist), "--matrix",
                         str(release_matrix(release={"uncovered": "warning"})), *select)
    assert warned.returncode == 0, warned.output
    reason = warned.cells()["venv-py3.11"]["reason"]
    assert "the release has no sdist" in reason and "fails there" in reason


def _tiny_dependency(wheelhouse: Path) -> Path:
    """A pure-Python wheel ``tinydep`` 1.0, made here."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    path = wheelhouse / "tinydep-1.0-py3-none-any.whl"
    info = "tinydep-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("tinydep.py", "VALUE = 42\n")
        zf.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                    "Root-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", f"tinydep.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n"
                    f"{info}/RECORD,,\n")
    return path


def _requiring(wheel: Path, dest: Path, requirement: str) -> Path:
    """A copy of ``wheel`` whose METADATA gains ``Requires-Dist: requirement``."""
    def edit(files: dict[str, bytes]) -> dict[str, bytes]:
        meta = next(n for n in files if n.endswith(".dist-info/METADATA"))
        head, sep, body = files[meta].partition(b"\n\n")
        line = f"\nRequires-Dist: {requirement}\n".encode()
        files[meta] = head.rstrip(b"\n") + line + (b"\n" + body if sep else b"")
        return files

    return wheel_surgery.rewrite(wheel, dest, edit)


def test_requirements_come_from_the_declared_wheelhouse_else_an_error(
        run_harness: RunHarness, release_matrix: Callable[..., Path],
        release_dirs: dict[str, Path], tmp_path: Path) -> None:
    abi3 = _file(release_dirs["mixed"], "*-cp39-abi3-manylinux*.whl")
    needing = _requiring(abi3, tmp_path / "dist", "tinydep>=1.0")
    _tiny_dependency(tmp_path / "wheelhouse")
    select = ("-k", "venv-py3.12")

    missing = run_harness(str(needing), "--matrix", str(release_matrix()), *select)
    assert missing.returncode == 2, missing.output
    cell = missing.cells()["venv-py3.12"]
    assert cell["verdict"] == "ERROR"
    assert "requires tinydep>=1.0 (Requires-Dist)" in cell["reason"]
    assert "package.dependencies_from" in cell["reason"]

    matrix = release_matrix(package={"dependencies_from": "wheelhouse"})
    served = run_harness(str(needing), "--matrix", str(matrix), *select)
    assert served.returncode == 0, served.output
    install = next(c for c in served.cells()["venv-py3.12"]["checks"]
                   if c["name"] == "install")
    assert install["data"]["dependencies"]["requirements"] == ["tinydep>=1.0"]
    assert install["data"]["installed"]["file"] == needing.name
