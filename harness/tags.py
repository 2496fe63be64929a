"""Which wheel tags a cell's interpreter accepts, computed from the facts the probe reports.

packaging computes tags only for the *running* interpreter (``sys_tags`` reads this
process's glibc and musl); a cell is another machine, so its platform tags are walked here
the same way packaging walks them (PEP 600 / PEP 656), from the cell's glibc or musl version,
with PEP 600's three legacy aliases.  The interpreter/ABI part is packaging's public
``cpython_tags`` / ``compatible_tags``; nothing private of packaging is used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from packaging.tags import (
    INTERPRETER_SHORT_NAMES,
    Tag,
    compatible_tags,
    cpython_tags,
    generic_tags,
    mac_platforms,
)

#: PEP 600: the legacy manylinux tags are aliases of these glibc versions
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
_LEGACY_GLIBC = {f"{name}_": version for version, name in _LEGACY_MANYLINUX.items()}
_PEP600 = re.compile(r"^manylinux_(\d+)_(\d+)_")
_MUSLLINUX = re.compile(r"^musllinux_(\d+)_(\d+)_(.+)$")


def promised_glibc(platform_tag: str) -> tuple[int, int] | None:
    """The glibc a manylinux platform tag promises (manylinux2014_x86_64 -> (2, 17));
    None for any other platform tag."""
    m = _PEP600.match(platform_tag)
    if m:
        return int(m[1]), int(m[2])
    return next(((v[0], v[1]) for prefix, v in _LEGACY_GLIBC.items()
                 if platform_tag.startswith(prefix)), None)


def manylinux_arch(platform_tag: str) -> str | None:
    """The architecture of a manylinux platform tag (x86_64), None for other tags."""
    if promised_glibc(platform_tag) is None:
        return None
    m = _PEP600.match(platform_tag)
    return platform_tag[m.end():] if m else platform_tag.split("_", 1)[1]


def promised_musl(platform_tag: str) -> tuple[int, int] | None:
    """The musl a musllinux platform tag promises (musllinux_1_2_x86_64 -> (1, 2)); None for
    any other platform tag."""
    m = _MUSLLINUX.match(platform_tag)
    return (int(m[1]), int(m[2])) if m else None


def linux_arch(platform_tag: str) -> str | None:
    """The architecture of a manylinux, musllinux or bare linux_* platform tag (x86_64);
    None for other platforms."""
    if (m := _MUSLLINUX.match(platform_tag)) is not None:
        return m[3]
    if platform_tag.startswith("linux_"):
        return platform_tag[len("linux_"):]
    return manylinux_arch(platform_tag)


def manylinux_platforms(arch: str, glibc: str) -> list[str]:
    """Platform tags a glibc of this version accepts, newest first (packaging's walk:
    down to 2.5 on x86, 2.17 elsewhere, legacy aliases beside their glibc)."""
    parsed = re.match(r"(\d+)\.(\d+)", glibc)
    major, minor = (int(parsed[1]), int(parsed[2])) if parsed else (-1, -1)
    oldest = 5 if arch in ("x86_64", "i686") else 17
    if major != 2 or minor < oldest:
        return []
    out = []
    for m in range(minor, oldest - 1, -1):
        out.append(f"manylinux_2_{m}_{arch}")
        legacy = _LEGACY_MANYLINUX.get((2, m))
        if legacy:
            out.append(f"{legacy}_{arch}")
    return out


def musllinux_platforms(arch: str, musl: str) -> list[str]:
    """Platform tags a musl of this version accepts (packaging's walk), newest first."""
    m = re.match(r"(\d+)\.(\d+)", musl)
    if not m:
        return []
    major, minor = int(m[1]), int(m[2])
    return [f"musllinux_{major}_{n}_{arch}" for n in range(minor, -1, -1)]


def musl_version(facts: Mapping[str, Any]) -> str:
    """The cell's musl version ("1.2.4") from ``facts['musl']`` or a ``libc`` of "musl 1.2.4";
    "" on a glibc system."""
    libc = str(facts.get("libc") or "")
    return str(facts.get("musl") or (libc.split()[-1] if libc.startswith("musl ") else ""))


def linux_platforms(facts: Mapping[str, Any]) -> list[str]:
    """All platform tags the cell accepts, most specific first."""
    arch = re.sub(r"[.-]", "_", str(facts.get("machine", "")))
    musl = musl_version(facts)
    libc = (manylinux_platforms(arch, facts["glibc"]) if facts.get("glibc") else
            musllinux_platforms(arch, musl) if musl else [])
    return [*libc, f"linux_{arch}"]


def platforms(facts: Mapping[str, Any]) -> list[str]:
    """The platform tags the cell accepts: Windows' one (win_amd64), macOS's walk
    (packaging's ``mac_platforms`` from the cell's macOS version), else Linux's."""
    system = facts.get("sys_platform")
    if system == "win32":
        return [re.sub(r"[.-]", "_", str(facts.get("sysconfig_platform", "")))]
    if system == "darwin":
        major, minor = (int(p) for p in (str(facts.get("mac_version")) + ".0").split(".")[:2])
        return list(mac_platforms((major, minor), str(facts.get("machine"))))
    return linux_platforms(facts)


def _generic_abis(soabi: str) -> list[str]:
    """The ABI tag of a non-CPython interpreter from its SOABI (as packaging's _generic_abi):
    'pypy310-pp73-x86_64-linux-gnu' -> ['pypy310_pp73']."""
    if soabi.startswith("pypy"):
        soabi = "-".join(soabi.split("-")[:2])
    elif soabi.startswith("graalpy"):
        soabi = "-".join(soabi.split("-")[:3])
    return [soabi.replace(".", "_").replace("-", "_")] if soabi else []


def supported(facts: Mapping[str, Any]) -> list[Tag]:
    """All tags the interpreter described by ``facts`` accepts, in pip's preference order."""
    version = tuple(facts["version_info"][:2])
    accepted = platforms(facts)
    if facts.get("implementation") != "cpython":  # PyPy, GraalPy: as packaging.sys_tags
        impl = str(facts.get("implementation", ""))
        interpreter = INTERPRETER_SHORT_NAMES.get(impl, impl) + "".join(map(str, version))
        return [*generic_tags(interpreter, _generic_abis(str(facts.get("soabi") or "")),
                              accepted),
                *compatible_tags(version, interpreter, accepted)]
    abi = "cp" + "".join(map(str, version)) + facts.get("abiflags", "")
    return [*cpython_tags(version, [abi, "abi3", "none"], accepted),
            *compatible_tags(version, "cp" + "".join(map(str, version)), accepted)]


def compatible(wheel_tags: Iterable[Tag], facts: Mapping[str, Any]) -> bool:
    """Whether pip on this interpreter would take a wheel with these tags."""
    return not set(wheel_tags).isdisjoint(supported(facts))


def describe(facts: Mapping[str, Any]) -> str:
    """'CPython 3.9.2, glibc 2.31, x86_64' for messages."""
    impl = {"cpython": "CPython"}.get(facts.get("implementation", ""), facts.get(
        "implementation", "?"))
    libc = (f"glibc {facts['glibc']}" if facts.get("glibc") else
            f"musl {musl_version(facts)}" if musl_version(facts) else
            str(facts.get("sysconfig_platform") or "no glibc"))
    return f"{impl} {facts.get('version', '?')}, {libc}, {facts.get('machine', '?')}"
