"""Real cells: a bundled library CPython also links (libz), shadowed or not; an extension that
needs an optional part of Python (tkinter) (issue 17)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import RunHarness, _load_builder, default_matrix_data

VENVS = [{"python": "3.9"}, {"python": "3.12"}]


@pytest.fixture(scope="module")
def derived() -> dict[str, Path]:
    return dict(_load_builder().build_variants(["bundlesz", "zshadowed", "tkext", "good"]))


def _matrix(tmp_path: Path, *, libraries: list[str], venv: list[dict[str, Any]] | None = None,
            container: list[dict[str, Any]] | None = None,
            extensions: dict[str, list[str]] | None = None) -> Path:
    data = default_matrix_data()
    data["package"]["bundled_libraries"] = libraries
    if extensions:
        data["package"]["extensions"] = extensions
    data["environments"] = {k: v for k, v in (("venv", venv), ("container", container)) if v}
    path = tmp_path / "matrix.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _check(cell: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(next(c for c in cell["checks"] if c["name"] == name))


def _release(tmp_path: Path, wheel: Path) -> Path:
    directory = tmp_path / "dist"
    directory.mkdir()
    (directory / wheel.name).write_bytes(wheel.read_bytes())
    return directory


def test_a_bundled_libz_beside_cpythons_own_is_go(derived: dict[str, Path], tmp_path: Path,
                                                  run_harness: RunHarness) -> None:
    matrix = _matrix(tmp_path, libraries=["gmp", "z"], venv=VENVS)
    run = run_harness("--prepublish", str(_release(tmp_path, derived["bundlesz"])),
                      "--matrix", str(matrix))
    assert run.returncode == 0, run.output
    assert "libz stays visible in venv cells: the interpreter needs it" in run.output
    assert run.report is not None and run.report["decision"]["go"] is True
    assert "bundled-shadowed" not in run.output
    for cell in run.cells().values():
        assert cell["verdict"] == "PASS", run.output
        sterility = _check(cell, "sterility")
        assert list(sterility["data"]["kept"]) == ["z"]
        assert sterility["data"]["evidence"]["gmp"]["files"] == []  # GMP still hidden
        resolved = {r["needed"].split("-")[0]: r for r in
                    _check(cell, "provenance")["data"]["resolutions"]}
        assert set(resolved) == {"libgmp", "libz"}
        assert all(r["inside"] and "/q_kangaroo.libs/" in r["path"] for r in resolved.values())


def test_a_bundled_name_resolved_to_the_system_copy_is_shadowed(
        derived: dict[str, Path], tmp_path: Path, run_harness: RunHarness) -> None:
    matrix = _matrix(tmp_path, libraries=["gmp", "z"], venv=VENVS)
    run = run_harness("--prepublish", str(_release(tmp_path, derived["zshadowed"])),
                      "--matrix", str(matrix))
    assert run.returncode == 1, run.output
    for cell in run.cells().values():
        prov = _check(cell, "provenance")
        assert prov["status"] == "fail"
        assert prov["detail"].startswith("_q_kangaroo.abi3.so NEEDs libz.so.1, resolved to /")
        assert "outside the wheel" in prov["detail"]
    assert run.report is not None
    shadowed = [f for f in run.report["decision"]["blockers"]
                if f["code"] == "bundled-shadowed"]
    assert len(shadowed) == 1 and "q_kangaroo.libs/libz.so.1" in shadowed[0]["message"]


def test_an_extension_needing_tkinter_loads_where_python_has_it(
        derived: dict[str, Path], tmp_path: Path, run_harness: RunHarness) -> None:
    """The host's pyenv Pythons have a working tkinter: the extension loads, nothing skipped."""
    matrix = _matrix(tmp_path, libraries=["gmp"], venv=[{"python": "3.12"}])
    run = run_harness(str(derived["tkext"]), "--matrix", str(matrix))
    assert run.returncode == 0, run.output
    imp = _check(run.cells()["venv-py3.12"], "import")
    assert imp["data"]["skipped_optional"] == {}
    assert {e["module"] for e in imp["data"]["extensions"]} == {"q_kangaroo._q_kangaroo",
                                                               "q_kangaroo._tk"}


