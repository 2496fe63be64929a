"""Floor cells judged on the host: which CPU the cell emulated, and what killed it there.

The probe hands back (``exit`` observation, ``emulation``) the CPU asked for, the x86-64
levels glibc saw on it (run before the package), and after a fatal signal the instruction
pointer and code bytes from qemu's guest core mapped to a loaded object and offset.  This
module names the file, the function, the instruction (iced-x86) and the level it needs.
All of it comes from a process the package ran in: a forgery can only make its own wheel
fail (a fault is only read when the process died), never pass.
"""

from __future__ import annotations

import signal
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from harness import emulation, isa
from harness.wheel import WheelInfo

if TYPE_CHECKING:
    from harness.kinds import Cell
    from harness.verdict import CellResult

Kind = Literal["above-floor", "emulator-gap", "not-cpu", "not-the-wheel", "unattributed"]
#: kinds that say nothing about the wheel: the cell could not run on that CPU (ERROR)
NOT_JUDGED: frozenset[Kind] = frozenset({"emulator-gap", "not-the-wheel"})
UNPAIRED = ("Run its native twin (the same entry without cpu:) beside it: a native PASS "
            "with a floor FAIL is the signature.")
SIGNATURE = ("a native cell passes while its floor twin dies: native code built for a newer "
             "CPU than the wheel's tag promises")


@dataclass(frozen=True, kw_only=True)
class Fault:
    """Where and on what an emulated package process died."""

    kind: Kind
    signal: str
    cpu: str  # the emulated CPU, as reports say it
    cell_level: int | None
    file: str = ""  # the wheel member (or the cell's path when not from the wheel)
    vaddr: int | None = None
    symbol: str = ""
    instruction: isa.Instruction | None = None
    why: str = ""  # unattributed: why not

    @property
    def from_wheel(self) -> bool:
        """The faulting object is a file of the installed wheel."""
        return bool(self.file) and not self.file.startswith("/")

    def text(self) -> str:
        """One sentence for the check's detail."""
        where = (f"{self.file}+{self.vaddr:#x}" + (f" ({self.symbol})" if self.symbol else "")
                 if self.file and self.vaddr is not None else "an unknown address")
        ins = self.instruction
        if self.kind == "above-floor" and ins is not None:
            return (f"cpu-floor: {self.signal} at {where}: `{ins.text}` needs {ins.needs}, which "
                    f"the emulated CPU {self.cpu} lacks")
        if self.kind == "emulator-gap" and ins is not None:
            return (f"{self.signal} at {where} on `{ins.text}` ({ins.needs}), which the asked "
                    f"CPU has but qemu does not emulate ({self.cpu}): not the wheel's fault")
        if self.kind == "not-the-wheel" and ins is not None:
            return (f"{self.signal} at {where}: `{ins.text}` needs {ins.needs}, which the "
                    f"emulated CPU {self.cpu} lacks, in a file that is not the wheel's (the "
                    "interpreter or a system library): this cell cannot run on that CPU; not the "
                    "wheel's fault")
        if self.kind == "not-cpu" and ins is not None:
            return (f"{self.signal} at {where} on `{ins.text}`, which every x86-64 CPU has: "
                    "not a CPU-floor problem (a deliberate trap such as Rust's abort or "
                    "__builtin_trap)")
        return (f"{self.signal} under the emulated CPU {self.cpu}" + (
            f" at {where}" if self.vaddr is not None else "")
            + (f"; the instruction is unknown: {self.why}" if self.why else ""))

    def to_json(self) -> dict[str, Any]:
        """For reports (check data)."""
        ins = self.instruction
        return {"kind": self.kind, "signal": self.signal, "cpu": self.cpu, "file": self.file,
                "offset": None if self.vaddr is None else f"{self.vaddr:#x}",
                "symbol": self.symbol, "instruction": ins.text if ins else None,
                "needs": ins.needs if ins else None,
                "level": isa.level_name(ins.level) if ins else None, "why": self.why}


def describe(emulated: Mapping[str, Any]) -> str:
    """'x86-64-v1 (qemu -cpu ...)' from the probe's emulation record."""
    level, model = emulated.get("level"), emulated.get("model", "?")
    name = level or emulated.get("asked") or model
    return f"{name} (qemu -cpu {model})"


def wheel_member(path: str) -> str | None:
    """The wheel member an installed file is (its path below site-packages)."""
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return None


def _read_member(wheel: WheelInfo, member: str) -> bytes | None:
    try:
        with zipfile.ZipFile(wheel.path) as zf:
            return zf.read(member) if member in zf.namelist() else None
    except (OSError, zipfile.BadZipFile):
        return None


def _signal(returncode: object) -> str:
    try:
        return signal.Signals(-int(returncode)).name  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return f"exit status {returncode}"


