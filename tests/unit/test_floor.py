"""Floor cells on fakes: CPU levels and models, instruction levels (iced-x86), the probe's
reading of qemu's guest core and the loader log, and the host's verdicts on what it found."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from harness import emulation, isa, probe
from harness.checks import CheckStatus
from harness.errors import InputError
from harness.verdict import CellResult, ProbeRun, Verdict, judge
from tests.unit.conftest import PACKAGE, for_wheel, make_wheel, observed, passing_events, release_of

V1 = emulation.LEVEL_MODELS["x86-64-v1"]
LIB = "/v/site-packages/q_kangaroo.libs/libfast-1a2b.so"
MULX = "c4e2fbf6c0"  # mulx %rax,%rax,%rax (BMI2)


def test_levels_are_qemu_models_and_v1_drops_v2_extras() -> None:
    cpu = emulation.resolve("x86-64-v1")
    assert cpu.argv("/q") == ["/q", "-cpu", V1]
    assert all(f"-{flag}" in V1 for flag in ("pni", "cx16", "lahf-lm", "popcnt"))
    assert emulation.resolve("x86-64-v3").model.startswith("Haswell")
    assert "AVX-512" in emulation.resolve("x86-64-v4").label  # TCG has none: said


def test_a_model_name_is_checked_against_qemus_list() -> None:
    models = lambda arch: frozenset({"Haswell", "qemu64"})  # noqa: E731
    assert emulation.resolve("Haswell", models=models).level is None
    assert emulation.resolve("Haswell,-avx2", models=models).model == "Haswell,-avx2"
    with pytest.raises(InputError, match="no qemu x86_64 model"):
        emulation.resolve("Haswel", models=models)
    with pytest.raises(InputError, match="not an x86-64 level"):
        emulation.resolve("x86-64-v5", models=models)


def test_the_floor_a_tag_promises() -> None:
    assert emulation.floor_for("manylinux_2_17_x86_64") == "x86-64-v1"
    assert emulation.floor_for("musllinux_1_2_x86_64") == "x86-64-v1"
    assert emulation.floor_for("manylinux_2_17_aarch64") is None
    assert emulation.floor_for("win_amd64") is None


@pytest.mark.parametrize(("code", "needs", "level"), [
    (MULX, "BMI2", 3), ("66480f38f6c0", "ADX", isa.BEYOND), ("f3480fb8c0", "POPCNT", 2),
    ("c5fc58c0", "AVX", 3), ("62f17c4858c0", "AVX512F", 4), ("4801c0", "", 1),
    ("0f0b", "", 1)])
def test_instructions_get_their_extension_and_level(code: str, needs: str, level: int) -> None:
    ins = isa.classify(bytes.fromhex(code))
    assert ins is not None and ins.level == level and "+".join(ins.extensions) == needs


def _core(rip: int, load_at: int, code: bytes) -> bytes:
    """A minimal x86-64 ELF core: one NT_PRSTATUS note and one PT_LOAD holding ``code``."""
    regs = [0] * 27
    regs[16] = rip
    prstatus = bytes(112) + struct.pack("<27Q", *regs) + bytes(8)
    note = struct.pack("<III", 5, len(prstatus), 1) + b"CORE\0\0\0\0" + prstatus
    phoff, nph = 64, 2
    note_off = phoff + 56 * nph
    load_off = note_off + len(note)
    head = (b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0,
            phoff, 0, 0, 64, 56, nph, 0, 0, 0))
    phdrs = (struct.pack("<IIQQQQQQ", 4, 0, note_off, 0, 0, len(note), 0, 0)
             + struct.pack("<IIQQQQQQ", 1, 5, load_off, load_at, 0, len(code), len(code), 0))
    return head + phdrs + note + code


def test_the_probe_reads_the_fault_from_qemus_core_and_the_loader_log(tmp_path: Path) -> None:
    base = 0x4000_1000_0000
    code = bytes(0x20) + bytes.fromhex(MULX) + bytes(11)
    (tmp_path / "qemu_python3.12_20260101-000000_4242.core").write_bytes(
        _core(base + 0x20, base, code))
    (tmp_path / "ld.4242").write_text(
        f"4242:\tfile={LIB} [0];  generating link map\n"
        f"4242:\t  dynamic: 0x1  base: 0x{base:x}   size: 0x0000000000004000\n")
    fault = probe.cpu_fault(str(tmp_path), str(tmp_path / "ld"))
    assert fault["address"] == base + 0x20 and fault["code"].startswith(MULX)
    assert fault["object"] == LIB and fault["vaddr"] == 0x20
    assert not list(tmp_path.glob("*.core"))  # removed once read


def test_no_core_is_said_not_invented(tmp_path: Path) -> None:
    assert "no core" in probe.cpu_fault(str(tmp_path), str(tmp_path / "ld"))["error"]


def judge_one(events: list[dict[str, Any]], emulated: str | None = None,
              **run: Any) -> CellResult:
    """A floor cell's stream judged for the good fake wheel."""
    wheel = make_wheel()
    return judge(ProbeRun(events=tuple(for_wheel(events, wheel)), **run), cell_id="c",
                 kind="venv", release=release_of(wheel), package=PACKAGE, emulated=emulated)


