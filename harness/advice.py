"""Which build backend made a wheel, and each fix in that backend's terms (data, not code).

The backend comes from the wheel's ``WHEEL`` ``Generator`` line, else from the sdist's
``[build-system] build-backend``; a setuptools wheel whose sdist holds ``Cargo.toml`` is
setuptools-rust. ``FIXES`` holds every fix the diagnosis and the audit give, per backend,
with a neutral text (``any``) for every other backend. Texts are ``str.format`` templates
(``{lib}``, ``{floor}``...); nothing in them is specific to one package.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from harness import release

Backend = Literal["maturin", "setuptools-rust", "setuptools", "meson-python",
                  "scikit-build-core", "hatchling", "pdm-backend", "flit", "poetry", "unknown"]

#: WHEEL's Generator (lower case, by prefix) -> the backend that wrote the wheel
GENERATORS: tuple[tuple[str, Backend], ...] = (
    ("maturin", "maturin"), ("scikit-build-core", "scikit-build-core"),
    ("meson", "meson-python"), ("setuptools", "setuptools"), ("bdist_wheel", "setuptools"),
    ("hatchling", "hatchling"), ("pdm-backend", "pdm-backend"), ("pdm", "pdm-backend"),
    ("flit", "flit"), ("poetry", "poetry"))
#: the sdist's build-backend module (first component) -> the backend
BUILD_BACKENDS: Mapping[str, Backend] = MappingProxyType({
    "maturin": "maturin", "setuptools": "setuptools", "setuptools_rust": "setuptools-rust",
    "mesonpy": "meson-python", "scikit_build_core": "scikit-build-core",
    "hatchling": "hatchling", "pdm": "pdm-backend", "flit_core": "flit", "poetry": "poetry"})
#: where a backend's missing text is looked up next (then ``any``)
FALLBACK: Mapping[Backend, tuple[Backend, ...]] = MappingProxyType({
    "setuptools-rust": ("setuptools",)})


@dataclass(frozen=True, kw_only=True)
class Source:
    """What the release's sdist says about the build: its build-backend, and Rust in it."""

    build_backend: str | None = None
    rust: bool = False  # Cargo.toml at the sdist's top


@functools.lru_cache(maxsize=16)
def source_of(sdist: Path | None) -> Source | None:
    """What an sdist says about the build (read once per file); None without one."""
    if sdist is None:
        return None
    contents = release.read_sdist(sdist)
    return Source(build_backend=contents.backend, rust="Cargo.toml" in contents.files)


def backend_of(generator: str, source: Source | None = None) -> Backend:
    """The backend from WHEEL's Generator, else the sdist's build-backend; ``unknown``."""
    text = generator.strip().lower()
    found = next((b for prefix, b in GENERATORS if text.startswith(prefix)), None)
    if found is None and source is not None and source.build_backend:
        root = source.build_backend.split(":")[0].split(".")[0].strip()
        found = BUILD_BACKENDS.get(root)
    if found == "setuptools" and source is not None and source.rust:
        return "setuptools-rust"
    return found or "unknown"


_REPAIR_LINUX = ("run `auditwheel repair -w wheelhouse/ WHEEL` on the built wheel and publish "
                 "the repaired one (cibuildwheel does this by default)")

