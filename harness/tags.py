"""Which wheel tags a cell's interpreter accepts, computed from the facts the probe reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from packaging.tags import Tag, compatible_tags, cpython_tags

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


def supported(facts: Mapping[str, Any]) -> list[Tag]:
    """All tags the interpreter described by ``facts`` accepts, in pip's preference order."""
    version = tuple(facts["version_info"][:2])
    platforms = linux_platforms(facts["machine"], facts.get("glibc", ""))
    if facts.get("implementation") != "cpython":
        return list(compatible_tags(version, None, platforms))
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