def _emulated(fault: dict[str, Any] | None, level: str = "x86-64-v1",
              supported: list[str] | None = None) -> dict[str, Any]:
    return {"argv": ["/q", "-cpu", V1], "asked": level, "model": V1, "level": level,
            "seen": {"supported": supported or []}, **({"fault": fault} if fault else {})}


def _died(fault: dict[str, Any] | None, rc: int = -4, **kw: Any) -> list[dict[str, Any]]:
    events = passing_events(version=None, partition_gf=None, provenance=None, exit=None,
                            **{"import": None})
    return [*events, observed("exit", returncode=rc, stderr="", seconds=1.0, over_budget=None,
                     emulation=_emulated(fault, **kw))]


def test_sigill_above_the_floor_is_a_cpu_floor_fail_naming_file_offset_instruction() -> None:
    fault = {"address": 0x7000, "code": MULX + "00" * 11, "object": LIB, "vaddr": 0x1de83}
    result = judge_one(_died(fault), emulated="x86-64-v1 (qemu)")
    imp = result.check("import")
    assert result.verdict is Verdict.FAIL and imp is not None
    assert imp.detail.startswith("cpu-floor: SIGILL at q_kangaroo.libs/libfast-1a2b.so+0x1de83")
    assert "mulx" in imp.detail and "BMI2 (x86-64-v3)" in imp.detail
    assert result.emulated == {"cpu": "x86-64-v1 (qemu)", "glibc": {"supported": []}}


def test_an_instruction_the_asked_cpu_has_is_qemus_gap_an_error_not_a_fail() -> None:
    fault = {"address": 0x7000, "code": "62f17c4858c0", "object": LIB, "vaddr": 0x10}
    imp = judge_one(_died(fault, level="x86-64-v4")).check("import")
    assert imp is not None and imp.status is CheckStatus.ERROR and "qemu does not" in imp.detail


def test_a_baseline_trap_is_a_fail_but_not_a_cpu_floor_one() -> None:
    fault = {"address": 0x7000, "code": "0f0b", "object": LIB, "vaddr": 0x10}
    imp = judge_one(_died(fault)).check("import")
    assert imp is not None and imp.status is CheckStatus.FAIL
    assert not imp.detail.startswith("cpu-floor") and "every x86-64 CPU" in imp.detail


@pytest.mark.parametrize("fault", [None, {"error": "no core"}, {"address": 1, "code": "zz"}])
def test_an_unreadable_or_forged_fault_still_fails_never_passes(fault: Any) -> None:
    result = judge_one(_died(fault))
    assert result.verdict is Verdict.FAIL


def test_a_cell_whose_cpu_had_more_than_the_floor_proves_nothing() -> None:
    exit_ = observed("exit", returncode=0, stderr="", seconds=1.0, over_budget=None,
                     emulation=_emulated(None, supported=["x86-64-v2", "x86-64-v3"]))
    result = judge_one(passing_events(exit=exit_))
    assert result.verdict is Verdict.INVALID and "glibc sees x86-64-v2" in result.reason


