"""Which wheel tags a cell's interpreter accepts, computed from the facts the probe reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from packaging.tags import (
    INTERPRETER_SHORT_NAMES,
    Tag,
    compatible_tags,
    cpython_tags,
    generic_tags,
)

_LEGACY = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


def linux_platforms(machine: str, glibc: str) -> list[str]:
    """Platform tags a glibc Linux of this version accepts, most specific first."""
    arch = machine.replace("-", "_").replace(".", "_")
    platforms: list[str] = []
    if glibc:
        major, minor = (int(x) for x in glibc.split(".")[:2])
        for m in range(minor, 4, -1):
            platforms.append(f"manylinux_{major}_{m}_{arch}")
            if (major, m) in _LEGACY:
                platforms.append(f"{_LEGACY[major, m]}_{arch}")
    platforms.append(f"linux_{arch}")
    return platforms


def musllinux_platforms(machine: str, musl: str) -> list[str]:
    """Platform tags a musl Linux of this version accepts (musllinux_1_2 ... _1_0, linux)."""
    arch = machine.replace("-", "_").replace(".", "_")
    major, minor = (int(x) for x in musl.split(".")[:2])
    return [*(f"musllinux_{major}_{m}_{arch}" for m in range(minor, -1, -1)), f"linux_{arch}"]


def musl_version(facts: Mapping[str, Any]) -> str:
    """The cell's musl version ("1.2.4") from ``facts['musl']`` or a ``libc`` of "musl 1.2.4";
    "" on a glibc system."""
    libc = str(facts.get("libc") or "")
    return str(facts.get("musl") or (libc.split()[-1] if libc.startswith("musl ") else ""))


def _generic_abis(soabi: str) -> list[str]:
    """The ABI tag of a non-CPython interpreter from its SOABI (packaging's _generic_abi):
    'pypy310-pp73-x86_64-linux-gnu' -> ['pypy310_pp73']."""
    if soabi.startswith("pypy"):
        soabi = "-".join(soabi.split("-")[:2])
    elif soabi.startswith("graalpy"):
        soabi = "-".join(soabi.split("-")[:3])
    return [soabi.replace(".", "_").replace("-", "_")] if soabi else []


def supported(facts: Mapping[str, Any]) -> list[Tag]:
    """All tags the interpreter described by ``facts`` accepts, in pip's preference order."""
    version = tuple(facts["version_info"][:2])
    musl = musl_version(facts)
    platforms = (musllinux_platforms(facts["machine"], musl) if musl
                 else linux_platforms(facts["machine"], facts.get("glibc", "")))
    if facts.get("implementation") != "cpython":  # PyPy, GraalPy: as packaging.sys_tags
        impl = str(facts.get("implementation", ""))
        interpreter = INTERPRETER_SHORT_NAMES.get(impl, impl) + "".join(map(str, version))
        return [*generic_tags(interpreter, _generic_abis(str(facts.get("soabi") or "")),
                              platforms),
                *compatible_tags(version, interpreter, platforms)]
    abi = "cp" + "".join(map(str, version)) + facts.get("abiflags", "")
    return [*cpython_tags(version, [abi, "abi3", "none"], platforms),
            *compatible_tags(version, "cp" + "".join(map(str, version)), platforms)]


def compatible(wheel_tags: Iterable[Tag], facts: Mapping[str, Any]) -> bool:
    """Whether pip on this interpreter would take a wheel with these tags."""
    return not set(wheel_tags).isdisjoint(supported(facts))


def describe(facts: Mapping[str, Any]) -> str:
    """'CPython 3.9.2, glibc 2.31, x86_64' for messages."""
    impl = {"cpython": "CPython"}.get(facts.get("implementation", ""), facts.get(
        "implementation", "?"))
    libc = f"glibc {facts['glibc']}" if facts.get("glibc") else facts.get("libc") or "no glibc"
    return f"{impl} {facts.get('version', '?')}, {libc}, {facts.get('machine', '?')}"