def test_the_matrix_can_skip_an_extension(derived: dict[str, Path], tmp_path: Path,
                                          run_harness: RunHarness) -> None:
    matrix = _matrix(tmp_path, libraries=["gmp"], venv=[{"python": "3.12"}],
                     extensions={"skip": ["q_kangaroo._tk"]})
    run = run_harness(str(derived["tkext"]), "--matrix", str(matrix))
    assert run.returncode == 0, run.output
    imp = _check(run.cells()["venv-py3.12"], "import")
    assert "q_kangaroo._tk not imported: the matrix skips it" in imp["data"]["notes"]


def test_tkinter_absent_makes_the_extension_skipped_optional_unless_required(
        derived: dict[str, Path], tmp_path: Path, run_harness: RunHarness,
        images: dict[str, Any]) -> None:
    """Debian 11's python3 has no tkinter (no python3-tk): skipped-optional, with the reason;
    required by the matrix: ERROR (not testable there), never 'fix the wheel'."""
    cell = [{"image": "debian11-py3.9"}]
    run = run_harness(str(derived["tkext"]), "--matrix",
                      str(_matrix(tmp_path, libraries=["gmp"], container=cell)))
    assert run.returncode == 0, run.output
    imp = _check(run.cells()["docker-debian11-py3.9"], "import")
    assert list(imp["data"]["skipped_optional"]) == ["q_kangaroo._tk"]
    assert any(n.startswith("q_kangaroo._tk skipped-optional: this Python's tkinter does not "
                            "import (ModuleNotFoundError") for n in imp["data"]["notes"])
    required = _matrix(tmp_path, libraries=["gmp"], container=cell,
                       extensions={"require": ["q_kangaroo._tk"]})
    run = run_harness(str(derived["tkext"]), "--matrix", str(required))
    assert run.returncode == 2, run.output
    imp = _check(run.cells()["docker-debian11-py3.9"], "import")
    assert imp["status"] == "error" and "the matrix requires q_kangaroo._tk" in imp["detail"]




STDLIB_EXTENSIONS = """\
import glob, importlib, os, sysconfig
broken = []
for path in sorted(glob.glob(os.path.join(sysconfig.get_config_var("DESTSHARED"), "*.so"))):
    name = os.path.basename(path).split(".")[0]
    if not name.startswith(("_test", "_xxtest", "xx", "_ctypes_test")):
        try:
            importlib.import_module(name)
        except Exception as exc:
            broken.append(f"{name}: {exc}")
print(len(glob.glob(os.path.join(sysconfig.get_config_var("DESTSHARED"), "*.so"))), broken)
"""


def test_every_images_stdlib_extensions_import(images: dict[str, Any],
                                               docker_client: Any) -> None:
    """A copied interpreter whose _tkinter lacks libtk would make tkinter users FAIL there."""
    for name, built in images.items():
        out = docker_client.containers.run(built.tag, [built.python, "-c", STDLIB_EXTENSIONS],
                                           network_mode="none", remove=True)
        count, broken = out.decode().strip().split(" ", 1)
        assert int(count) > 30 and broken == "[]", f"{name}: {broken}"


def test_container_cells_remove_declared_libraries_but_the_interpreters(
        derived: dict[str, Path], tmp_path: Path, run_harness: RunHarness,
        images: dict[str, Any]) -> None:
    """liblz4 (nothing of Python needs it) is removed from the image and proven gone; libz
    (CPython's zlib needs it) stays, said before any cell runs; the wheel's libz is proven."""
    matrix = _matrix(tmp_path, libraries=["gmp", "z", "lz4"],
                     container=[{"image": "debian11-py3.9"}])
    run = run_harness(str(derived["bundlesz"]), "--matrix", str(matrix))
    assert run.returncode == 0, run.output
    assert "note: libz stays visible in container cells: the interpreter needs it " \
           "(debian11-py3.9: " in run.output
    assert run.output.index("stays visible") < run.output.index("PASS")  # before any cell
    cell = run.cells()["docker-debian11-py3.9"]
    sterility = _check(cell, "sterility")
    assert sterility["data"]["evidence"]["lz4"]["files"] == []
    assert sterility["data"]["evidence"]["lz4"]["dlopen"] == []
    assert list(sterility["data"]["kept"]) == ["z"]
    resolved = {r["needed"] for r in _check(cell, "provenance")["data"]["resolutions"]
                if r["inside"]}
    assert any(n.startswith("libz-") for n in resolved)
