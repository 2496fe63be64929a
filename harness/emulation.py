"""Cells under qemu-user: which CPU a cell emulates, and the command that runs a program on it.

The one interface other modules use (``arch`` extends it for foreign architectures):

- ``resolve(cpu, arch="x86_64") -> Cpu``: a matrix ``cpu:`` value (``x86-64-v1`` .. ``v4`` or
  a qemu model name) as the qemu ``-cpu`` model it means; InputError (one line) when unknown.
- ``floor_for(platform_tag) -> str | None``: the level a wheel's platform tag promises
  (``x86-64-v1`` for manylinux/musllinux x86_64), None when the tag promises no x86 level.
- ``qemu_binary(arch, log) -> Path``: the static qemu-user binary (installed as root on
  Debian when missing); InputError when it cannot be had.
- ``Cpu.argv(qemu)``: the command prefix, ``[qemu, "-cpu", MODEL]``; the program follows.

Same-architecture floors need no binfmt: the probe starts only the package's process (import,
version, checks, provenance) through this prefix; the venv and the installer run natively.
Only the static binary works in every cell: Debian's dynamic ``qemu-x86_64`` needs libgmp,
which cells hide, and a container has no host libraries at all.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import InputError

#: x86-64 psABI levels as qemu 7.2 models (TCG).  v1 is qemu64 without its v2 extras (SSE3,
#: CMPXCHG16B, LAHF/SAHF, POPCNT; SSE4a is AMD's): exactly the baseline a manylinux x86_64 tag
#: promises.  v2 Nehalem, v3 Haswell (no ADX: that is Broadwell's and in no level).
LEVEL_MODELS: dict[str, str] = {
    "x86-64-v1": "qemu64,-pni,-cx16,-lahf-lm,-popcnt,-sse4a",
    "x86-64-v2": "Nehalem",
    "x86-64-v3": "Haswell-noTSX",
    "x86-64-v4": "Skylake-Server-noTSX-IBRS",
}
#: qemu 7.2's TCG has no AVX-512: a v4 cell runs at v3 (glibc sees v3), said in its report.
TCG_MISSING = {"x86-64-v4": "qemu 7.2's TCG emulates no AVX-512: this cell's CPU is x86-64-v3"}
#: the package's process (interpreter start, import, checks, provenance) under qemu-user's TCG
#: measured 6-10x slower than natively on a loaded 2-core machine (bench/bench.py --floor,
#: README); the floor cell's timeout and step budgets are multiplied by twice that at most.
BUDGET_FACTOR = 20.0
QEMU_PACKAGE = "qemu-user-static"  # Debian's package with the static binaries
FLOOR = "floor"  # an entry's ``cpu: floor``: the matrix's ``defaults.cpu_floor``
DEFAULT_FLOOR = "x86-64-v1"  # what manylinux/musllinux x86_64 tags promise
#: the ``cpu`` option of venv and container entries (matrix schema)
CPU_SCHEMA: dict[str, object] = {
    "type": "string", "minLength": 1,
    "description": "Run the package's process (import, checks, provenance) under qemu-user "
                   "on this CPU: floor (defaults.cpu_floor), x86-64-v1..v4 or a qemu model "
                   "name. Budgets and the cell's timeout scale by the emulation factor."}


def cell_suffix(cpu: str) -> str:
    """A cpu value as a cell-id part: ``x86-64-v1``, ``Haswell-avx2``."""
    return re.sub(r"[^A-Za-z0-9._]+", "-", cpu.replace(",-", "-")).strip("-")


def floor_cell(cpu: str, cid: str, aliases: tuple[str, ...],
               timeout: float) -> tuple[str, tuple[str, ...], float]:
    """A floor cell's id, aliases and timeout from its native twin's: the CPU as a suffix
    (``venv-py3.12-x86-64-v1``), the budget scaled for emulation."""
    more = f"-{cell_suffix(cpu)}"
    return cid + more, tuple(a + more for a in aliases), timeout * BUDGET_FACTOR


def check(cpus: Iterable[str], source: str) -> None:
    """Before a run: every cpu value is known and qemu-user is there (installed as root on
    Debian); else one line (InputError, exit 2)."""
    wanted = sorted(set(cpus))
    for cpu in wanted:
        try:
            resolve(cpu)
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from exc
    if wanted:
        qemu_binary(log=lambda line: print(line, file=sys.stderr))


def says(cpu: Cpu) -> str:
    """What a floor cell's TIMEOUT adds: the CPU and the scaled budgets."""
    return (f"{cpu.label}: the package's process under qemu-user, the cell's time and step "
            f"budgets x{BUDGET_FACTOR:g}")


def level_number(level: str) -> int:
    """``x86-64-v3`` -> 3."""
    return int(level.rsplit("v", 1)[1])