#: fix -> backend -> text; ``any`` is the neutral text every other backend gets
FIXES: Mapping[str, Mapping[str, str]] = MappingProxyType({
    # a library the extension needs is not inside the wheel (Linux)
    "bundle": {
        "maturin": "build with maturin's repair step (do not pass `--auditwheel skip`), or run "
                   "`auditwheel repair` on the wheel; either copies {lib} into the wheel",
        "any": _REPAIR_LINUX + "; it copies {lib} into the wheel",
    },
    # the bundled copy is there but the loader cannot find it (RPATH)
    "rpath": {
        "maturin": "Repair the wheel with maturin's repair step or `auditwheel repair` instead "
                   "of editing it by hand",
        "any": "Repair the wheel with `auditwheel repair` (it sets the RPATH) instead of "
               "editing it by hand",
    },
    # the repaired wheel lost its bundled libraries afterwards
    "repack": {
        "maturin": "Publish the wheel maturin wrote, untouched",
        "any": "Publish the wheel `auditwheel repair` wrote, untouched",
    },
    # PyInit_<name> not exported under the name Python looks for
    "module-name": {
        "maturin": "the `#[pymodule] fn {name}` in Rust, `module-name = \"{module}\"` under "
                   "[tool.maturin], and the import in __init__.py",
        "setuptools-rust": "the `#[pymodule] fn {name}` in Rust, the target of the "
                           "RustExtension (\"{module}\"), and the import in __init__.py",
        "setuptools": "the Extension's name (\"{module}\") in setup.py, the C function "
                      "`PyInit_{name}` (for Cython: the .pyx file's name), and the import in "
                      "__init__.py",
        "meson-python": "the name given to `py.extension_module('{name}', ...)` in meson.build, "
                        "the C function `PyInit_{name}`, and the import in __init__.py",
        "scikit-build-core": "the CMake target (or OUTPUT_NAME) of `python_add_library({name} "
                             "MODULE ...)`, the C function `PyInit_{name}`, and the import in "
                             "__init__.py",
        "any": "the extension's file name, its `PyInit_{name}` function, and the import in "
               "__init__.py",
    },
    # one wheel for every Python from the floor on: the stable ABI
    "abi3": {
        "maturin": "build with pyo3's `abi3-py3{minor}` feature (a cp3{minor}-abi3 wheel serves "
                   "Python 3.{minor} and later)",
        "setuptools-rust": "enable pyo3's `abi3-py3{minor}` feature and build with "
                           "`py_limited_api=\"cp3{minor}\"` ([bdist_wheel] in setup.cfg)",
        "setuptools": "build against the limited API: `py_limited_api=True` on the Extension, "
                      "`define_macros=[(\"Py_LIMITED_API\", \"0x030{minor:X}0000\")]` and "
                      "`[bdist_wheel] py_limited_api = cp3{minor}` in setup.cfg (Cython 3 "
                      "supports it)",
        "meson-python": "build against the limited API: `limited_api: '3.{minor}'` on "
                        "`py.extension_module()` and `limited-api = true` under "
                        "[tool.meson-python]",
        "scikit-build-core": "build against the limited API: `wheel.py-api = \"cp3{minor}\"` "
                             "under [tool.scikit-build] and `python_add_library(... "
                             "USE_SABI 3.{minor})`",
        "any": "build against the stable ABI (limited API) with its floor set to Python "
               "3.{minor}",
    },
    # a version-specific wheel: one per Python, or abi3
    "per-python": {
        "maturin": "build one wheel per Python (`maturin build -i python3.X` for each), or "
                   "enable pyo3's `abi3-py3{minor}` feature",
        "any": "build one wheel per Python (cibuildwheel builds them all), or build against "
               "the stable ABI (limited API) from Python 3.{minor}",
    },
    # symbols newer than the glibc the tag promises
    "glibc": {
        "maturin": "build with `maturin build --zig --compatibility manylinux2014` (glibc "
                   "2.17), or inside the manylinux container of the glibc the tag promises, so "
                   "the symbols match the tag",
        "any": "build inside the manylinux container of the glibc the tag promises (e.g. "
               "quay.io/pypa/manylinux2014_x86_64 for glibc 2.17, cibuildwheel's default) and "
               "repair with auditwheel, so the symbols match the tag",
    },
    # a musllinux tag on glibc-built objects
    "musl": {
        "maturin": "build with `maturin build --zig --compatibility musllinux_1_2` (or inside a "
                   "musllinux container) instead of re-tagging a glibc build",
        "any": "build inside a musllinux container (cibuildwheel's musllinux images) instead "
               "of re-tagging a glibc build",
    },
    # an old build of the extension was packaged
    "stale-extension": {
        "maturin": "Rebuild from a clean target directory (`cargo clean`) and check the wheel "
                   "holds only the new extension",
        "setuptools-rust": "Rebuild from a clean tree (`cargo clean`, delete build/) and check "
                           "the wheel holds only the new extension",
        "setuptools": "Delete build/ and any compiled extension left beside the sources "
                      "(`git clean -xdf`), rebuild, and check the wheel holds only the new one",
        "any": "Rebuild from a fresh build directory and check the wheel holds only the new "
               "extension",
    },
    # __version__ hard-coded somewhere else than the build's version
    "version-source": {
        "maturin": "Don't hard-code it: take it from importlib.metadata.version({dist!r}) (the "
                   "version in Cargo.toml / pyproject.toml)",
        "any": "Don't hard-code it: take it from importlib.metadata.version({dist!r}), or let "
               "the build backend write it from the one version of the project",
    },
    # where the version is set, for a renamed or mismatched wheel
    "version-home": {
        "maturin": "rebuild with the version set in one place (Cargo.toml or pyproject.toml)",
        "any": "rebuild with the version set in one place (pyproject.toml, or what the build "
               "backend reads it from)",
    },
    # a wheel too big
    "strip": {
        "maturin": "look for debug symbols (maturin: `strip = true` under [tool.maturin]), "
                   "test data or duplicated libraries in the wheel",
        "any": "look for debug symbols (build in release mode, strip the extensions), test "
               "data or duplicated libraries in the wheel",
    },
    # the sdist lacks what its backend needs
    "sdist-include": {
        "maturin": "include them (`include` under [tool.maturin]) and rebuild the sdist",
        "setuptools-rust": "include them (MANIFEST.in) and rebuild the sdist",
        "setuptools": "include them (MANIFEST.in) and rebuild the sdist",
        "meson-python": "make sure they are tracked by git (meson dist packs tracked files) "
                        "and rebuild the sdist",
        "scikit-build-core": "include them (`sdist.include` under [tool.scikit-build]) and "
                             "rebuild the sdist",
        "any": "include them in the sdist (the build backend's include setting) and rebuild it",
    },
    # native code built for a newer CPU than the wheel's tag promises (a floor cell's SIGILL)
    "cpu-floor-gmp": {
        "any": "GMP picks the build machine's CPU unless told otherwise: configure the bundled "
               "GMP with --enable-fat (code for every CPU, chosen at run time) or "
               "--host=x86_64-pc-linux-gnu (generic x86-64), never the config.guess default or "
               "-march=native",
    },
    "cpu-floor-rust": {
        "any": "Rust: remove target-cpu=native/haswell and target-feature=+avx2,+bmi2,... from "
               "RUSTFLAGS and from .cargo/config.toml ([build] or "
               "[target.x86_64-unknown-linux-gnu] rustflags); keep fast paths behind "
               "is_x86_feature_detected!() with #[target_feature(enable = ...)] functions",
    },
    "cpu-floor": {
        "setuptools": "drop -march=native (or -march=haswell, -mavx2, -mbmi2) from "
                      "extra_compile_args and CFLAGS/CXXFLAGS; build with -march=x86-64 and use "
                      "__attribute__((target_clones(...))) or a CPUID check for fast paths",
        "meson-python": "drop -march=native (or -mavx2, -mbmi2) from c_args/cpp_args in "
                        "meson.build and the build's -Csetup-args; build for x86-64 and "
                        "dispatch fast paths at run time (target_clones, a CPUID check)",
        "scikit-build-core": "drop -march=native (or -mavx2, -mbmi2) from CMAKE_C_FLAGS/"
                             "CMAKE_CXX_FLAGS and target_compile_options; build for x86-64 and "
                             "dispatch fast paths at run time (target_clones, a CPUID check)",
        "any": "C/C++: drop -march=native (or -march=haswell, -mavx2, -mbmi2) from the compiler "
               "flags; build with -march=x86-64 and use __attribute__((target_clones(...))) or "
               "a CPUID check for fast paths",
    },
    # how to make an sdist
    "sdist-build": {
        "maturin": "`maturin sdist` (or `python -m build --sdist`)",
        "any": "`python -m build --sdist`",
    },
})


def fix(topic: str, backend: Backend, **values: object) -> str:
    """The text of ``topic`` for ``backend`` (its fallbacks, then ``any``), filled in."""
    texts = FIXES[topic]
    for key in (backend, *FALLBACK.get(backend, ()), "any"):
        if key in texts:
            return texts[key].format(**values)
    raise KeyError(topic)  # every topic has an ``any`` text (a unit test says so)
