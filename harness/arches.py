"""CPU architectures a Linux cell can have: one name each in wheel tags, Debian, qemu, the engine.

The harness's name is the one wheel platform tags and ``uname -m`` use (``aarch64``). A cell of
another architecture than the host's runs under emulation (qemu-user through binfmt_misc).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from harness.errors import InputError


@dataclass(frozen=True, kw_only=True)
class Arch:
    """One architecture under its four names."""

    name: str  # wheel platform tags and uname -m: aarch64
    debian: str  # dpkg / mmdebstrap --architectures: arm64
    qemu: str  # qemu-user's: qemu-aarch64-static, binfmt_misc entry qemu-aarch64
    platform: str  # the container engine's: linux/arm64


#: A whole foreign cell (its Python, venv, installer, import and checks) runs this many times
#: slower under qemu-user than natively; its cell timeout and step budgets are multiplied by
#: it. Measured (bench/foreign_arch.py, aarch64 on x86_64, 2 cores): pure Python 10x on a
#: quiet machine, 20x on a loaded one, big-int 2-16x, a whole gmpy2 cell 3-14x; 30 leaves
#: headroom (a budget hit under emulation must not be a false TIMEOUT).
BUDGET_FACTOR = 30.0

ARCHES: dict[str, Arch] = {a.name: a for a in (
    Arch(name="x86_64", debian="amd64", qemu="x86_64", platform="linux/amd64"),
    Arch(name="aarch64", debian="arm64", qemu="aarch64", platform="linux/arm64"),
    Arch(name="ppc64le", debian="ppc64el", qemu="ppc64le", platform="linux/ppc64le"),
    Arch(name="s390x", debian="s390x", qemu="s390x", platform="linux/s390x"),
    Arch(name="armv7l", debian="armhf", qemu="arm", platform="linux/arm/v7"),
)}



def host() -> Arch:
    """This machine's architecture (x86_64 when it is none the harness knows)."""
    return ARCHES.get(platform.machine(), ARCHES["x86_64"])


def get(name: str, *, where: str = "arch") -> Arch:
    """The architecture called ``name``; InputError naming the known ones otherwise."""
    try:
        return ARCHES[name]
    except KeyError:
        raise InputError(f"{where}: unknown architecture {name!r}; use one of "
                         f"{', '.join(ARCHES)}") from None


def is_foreign(name: str | None) -> bool:
    """Whether a cell of this architecture runs under emulation here."""
    return name is not None and name != host().name


def budget_factor(name: str) -> float:
    """How much longer a cell of architecture ``name`` may take here."""
    return BUDGET_FACTOR if is_foreign(name) else 1.0