def read_fault(exited: Mapping[str, Any], wheel: WheelInfo) -> Fault | None:
    """What killed an emulated package process (None: not emulated, or it did not die of a
    signal).  The instruction is decoded from the wheel's own bytes at the faulting offset;
    the core's bytes stand in for a file the wheel does not hold."""
    emulated = exited.get("emulation")
    rc = exited.get("returncode")
    if not isinstance(emulated, Mapping) or not isinstance(rc, int) or rc >= 0:
        return None
    level = emulated.get("level")
    found = Fault(kind="unattributed", signal=_signal(rc), cpu=describe(emulated),
                  cell_level=emulation.level_number(level) if isinstance(level, str) else None)
    fault = emulated.get("fault") or {}
    if "error" in fault or not isinstance(fault.get("address"), int):
        return replace(found, why=str(fault.get("error", "no fault record")))
    path, vaddr = str(fault.get("object", "")), fault.get("vaddr")
    if not path or not isinstance(vaddr, int):
        return replace(found, why=f"address {fault['address']:#x} lies in no library the "
                       "loader mapped (the interpreter itself, or JIT code)")
    member = wheel_member(path)
    data = _read_member(wheel, member) if member else None
    try:
        code = bytes.fromhex(str(fault.get("code", "")))
    except ValueError:
        code = b""
    found = replace(found, file=member or path, vaddr=vaddr)
    if data is not None:
        offset = isa.file_offset(data, vaddr)
        code = data[offset:offset + 16] if offset is not None else code
        found = replace(found, symbol=isa.symbol_at(data, vaddr))
    ins = isa.classify(code, vaddr) if code else None
    if ins is None:
        return replace(found, why="the bytes there do not decode")
    kind: Kind = "above-floor"
    if ins.level == 1:
        kind = "not-cpu"
    elif found.cell_level is not None and ins.level <= found.cell_level:
        kind = "emulator-gap"
    elif member is None:
        kind = "not-the-wheel"
    return replace(found, kind=kind, instruction=ins)


def cpu_problem(exited: Mapping[str, Any] | None) -> str | None:
    """Why an emulated cell did not run on the CPU asked (glibc saw a higher level): nothing
    about that floor was proven.  None when it did, or when it cannot be told."""
    emulated = (exited or {}).get("emulation")
    if not isinstance(emulated, Mapping) or not isinstance(emulated.get("level"), str):
        return None
    seen = emulated.get("seen") or {}
    supported = [s for s in seen.get("supported", []) if isinstance(s, str)]
    asked = emulation.level_number(str(emulated["level"]))
    above = [s for s in supported if s.startswith("x86-64-v") and
             emulation.level_number(s) > asked]
    if above:
        return (f"the emulated CPU is not {emulated['level']}: glibc sees {', '.join(above)} "
                f"on qemu -cpu {emulated.get('model')}; nothing about that floor is proven")
    return None


def fix_topic(file: str, wheel: WheelInfo, backend: str) -> str:
    """Which fix (harness.advice topic) applies to the faulting file: the bundled GMP's,
    Rust's (a Rust backend, or the object says rustc built it), else C/C++'s."""
    if file.rsplit("/", 1)[-1].startswith("libgmp"):
        return "cpu-floor-gmp"
    if backend in ("maturin", "setuptools-rust"):
        return "cpu-floor-rust"
    try:
        with zipfile.ZipFile(wheel.path) as zf:
            code = zf.read(file) if file in zf.namelist() else b""
    except (OSError, zipfile.BadZipFile):
        code = b""
    return "cpu-floor-rust" if b"rustc version" in code else "cpu-floor"


def advice(fault: Mapping[str, Any], wheel: WheelInfo, fix: str) -> str:
    """What the diagnosis says about a ``Fault.to_json()``: evidence, signature, ``fix``."""
    tags = sorted({t.platform for t in wheel.tags if emulation.floor_for(t.platform)})
    promise = (f"Its {', '.join(tags)} tag promises {emulation.floor_for(tags[0])}, so pip "
               "installs it on CPUs without that instruction. " if tags else "")
    what = (f"{fault.get('file')} runs `{fault['instruction']}` ({fault.get('needs')}) at "
            f"{fault.get('symbol') or fault.get('offset')} without asking the CPU first. "
            if fault.get("instruction") else "")
    return f"{what}{promise}{UNPAIRED} Fix: {fix}."


def with_twins(results: Sequence[CellResult], cells: Sequence[Cell]) -> list[CellResult]:
    """Each floor cell that died above its floor, told how its native twin (the same entry
    without ``cpu``) did in this run: a twin's PASS is the signature."""
    by_id = {c.id: c for c in cells}

    def twin_key(cell: Cell | None) -> tuple[str, object] | None:
        if cell is None or not hasattr(cell.entry, "cpu"):
            return None
        return cell.kind, replace(cell.entry, id=None, timeout=None, **{"cpu": None})

    natives = {twin_key(cell): r for r in results if (cell := by_id.get(r.cell_id))
               and getattr(cell.entry, "cpu", "") is None}
    out = []
    for r in results:
        d, key = r.diagnosis, twin_key(by_id.get(r.cell_id))
        twin = natives.get(key) if key is not None else None
        if d is not None and UNPAIRED in d.advice and twin is not None:
            said = (f"Its native twin {twin.cell_id} passed: {SIGNATURE}."
                    if twin.verdict.value == "PASS" else
                    f"Its native twin {twin.cell_id} is {twin.verdict.value} too: not only "
                    "the CPU is wrong here.")
            r = replace(r, diagnosis=replace(d, advice=d.advice.replace(UNPAIRED, said)))
        out.append(r)
    return out
