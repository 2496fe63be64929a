"""Floor cells for real: qemu-user as the oldest x86-64 CPU a manylinux tag allows, in venv
and container cells, on the real fixture wheels (``newcpu`` runs BMI2 ``mulx`` at import)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HarnessRun, RunHarness, by_variant

CELLS = [{"python": "3.12"}, {"python": "3.12", "cpu": "floor"}]
CONTAINERS = [{"image": "debian12-py3.12"}, {"image": "debian12-py3.12", "cpu": "floor"}]
NATIVE = ("venv-py3.12", "docker-debian12-py3.12")
FLOOR = ("venv-py3.12-x86-64-v1", "docker-debian12-py3.12-x86-64-v1")


def test_code_for_a_newer_cpu_fails_in_the_floor_cells_only_naming_the_instruction(
        wheels: dict[str, Path], run_harness: RunHarness, matrix_file: Any,
        images: dict[str, Any]) -> None:
    run = run_harness(str(wheels["newcpu"]), "--matrix",
                      str(matrix_file(venv=CELLS, container=CONTAINERS)))
    cells = run.cells()
    assert run.returncode == 1, run.output
    for cid in NATIVE:
        assert cells[cid]["verdict"] == "PASS", cells[cid]["reason"]
    for cid in FLOOR:
        cell = cells[cid]
        assert cell["verdict"] == "FAIL", cell["reason"]
        imp = next(c for c in cell["checks"] if c["name"] == "import")
        assert imp["detail"].startswith("cpu-floor: SIGILL at q_kangaroo/_q_kangaroo.abi3.so+0x")
        assert "mulx" in imp["detail"] and "BMI2 (x86-64-v3)" in imp["detail"]
        advice = cell["diagnosis"]["advice"]
        native = cid.removesuffix("-x86-64-v1")
        assert f"Its native twin {native} passed: a native cell passes while its floor twin " \
            "dies" in advice and "target-cpu" in advice
        assert "x86-64-v1" in str(cell["emulated"])


@pytest.mark.parametrize("variant", by_variant("good"))
def test_the_good_wheel_passes_on_the_floor_cpu_and_the_report_says_which(
        variant: str, whole_matrix: Callable[[str], HarnessRun]) -> None:
    run = whole_matrix(variant)  # the default matrix has a floor venv and a floor container
    assert run.returncode == 0, run.output
    floor = {cid: c for cid, c in run.cells().items() if c.get("emulated")}
    assert {c["kind"] for c in floor.values()} == {"venv", "container"}, sorted(floor)
    for cell in floor.values():
        assert cell["verdict"] == "PASS", cell["reason"]
        emulated = cell["emulated"]
        assert emulated["cpu"].startswith("x86-64-v1 (qemu -cpu qemu64")
        # glibc sees no x86-64-v2 on that CPU (glibc >= 2.33 says so; bullseye's 2.31 cannot)
        assert emulated["glibc"].get("supported", []) == []
        gmp = next(c for c in cell["checks"] if c["name"] == "provenance")
        assert gmp["status"] == "pass" and "q_kangaroo.libs/libgmp" in gmp["detail"]
    assert "supported" in floor["venv-py3.12-x86-64-v1"]["emulated"]["glibc"]


def test_an_unknown_cpu_is_one_line_and_exit_2(wheels: dict[str, Path],
                                               run_harness: RunHarness,
                                               matrix_file: Any) -> None:
    run = run_harness(str(wheels["good"]), "--matrix",
                      str(matrix_file(venv=[{"python": "3.12", "cpu": "pentium9"}])))
    assert run.returncode == 2 and "Traceback" not in run.output
    assert "cpu: 'pentium9'" in run.output
