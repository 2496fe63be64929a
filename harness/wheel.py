"""The wheel under test: which file, its tags, version, sha256 and native-code facts."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from email.parser import BytesHeaderParser
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection
from packaging.metadata import Metadata, parse_email
from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from harness import release, tags
from harness.errors import InputError
from harness.matrix import Package
from harness.probe_native import is_library

PARALLEL_READ_BYTES = 8 << 20  # a release this big is read by several processes at once


@dataclass(frozen=True, kw_only=True)
class ElfFacts:
    """What the loader will do with one shared object inside the wheel."""

    path: str
    needed: tuple[str, ...]
    rpath: tuple[str, ...]
    runpath: tuple[str, ...]
    pyinit: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Audit:
    """What auditwheel finds the wheel really is, as it is (no grafting)."""

    policy: str  # the best platform tag the wheel satisfies, e.g. manylinux_2_17_x86_64
    glibc: str | None  # highest GLIBC_x.y symbol version it needs
    external: tuple[str, ...]  # libraries it needs that are neither bundled nor allowed
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class WheelInfo:
    """Facts about one wheel file, read without installing it."""

    path: Path
    name: str
    version: Version
    metadata_version: str
    tags: frozenset[Tag]
    sha256: str
    files: tuple[str, ...]
    elf: tuple[ElfFacts, ...]
    audit: Audit | None = None
    requires_dist: tuple[str, ...] = ()  # METADATA Requires-Dist, markers included
    generator: str = ""  # WHEEL's Generator line: the build backend that wrote it

    @property
    def filename(self) -> str:
        """The wheel's file name."""
        return self.path.name

    def bundled(self, library: str) -> list[str]:
        """Copies of ``lib<library>`` shipped inside the wheel."""
        return [f for f in self.files if is_library(f, library)]

    def extension_modules(self) -> list[str]:
        """Dotted names of the Python extension modules inside: shared objects exporting a
        PyInit_ symbol (even a wrongly named one). A plain library (``pkg/libfoo.so``, a ctypes
        helper) exports none and is not one."""
        found = []
        for e in self.elf:
            if e.path.endswith(".so") and ".data/" not in e.path:
                parts = e.path.split("/")
                stem = parts[-1].split(".", 1)[0]
                if e.pyinit and all(p.isidentifier() for p in [*parts[:-1], stem]):
                    found.append(".".join([*parts[:-1], stem]))
        return sorted(found)

    def needs(self, library: str) -> list[str]:
        """NEEDED entries naming ``lib<library>`` across the wheel's shared objects."""
        return sorted({n for e in self.elf for n in e.needed if is_library(n, library)})


def _elf_facts(name: str, stream: IO[bytes]) -> ElfFacts | None:
    """What an ELF member needs, read from its (seekable) stream: never whole in memory."""
    try:
        elf = ELFFile(stream)
    except ELFError:
        return None
    needed: list[str] = []
    rpath: list[str] = []
    runpath: list[str] = []
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            for tag in section.iter_tags():
                kind = tag.entry.d_tag
                if kind == "DT_NEEDED":
                    needed.append(getattr(tag, "needed", ""))
                elif kind == "DT_RPATH":
                    rpath.extend(getattr(tag, "rpath", "").split(":"))
                elif kind == "DT_RUNPATH":
                    runpath.extend(getattr(tag, "runpath", "").split(":"))
    symbols = elf.get_section_by_name(".dynsym")
    pyinit = sorted({s.name for s in symbols.iter_symbols()
                     if s.name.startswith("PyInit_") and s["st_shndx"] != "SHN_UNDEF"}
                    ) if isinstance(symbols, SymbolTableSection) else []
    return ElfFacts(path=name, needed=tuple(needed), rpath=tuple(rpath),
                    runpath=tuple(runpath), pyinit=tuple(pyinit))


