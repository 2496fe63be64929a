"""Fakes for unit tests: synthetic wheels, packages and probe events."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.tags import parse_tag
from packaging.version import Version

from harness import release
from harness.matrix import Check, Package
from harness.verdict import CellResult, ProbeRun, judge
from harness.wheel import ElfFacts, Release, WheelInfo

GOOD_TAGS = "cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64"
FACTS_311 = {"version": "3.11.2", "version_info": [3, 11, 2], "implementation": "cpython",
             "machine": "x86_64", "glibc": "2.36", "abiflags": ""}


def make_wheel(tags: str = GOOD_TAGS, *, bundled: bool = True,
               pyinit: str = "PyInit__q_kangaroo", generator: str = "maturin (1.16.0)"
               ) -> WheelInfo:
    files = ["q_kangaroo/__init__.py", "q_kangaroo/_q_kangaroo.abi3.so"]
    needed = ["libgmp-1a2b3c4d.so.10" if bundled else "libgmp.so.10", "libc.so.6"]
    if bundled:
        files.append("q_kangaroo.libs/libgmp-1a2b3c4d.so.10")
    return WheelInfo(path=Path(f"/w/q_kangaroo-1.0.0-{tags}.whl"), name="q_kangaroo",
                     version=Version("1.0.0"), metadata_version="1.0.0",
                     tags=frozenset(parse_tag(tags)), sha256="0" * 64, files=tuple(files),
                     elf=(ElfFacts(path=files[1], needed=tuple(needed), rpath=(), runpath=(),
                                   pyinit=(pyinit,)),), generator=generator)


PACKAGE = Package(distribution="q_kangaroo", import_name="q_kangaroo",
                  version_from=("__version__", "version()"),
                  wheel_tags=("cp39-abi3-manylinux_2_17_x86_64",), bundled_libraries=("gmp",),
                  absent_env=("MINGW_BIN",),
                  checks=(Check(name="partition_gf", expr="q_kangaroo.partition_gf(1000)",
                                expected_expr="reference.partition_numbers(1000)"),))


def observed(step: str, **data: Any) -> dict[str, Any]:
    """One ``observed`` event as the probe sends it."""
    return {"event": "observed", "step": step, **data}


def release_of(*wheels: WheelInfo, sdist: Path | None = None) -> Release:
    """A release set of these (fake) wheels, as the harness reads one."""
    dists = tuple(d for w in wheels if isinstance(d := release.classify(w.path), release.Dist))
    sdists = tuple(d for d in [release.classify(sdist)] if isinstance(d, release.Dist)
                   ) if sdist else ()
    files = release.ReleaseSet(distribution=dists[0].name, version=dists[0].version,
                               wheels=dists, sdists=sdists, ignored=())
    return Release(files=files, wheels=wheels)


def install_observation(installed: WheelInfo, *staged: WheelInfo) -> dict[str, Any]:
    """The probe's install observation: ``installed`` picked from ``staged`` (default: a set
    of that wheel alone), proven by its RECORD."""
    files = {w.filename: w.sha256 for w in (staged or (installed,))}
    return observed("install", returncode=0, output="Installed 1 package", staged=files,
                    installed={"file": installed.filename, "sha256": installed.sha256},
                    matches=[installed.filename], seconds=0.1)


def for_wheel(events: list[dict[str, Any]], wheel: WheelInfo) -> list[dict[str, Any]]:
    """The stream with the default install observation naming ``wheel`` instead."""
    default = install_observation(make_wheel())
    return [install_observation(wheel) if e == default else e for e in events]


def judge_one(events: list[dict[str, Any]], wheel: WheelInfo | None = None,
              package: Package | None = None, cell_id: str = "c", **kw: Any) -> CellResult:
    """Judge a stream for a release set of one wheel (default: the good fake wheel)."""
    wheel = wheel or make_wheel()
    return judge(ProbeRun(events=tuple(for_wheel(events, wheel)), **kw), cell_id=cell_id,
                 kind="venv", release=release_of(wheel), package=package or PACKAGE)


GMP_IN_WHEEL = "/v/site-packages/q_kangaroo.libs/libgmp-1a2b3c4d.so.10"
SITE = "/v/site-packages"


def good_observations() -> dict[str, dict[str, Any]]:
    """What the probe observes for the good wheel in a clean cell, by step."""
    init = f"{SITE}/q_kangaroo/__init__.py"
    ext = f"{SITE}/q_kangaroo/_q_kangaroo.abi3.so"
    return {
        "sterility": observed("sterility", evidence={"gmp": {
            "find_library": None, "ldconfig": [], "dlopen": [], "files": []}}, env_set=[]),
        "venv": observed("venv", returncode=0, output=""),
        "install": install_observation(make_wheel()),
        "import": observed("import", exception=None, file=init,
                           modules={"q_kangaroo": init, "q_kangaroo._q_kangaroo": ext},
                           site_packages=[SITE], in_record=[init, ext],
                           extensions=[{"module": "q_kangaroo._q_kangaroo", "exception": None}]),
        "version": observed("version", values={"metadata": "1.0.0", "__version__": "1.0.0",
                                               "version()": "1.0.0"}),
        "partition_gf": observed("partition_gf", got=P20, expected=P20),
        "provenance": observed("provenance", mapped=["/usr/bin/python3", GMP_IN_WHEEL],
                               loader_log=[], sonames={GMP_IN_WHEEL: "libgmp.so.10"},
                               in_record=[GMP_IN_WHEEL]),
        "observer": observed("observer", pid=7, error=None, mapped=["/usr/bin/python3", ext],
                             extensions={"q_kangaroo._q_kangaroo": ext}),
        "exit": observed("exit", returncode=0, stderr="", seconds=0.1, over_budget=None),
    }


P20 = [1, 1, 2, 3, 5, 7, 11, 15, 22, 30, 42, 56, 77, 101, 135, 176, 231, 297, 385, 490]


def passing_events(facts: dict[str, Any] | None = None,
                   **replace: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The whole event stream of a passing cell; ``replace`` swaps (or with None drops) the
    observation of a step."""
    events: list[dict[str, Any]] = [{"event": "facts", **(facts or FACTS_311)}]
    for step, obs in good_observations().items():
        obs = replace.get(step, obs) if step in replace else obs
        if step not in ("venv", "observer", "exit"):
            events.append({"event": "started", "step": step})
        if obs is not None:
            events.append(obs if "event" in obs else observed(step, **obs))
    return events


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
