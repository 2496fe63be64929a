"""Wheel checks of the CPU the native code needs: per x86-64 ELF object, the ISA level its GNU
property note declares and the instructions above the floor its tags promise (x86-64-v1 for
manylinux/musllinux x86_64), found by disassembly (iced-x86, ~0.3-0.6 s per MB of code).

Evidence, not a verdict (warnings): fat code (GMP ``--enable-fat``, OpenSSL, simdjson) holds
instructions for newer CPUs that it runs only after asking the CPU.  A floor cell (``cpu:``)
runs the wheel on the oldest CPU its tag allows and confirms or refutes it."""

from __future__ import annotations

import hashlib

from elftools.common.exceptions import ELFError

from harness import emulation, isa
from harness.audit.model import Collector, WheelAudit, WheelCheck

_SEEN: dict[str, isa.Evidence] = {}  # sha256 of an object -> its evidence (one worker's)
_SHOWN = 3  # extensions named per object in a finding


def evidence(data: bytes, floor: int) -> isa.Evidence:
    """isa.scan, once per distinct object and floor (a release repeats its bundled libraries)."""
    key = f"{hashlib.sha256(data).hexdigest()}:{floor}"
    if key not in _SEEN:
        _SEEN[key] = isa.scan(data, floor)
    return _SEEN[key]


def check_isa(wheel: WheelAudit, out: Collector) -> None:
    """Each x86-64 object's declared level and its instructions above the tags' floor."""
    floors = {f for t in wheel.dist.tags if (f := emulation.floor_for(t.platform))}
    if not floors or not wheel.elf_names:
        return
    floor = min(floors, key=emulation.level_number)
    level = emulation.level_number(floor)
    for name in wheel.elf_names:
        data = wheel.files.data[name]
        if not isa.is_x86_64(data):
            continue
        try:
            found = evidence(data, level)
        except (ELFError, ValueError) as exc:
            out.error("isa-unreadable", f"{name}: cannot disassemble ({exc})",
                      "rebuild the wheel; report this if the file loads")
            continue
        declared = found.declared
        if declared and emulation.level_number(declared) > level:
            out.add("isa-declared-above-floor", f"{name} declares {declared} in its GNU "
                    f"property note (x86 ISA needed), above the {floor} its tags promise: "
                    "glibc >= 2.33 refuses to load it on older CPUs",
                    f"build it for {floor} (drop -march/-mneeded or the target-cpu setting), "
                    "or tag it for the CPUs it needs")
        if found.above:
            top = sorted(found.above.items(), key=lambda kv: -kv[1])
            counts = ", ".join(f"{ext} {n}" for ext, n in top[:_SHOWN])
            example = found.examples[top[0][0]][0]
            out.add("isa-above-floor", f"{name}: {sum(found.above.values())} instructions "
                    f"above {floor} ({counts}{', ...' if len(top) > _SHOWN else ''}; e.g. "
                    f"{example}), up to {isa.level_name(found.highest)}, in "
                    f"{found.code_bytes / 1e6:.2f} MB of code: evidence, not a verdict (fat "
                    "code asks the CPU first)",
                    f"run a floor cell (cpu: floor) on the wheel; if it dies there, build for "
                    f"{floor}: GMP --enable-fat, no Rust target-cpu, no C -march=native")


CHECKS: dict[str, WheelCheck] = {
    "isa": check_isa,
}