def _member_elf(zf: zipfile.ZipFile, name: str) -> ElfFacts | None:
    """The ELF facts of a zip member, streamed (a 1 GiB member costs no 1 GiB of memory)."""
    with zf.open(name) as fh:
        if fh.read(4) != b"\x7fELF":
            return None
        fh.seek(0)
        return _elf_facts(name, fh)


def _pep600(platform_tag: str) -> str:
    """manylinux2014_x86_64 -> manylinux_2_17_x86_64 (auditwheel's policy names)."""
    glibc, arch = tags.promised_glibc(platform_tag), tags.manylinux_arch(platform_tag)
    return f"manylinux_{glibc[0]}_{glibc[1]}_{arch}" if glibc and arch else platform_tag


def _audit_cache(sha256: str) -> Path:
    """Where auditwheel's verdict on these bytes is kept (it takes seconds on big wheels)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return (Path(base) / "q-kangaroo-smoke" / "auditwheel"
            / f"{sha256}-{importlib.metadata.version('auditwheel')}.json")


def audit(path: Path, wheel_tags: frozenset[Tag], sha256: str = "") -> Audit | None:
    """auditwheel's verdict on a manylinux wheel; None for wheels that claim no manylinux.
    What auditwheel raises is kept in ``error`` (the tags check makes it an ERROR). With the
    file's ``sha256``, a verdict is cached by content (and auditwheel's version)."""
    if not any(tags.manylinux_arch(t.platform) for t in wheel_tags):
        return None
    cache = _audit_cache(sha256) if sha256 else None
    with contextlib.suppress(OSError, ValueError, TypeError):
        if cache is not None and cache.is_file():
            data = json.loads(cache.read_text())
            return Audit(policy=data["policy"], glibc=data["glibc"],
                         external=tuple(data["external"]))
    found = _run_auditwheel(path, wheel_tags)
    if cache is not None and found.error is None:
        with contextlib.suppress(OSError):
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(dataclasses.asdict(found)))
            tmp.replace(cache)
    return found


@dataclass(frozen=True, kw_only=True)
class Shown:
    """What ``auditwheel show --json`` (its schema version 1) says about one wheel."""

    overall_tag: str = ""  # the best platform tag the wheel satisfies
    versioned_symbols: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    external_libs: tuple[str, ...] = ()  # needed, not bundled, not allowed by any policy
    upgrades: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # policy -> libs
    # that keep the wheel from it
    not_platform: str | None = None  # auditwheel's answer: no platform code it can judge
    failed: str | None = None  # auditwheel gave no answer (crash, an unknown JSON version)

    @property
    def newest_glibc(self) -> str | None:
        """The highest GLIBC_x.y symbol version the wheel needs."""
        versions = [tuple(int(x) for x in v.split("_", 1)[1].split("."))
                    for vs in self.versioned_symbols.values() for v in vs
                    if v.startswith("GLIBC_") and v[6:7].isdigit()]
        return ".".join(map(str, max(versions))) if versions else None


AUDITWHEEL_JSON_VERSION = 1  # the `auditwheel show --json` schema this code reads


def auditwheel_show(path: Path) -> Shown:
    """``auditwheel show --json`` of a wheel (libc and architecture from its file name), in a
    child process: auditwheel's public, versioned interface."""
    try:
        proc = subprocess.run([sys.executable, "-m", "auditwheel", "show", "--json",
                               "--disable-isa-ext-check", str(path)], capture_output=True,
                              text=True, timeout=600, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return Shown(failed=f"{type(exc).__name__}: {exc}")
    try:
        data = json.loads(proc.stdout)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError:
        tail = " ".join((proc.stderr or proc.stdout).split())[-300:]
        return Shown(failed=f"auditwheel show exited {proc.returncode}: {tail}")
    if data.get("version") != AUDITWHEEL_JSON_VERSION:
        return Shown(failed=f"auditwheel show --json gave schema version {data.get('version')}"
                            f", this harness reads {AUDITWHEEL_JSON_VERSION}: update it")
    if "error" in data:
        return Shown(not_platform=str(data["error"]))
    if data.get("pure"):
        return Shown(not_platform="a pure-Python wheel")
    return Shown(overall_tag=str(data["overall_tag"]),
                 versioned_symbols={k: tuple(v) for k, v in data["versioned_symbols"].items()},
                 external_libs=tuple(sorted(data["external_libs"])),
                 upgrades={k: tuple(v.get("libs_to_eliminate", ()))
                           for k, v in data["policy_upgrades"].items()})


def _run_auditwheel(path: Path, wheel_tags: frozenset[Tag]) -> Audit:
    shown = auditwheel_show(path)
    problem = shown.failed or shown.not_platform
    if problem is not None:  # reported, never swallowed: the tags check is then an ERROR
        return Audit(policy="?", glibc=None, external=(), error=problem)
    claimed = max((t.platform for t in wheel_tags if tags.promised_glibc(t.platform)),
                  key=lambda p: tags.promised_glibc(p) or (0, 0))
    return Audit(policy=shown.overall_tag, glibc=shown.newest_glibc,
                 external=tuple(sorted(shown.upgrades.get(_pep600(claimed), ()))))


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unsafe_member(names: Sequence[str]) -> str | None:
    """The first member an installer would write outside its target directory (zip-slip):
    an absolute path, a drive, or a ``..`` component; None when every name is safe."""
    for name in names:
        posix = PurePosixPath(name.replace("\\", "/"))
        if posix.is_absolute() or ".." in posix.parts or PureWindowsPath(name).drive:
            return name
    return None


def unsafe_member_message(name: str) -> str:
    """What is wrong with a wheel holding the zip-slip member ``name``."""
    return (f"member {name!r} would be written outside the install directory (an absolute "
            "path or a '..' component: a broken or malicious wheel) [unsafe-path]")


def inspect(path: Path) -> WheelInfo:
    """Read a wheel's name, version, tags, metadata and ELF facts."""
    try:
        name, version, _build, wheel_tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        raise InputError(f"{path}: not a wheel file name ({exc}); pass a .whl") from exc
    try:
        with zipfile.ZipFile(path) as zf:
            if (unsafe := unsafe_member(zf.namelist())) is not None:
                raise InputError(f"{path}: {unsafe_member_message(unsafe)}; rebuild the wheel "
                                 "so every member is a relative path inside it")
            files = tuple(n for n in zf.namelist() if not n.endswith("/"))  # no dir entries
            meta_name = next((f for f in files if f.endswith(".dist-info/METADATA")), None)
            if meta_name is None:
                raise InputError(f"{path}: no .dist-info/METADATA inside; not a built wheel")
            raw_metadata = zf.read(meta_name)
            wheel_name = meta_name.removesuffix("METADATA") + "WHEEL"
            generator = (str(BytesHeaderParser().parsebytes(zf.read(wheel_name)).get(
                "Generator", "")) if wheel_name in files else "")
            metadata = Metadata.from_email(raw_metadata, validate=False)
            elf = tuple(e for f in files if f.endswith(".so") or ".so." in f
                        if (e := _member_elf(zf, f)) is not None)
    except zipfile.BadZipFile as exc:
        raise InputError(f"{path}: not a readable zip archive ({exc}); rebuild the wheel") \
            from exc
    except UnicodeDecodeError as exc:  # the UTF-8 flag on a name that is not UTF-8
        raise InputError(f"{path}: a member's name is not valid UTF-8 although the archive "
                         "says it is; rebuild the wheel") from exc
    sha256 = file_sha256(path)
    return WheelInfo(path=path, name=str(name), version=version,
                     metadata_version=str(metadata.version), tags=frozenset(wheel_tags),
                     sha256=sha256, files=files, elf=elf,
                     audit=audit(path, frozenset(wheel_tags), sha256),
                     requires_dist=_requires_dist(raw_metadata), generator=generator)


def _requires_dist(raw: bytes) -> tuple[str, ...]:
    """The Requires-Dist lines as written (the audit judges their validity)."""
    parsed, _unparsed = parse_email(raw)
    return tuple(parsed.get("requires_dist", ()))


@dataclass(frozen=True, kw_only=True)
class Release:
    """The release set under test, each wheel read (what the host judges cells against)."""

    files: release.ReleaseSet
    wheels: tuple[WheelInfo, ...]  # in the order of ``files.wheels``

    @property
    def label(self) -> str:
        """``name version`` and how many files, for titles."""
        n = len(self.files.files)
        return (self.wheels[0].filename if n == 1 and self.wheels else
                f"{self.files.distribution} {self.files.version} ({n} files)")

    def by_name(self, filename: str) -> WheelInfo | None:
        """The wheel of the set with this file name."""
        return next((w for w in self.wheels if w.filename == filename), None)

    def info(self, dist: release.Dist) -> WheelInfo:
        """The read wheel behind one wheel of the set."""
        found = self.by_name(dist.filename)
        assert found is not None, dist.filename
        return found

    def staged(self, directory: Path) -> Release:
        """The same set, its wheels' paths in ``directory`` (byte copies made by the run)."""
        def moved(d: release.Dist) -> release.Dist:
            return replace(d, path=directory / d.filename)

        files = replace(self.files, wheels=tuple(moved(d) for d in self.files.wheels))
        return Release(files=files, wheels=tuple(replace(w, path=directory / w.filename)
                                                 for w in self.wheels))


def resolve(paths: Sequence[Path], package: Package, *, version: str | None = None,
            prereleases: bool = False, source: str = "the matrix") -> release.ReleaseSet:
    """The release set to test: a single .whl (a set of one), or every wheel and sdist of
    one version of the package among files and directories (newest final by default)."""
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such file or directory; pass a .whl, a dist/ "
                             "directory, or wheel and sdist files")
    if len(paths) == 1 and paths[0].is_file() and paths[0].suffix != ".whl":
        raise InputError(f"{paths[0]}: not a .whl file; pass a wheel or a directory of "
                         "wheels")
    if len(paths) == 1 and paths[0].is_file():
        try:
            name = parse_wheel_filename(paths[0].name)[0]
        except InvalidWheelFilename as exc:
            raise InputError(f"{paths[0]}: not a wheel file name ({exc}); pass a .whl") \
                from exc
        if name != canonicalize_name(package.distribution):
            raise InputError(f"{paths[0]}: a wheel of {name}, but {source} tests "
                             f"{package.distribution}; pass a {package.distribution} wheel, "
                             f"or a matrix for {name} with --matrix")
    found = release.collect(list(paths), package.distribution, version=version,
                            prereleases=prereleases)
    if not found.wheels:
        where = ", ".join(str(p) for p in paths)
        raise InputError(f"{where}: no wheel of {package.distribution} {found.version} (only "
                         + ", ".join(d.filename for d in found.sdists)
                         + "); build the wheels first")
    return found


def read_release(found: release.ReleaseSet) -> Release:
    """Read every wheel of the set (bad wheels refused now, named as the user gave them);
    big sets side by side, in processes (auditwheel changes the working directory)."""
    paths = [d.path for d in found.wheels]
    if len(paths) < 2 or sum(p.stat().st_size for p in paths) < PARALLEL_READ_BYTES:
        return Release(files=found, wheels=tuple(inspect(p) for p in paths))
    with ProcessPoolExecutor(max_workers=min(len(paths), os.cpu_count() or 1),
                             mp_context=multiprocessing.get_context("spawn"),
                             initializer=_ignore_stop_signals) as pool:
        return Release(files=found, wheels=tuple(pool.map(inspect, paths)))


def _ignore_stop_signals() -> None:
    """A reader process finishes its file; the harness's main loop handles Ctrl-C."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