@dataclass(frozen=True, kw_only=True)
class Cpu:
    """The CPU a cell emulates: what the matrix asked, the qemu model, its x86-64 level."""

    asked: str  # the matrix's value: a level or a model name
    model: str  # qemu's -cpu argument
    level: str | None  # the x86-64 level it stands for (None: a model name, level unknown)
    arch: str = "x86_64"

    def argv(self, qemu: str) -> list[str]:
        """The command prefix that runs a program of ``arch`` on this CPU."""
        return [qemu, "-cpu", self.model]

    @property
    def label(self) -> str:
        """What reports say: ``x86-64-v1 (qemu -cpu qemu64,-pni,...)``."""
        name = self.level or self.asked
        return f"{name} (qemu -cpu {self.model})" + (
            f"; {TCG_MISSING[self.level]}" if self.level in TCG_MISSING else "")

    def to_probe(self) -> dict[str, object]:
        """What the probe needs to say which CPU it ran on."""
        return {"asked": self.asked, "model": self.model, "level": self.level}


def floor_for(platform_tag: str) -> str | None:
    """The x86-64 level a platform tag promises (manylinux/musllinux x86_64: the baseline)."""
    if platform_tag.endswith("_x86_64") and platform_tag.startswith(("manylinux", "musllinux")):
        return "x86-64-v1"
    return None


def resolve(cpu: str, arch: str = "x86_64", *, models: Callable[[str], frozenset[str]]
            | None = None) -> Cpu:
    """A matrix ``cpu:`` value as a Cpu; unknown levels and models are an InputError."""
    if cpu in LEVEL_MODELS:
        if arch != "x86_64":
            raise InputError(f"cpu: {cpu} is an x86-64 level; arch {arch} has none: give a "
                             "qemu model name of that architecture (qemu-ARCH -cpu help)")
        return Cpu(asked=cpu, model=LEVEL_MODELS[cpu], level=cpu, arch=arch)
    if cpu.startswith("x86-64-v"):
        raise InputError(f"cpu: {cpu!r} is not an x86-64 level; give x86-64-v1, -v2, -v3, -v4 "
                         "or a qemu model name")
    known = (models or qemu_models)(arch)
    base = cpu.split(",", 1)[0]
    if base not in known:
        near = sorted(m for m in known if m.lower().startswith(base[:3].lower()))[:6]
        raise InputError(f"cpu: {cpu!r} is no level and no qemu {arch} model; give "
                         f"x86-64-v1..v4 or a model from `qemu-{arch}-static -cpu help`"
                         + (f" (e.g. {', '.join(near)})" if near else ""))
    return Cpu(asked=cpu, model=cpu, level=None, arch=arch)


def qemu_name(arch: str = "x86_64") -> str:
    """The static qemu-user binary's file name for ``arch``."""
    return f"qemu-{arch}-static"


@functools.cache
def qemu_models(arch: str = "x86_64") -> frozenset[str]:
    """The model names ``qemu-ARCH-static -cpu help`` lists (empty when qemu is missing)."""
    found = shutil.which(qemu_name(arch))
    if found is None:
        raise InputError(f"cpu: checking a qemu model name needs {qemu_name(arch)}: install "
                         f"Debian's {QEMU_PACKAGE} (apt-get install {QEMU_PACKAGE})")
    out = subprocess.run([found, "-cpu", "help"], capture_output=True, text=True, timeout=60,
                         check=False).stdout
    names = set()
    for line in out.split("\nRecognized", 1)[0].splitlines()[1:]:  # the flags list follows
        words = line.split()
        if words:  # "x86 Haswell  (alias ...)" on x86; "  cortex-a57" elsewhere
            names.add(words[1] if words[0] == "x86" and len(words) > 1 else words[0])
    return frozenset(names)


def can_install_qemu() -> bool:
    """Whether the harness may install qemu-user-static itself (root on Debian)."""
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def install_qemu(ready: Callable[[], bool], log: Callable[[str], None] = lambda _m: None) -> None:
    """As root on Debian, install qemu-user-static (``apt-get update`` once if the first try
    fails) until ``ready``; elsewhere nothing (the caller says what to do)."""
    if not can_install_qemu():
        return
    log(f"installing {QEMU_PACKAGE} (qemu-user) for the emulated cells")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "install", "-y", "-q", QEMU_PACKAGE],
                ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", QEMU_PACKAGE]):
        subprocess.run(cmd, capture_output=True, env=env, timeout=600, check=False)
        if ready():
            return


def qemu_binary(arch: str = "x86_64", log: Callable[[str], None] = lambda _m: None) -> Path:
    """The static qemu-user binary for ``arch``; as root on Debian it is installed when
    missing.  InputError (one line, what to do) when it cannot be had."""
    if shutil.which(qemu_name(arch)) is None:
        install_qemu(lambda: shutil.which(qemu_name(arch)) is not None, log)
    found = shutil.which(qemu_name(arch))
    if found is None:
        raise InputError(f"emulated cells (cpu:) need {qemu_name(arch)} and it is not on PATH: "
                         f"install Debian's {QEMU_PACKAGE} (or your system's static qemu-user), "
                         "or drop the cpu: cells (--select)")
    return Path(found)