def test_a_timeout_under_emulation_says_so() -> None:
    """The runner adds a cell's ``emulation`` to its TIMEOUT reason: a floor cell's says
    which CPU and the factor its budgets grew by."""
    said = emulation.says(emulation.resolve("x86-64-v1"))
    assert said.startswith("x86-64-v1 (qemu -cpu qemu64")
    assert f"x{emulation.BUDGET_FACTOR:g}" in said

def test_no_qemu_and_no_way_to_install_it_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emulation.shutil, "which", lambda name: None)
    monkeypatch.setattr(emulation.os, "geteuid", lambda: 1000)
    with pytest.raises(InputError, match="qemu-x86_64-static and it is not on PATH: install"):
        emulation.check(["x86-64-v1"], "m.yaml")
    emulation.check([], "m.yaml")  # no floor cell selected: qemu is not needed


def test_floor_entries_are_cells_of_their_own_with_scaled_timeouts(tmp_path: Path) -> None:
    from harness import cells, matrix

    path = tmp_path / "m.yaml"
    path.write_text("package: {distribution: q_kangaroo, import: q_kangaroo}\n"
                    "defaults: {timeout: 100, cpu_floor: x86-64-v2}\n"
                    "environments:\n  venv: [{python: '3.12'}, {python: '3.12', cpu: floor}]\n"
                    "  container: [{image: debian11-py3.9, cpu: 'Haswell,-avx2'}]\n")
    made = {c.id: c for c in cells.expand(matrix.load(path))}
    assert set(made) == {"venv-py3.12", "venv-py3.12-x86-64-v2",
                         "docker-debian11-py3.9-Haswell-avx2"}
    floor_cell = made["venv-py3.12-x86-64-v2"]
    assert floor_cell.entry.cpu == "x86-64-v2"  # type: ignore[attr-defined]
    assert floor_cell.timeout == 100 * emulation.BUDGET_FACTOR
    assert "py3.12-venv-x86-64-v2" in floor_cell.aliases


@pytest.mark.parametrize(("lib", "generator", "fix"), [
    ("q_kangaroo.libs/libgmp-1a2b.so.10", "maturin (1.16.0)", "--enable-fat"),
    ("q_kangaroo/_q_kangaroo.abi3.so", "maturin (1.16.0)", "target-cpu"),
    ("gmpy2/gmpy2.so", "setuptools (75.0)", "extra_compile_args"),
    ("pkg/_fast.so", "meson (1.4)", "c_args")])
def test_the_cpu_floor_diagnosis_gives_the_fix_of_what_built_the_faulting_code(
        lib: str, generator: str, fix: str) -> None:
    from harness import diagnosis

    wheel = make_wheel(generator=generator)
    fault = {"address": 0x7000, "code": MULX, "object": f"/v/site-packages/{lib}", "vaddr": 0x40}
    result = judge(ProbeRun(events=tuple(for_wheel(_died(fault), wheel))), cell_id="c", kind="venv",
                   release=release_of(wheel), package=PACKAGE, emulated="x86-64-v1")
    diag = diagnosis.explain(result, wheel, PACKAGE).diagnosis
    assert diag is not None and diag.title.startswith("cpu-floor") and fix in diag.advice
    assert f"{lib} runs `mulx" in diag.advice


def test_a_trap_gets_no_cpu_floor_diagnosis() -> None:
    from harness import diagnosis

    fault = {"address": 0x7000, "code": "0f0b", "object": LIB, "vaddr": 0x10}
    result = judge_one(_died(fault))
    diag = diagnosis.explain(result, make_wheel(), PACKAGE).diagnosis
    assert diag is None or not diag.title.startswith("cpu-floor")


def test_the_interpreters_own_code_above_the_floor_is_an_error_not_the_wheels_fail() -> None:
    fault = {"address": 0x7000, "code": MULX, "object": "/opt/py/lib/libpython3.12.so.1.0",
             "vaddr": 0x10}
    imp = judge_one(_died(fault)).check("import")
    assert imp is not None and imp.status is CheckStatus.ERROR
    assert "not the wheel's" in imp.detail and "mulx" in imp.detail
