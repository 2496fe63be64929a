"""Fakes for unit tests: synthetic wheels, packages and probe events."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.tags import parse_tag
from packaging.version import Version

from harness.matrix import Check, Package
from harness.wheel import ElfFacts, WheelInfo

GOOD_TAGS = "cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64"
FACTS_311 = {"version": "3.11.2", "version_info": [3, 11, 2], "implementation": "cpython",
             "machine": "x86_64", "glibc": "2.36", "abiflags": ""}


def make_wheel(tags: str = GOOD_TAGS, *, bundled: bool = True,
               pyinit: str = "PyInit__q_kangaroo") -> WheelInfo:
    files = ["q_kangaroo/__init__.py", "q_kangaroo/_q_kangaroo.abi3.so"]
    needed = ["libgmp-1a2b3c4d.so.10" if bundled else "libgmp.so.10", "libc.so.6"]
    if bundled:
        files.append("q_kangaroo.libs/libgmp-1a2b3c4d.so.10")
    return WheelInfo(path=Path(f"/w/q_kangaroo-1.0.0-{tags}.whl"), name="q_kangaroo",
                     version=Version("1.0.0"), metadata_version="1.0.0",
                     tags=frozenset(parse_tag(tags)), sha256="0" * 64, files=tuple(files),
                     elf=(ElfFacts(path=files[1], needed=tuple(needed), rpath=(), runpath=(),
                                   pyinit=(pyinit,)),))


PACKAGE = Package(distribution="q_kangaroo", import_name="q_kangaroo",
                  version_from=("__version__", "version()"),
                  wheel_tags=("cp39-abi3-manylinux_2_17_x86_64",), bundled_libraries=("gmp",),
                  absent_env=("MINGW_BIN",),
                  checks=(Check(name="partition_gf", expr="q_kangaroo.partition_gf(1000)",
                                expected_expr="reference.partition_numbers(1000)"),))


def ev_check(name: str, status: str = "pass", detail: str = "", **data: Any) -> dict[str, Any]:
    return {"event": "check", "name": name, "status": status, "detail": detail, "data": data}


def passing_events(facts: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [{"event": "facts", **(facts or FACTS_311)},
            ev_check("sterility"), ev_check("install"), ev_check("import"),
            ev_check("version"), ev_check("partition_gf"),
            ev_check("provenance", libraries={"gmp": ["/v/q_kangaroo.libs/libgmp-1a.so.10"]}),
            {"event": "checks_exit", "returncode": 0, "stderr": "", "seconds": 0.1}]


@pytest.fixture
def package() -> Package:
    return PACKAGE


@pytest.fixture
def synthetic_wheel(tmp_path: Path) -> Path:
    """A tiny pure-Python q_kangaroo wheel file made here (no Rust build needed)."""
    path = tmp_path / "q_kangaroo-1.0.0-py3-none-any.whl"
    dist = "q_kangaroo-1.0.0.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("q_kangaroo/__init__.py", '__version__ = "1.0.0"\n')
        zf.writestr(f"{dist}/METADATA",
                    "Metadata-Version: 2.1\nName: q_kangaroo\nVersion: 1.0.0\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"
                    "Tag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return path
