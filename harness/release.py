"""A release set: every wheel and sdist of one version of the package, and which of them the
installer would pick for a given cell (by packaging's tag priority for that cell's interpreter).

Inputs are files or directories (a ``dist/``); files of other packages or versions are kept as
``ignored`` with the reason. Picking only calls :func:`harness.tags.supported` for the cell's
accepted tags, so every platform rule (manylinux, musllinux, PyPy, abi3 floors) lives there.
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from harness import tags
from harness.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SDIST_SUFFIXES = (".tar.gz", ".zip")


@dataclass(frozen=True, kw_only=True)
class Dist:
    """One distribution file: a wheel (with its tags) or an sdist (no tags)."""

    path: Path
    kind: Literal["wheel", "sdist"]
    name: NormalizedName
    version: Version
    tags: frozenset[Tag] = frozenset()
    build: tuple[int, str] | tuple[()] = ()  # a wheel's build tag; pip prefers the higher

    @property
    def filename(self) -> str:
        """The file's name."""
        return self.path.name


@dataclass(frozen=True, kw_only=True)
class Ignored:
    """A file given (or found in a given directory) that is not part of the release set."""

    path: Path
    reason: str


@dataclass(frozen=True, kw_only=True)
class ReleaseSet:
    """The wheels and sdists of one version of one package."""

    distribution: NormalizedName
    version: Version
    wheels: tuple[Dist, ...]
    sdists: tuple[Dist, ...]
    ignored: tuple[Ignored, ...]
    requires_python: str = ""  # the release's Requires-Python ("" when it names none)

    @property
    def sdist(self) -> Dist | None:
        """The sdist pip would fall back to (the first, by name, if there are several)."""
        return self.sdists[0] if self.sdists else None

    @property
    def files(self) -> tuple[Dist, ...]:
        """Every file of the set: wheels, then sdists."""
        return (*self.wheels, *self.sdists)


@dataclass(frozen=True, kw_only=True)
class SdistContents:
    """What an sdist holds for a source build: its file list, PKG-INFO and build system."""

    files: tuple[str, ...]  # paths below the sdist's top directory
    pkg_info: Mapping[str, str]  # PKG-INFO headers (first value of each), {} if absent
    backend: str | None  # [build-system] build-backend; None without pyproject.toml
    requires: tuple[str, ...]  # [build-system] requires
    error: str | None = None  # why the sdist could not be read


@dataclass(frozen=True, kw_only=True)
class Pick:
    """What a cell's installer gets from the release set."""

    wheel: Dist | None  # the wheel pip would install; None: no wheel fits (uncovered)
    tag: Tag | None  # the supported tag by which that wheel matched (the best one)
    fallback: str  # uncovered: what a user there gets instead; "" when covered
    excluded: str = ""  # the Requires-Python that leaves this cell's Python out of the release

    @property
    def covered(self) -> bool:
        """Whether some wheel of the set fits the cell."""
        return self.wheel is not None


def classify(path: Path) -> Dist | Ignored:
    """A file as a distribution of some package and version, or why it is none."""
    name = path.name
    try:
        if name.endswith(".whl"):
            dist_name, version, build, wheel_tags = parse_wheel_filename(name)
            return Dist(path=path, kind="wheel", name=dist_name, version=version,
                        tags=frozenset(wheel_tags), build=build)
        if name.endswith(SDIST_SUFFIXES):
            dist_name, version = parse_sdist_filename(name)
            return Dist(path=path, kind="sdist", name=dist_name, version=version)
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        return Ignored(path=path, reason=f"not a valid distribution file name: {exc}")
    return Ignored(path=path, reason="neither a wheel (.whl) nor an sdist (.tar.gz, .zip)")


def _expand(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such file or directory; pass wheels, sdists or a "
                             "directory holding them")
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir()
                                if p.is_file() and not p.name.startswith(".")))
        else:
            found.append(path)
    return list(dict.fromkeys(p.resolve() for p in found))


def _choose_version(available: set[Version], version: str | None, prereleases: bool,
                    where: str) -> Version:
    listed = ", ".join(str(v) for v in sorted(available, reverse=True))
    if version is not None:
        wanted = Version(version)
        if wanted not in available:
            raise InputError(f"{where}: no file of version {version}; available: {listed}")
        return next(v for v in available if v == wanted)  # as the files spell it
    finals = {v for v in available if prereleases or not (v.is_prerelease or v.is_devrelease)}
    if not finals:
        raise InputError(f"{where}: only pre-/dev-releases ({listed}); choose one with "
                         "--release-version or allow pre-releases (--pre)")
    return max(finals)


def collect(paths: Sequence[Path], distribution: str, *, version: str | None = None,
            prereleases: bool = False) -> ReleaseSet:
    """The release set of ``distribution`` among ``paths`` (files or directories).

    The newest final release unless ``version`` names one (any kind) or ``prereleases``
    admits pre-/dev-releases. Raises InputError when no file of the package is there.
    """
    want = canonicalize_name(distribution)
    where = ", ".join(str(p) for p in paths) or "(nothing given)"
    if version is not None:
        try:
            Version(version)
        except ValueError:
            raise InputError(f"--release-version {version!r} is not a version (PEP 440), e.g. "
                             "1.2.0") from None
    classified = [classify(p) for p in _expand(paths)]
    ignored = [c for c in classified if isinstance(c, Ignored)]
    ours: list[Dist] = []
    for item in classified:
        if isinstance(item, Dist):
            if item.name != want:
                ignored.append(Ignored(path=item.path,
                                       reason=f"another package ({item.name}), not {want}"))
            else:
                ours.append(item)
    if not ours:
        raise InputError(f"{where}: no wheel or sdist of {distribution}; build one or pass "
                         "its path")
    chosen = _choose_version({d.version for d in ours}, version, prereleases, where)
    for item in ours:
        if item.version != chosen:
            kind = "pre-/dev-release" if item.version.is_prerelease else "version"
            ignored.append(Ignored(path=item.path,
                                   reason=f"{kind} {item.version}, not the chosen {chosen}"))
    mine = sorted((d for d in ours if d.version == chosen), key=lambda d: d.filename)
    return ReleaseSet(distribution=want, version=chosen,
                      wheels=tuple(d for d in mine if d.kind == "wheel"),
                      sdists=tuple(d for d in mine if d.kind == "sdist"),
                      ignored=tuple(sorted(ignored, key=lambda i: i.path.name)),
                      requires_python=_requires_python(mine))


def _requires_python(files: Sequence[Dist]) -> str:
    """Requires-Python from the first readable wheel's METADATA, else the sdist's PKG-INFO."""
    for dist in files:
        if dist.kind == "wheel":
            try:
                with zipfile.ZipFile(dist.path) as zf:
                    name = next((n for n in zf.namelist()
                                 if n.endswith(".dist-info/METADATA")), None)
                    if name is None:
                        continue
                    meta = BytesHeaderParser().parsebytes(zf.read(name))
            except (OSError, zipfile.BadZipFile, UnicodeDecodeError):  # a non-UTF-8 name
                continue
            return str(meta.get("Requires-Python") or "")
    sdist = next((d for d in files if d.kind == "sdist"), None)
    return read_sdist(sdist.path).pkg_info.get("Requires-Python", "") if sdist else ""


def outside(release: ReleaseSet, facts: Mapping[str, Any]) -> str:
    """The release's Requires-Python when it leaves the cell's Python out, else ""."""
    python = ".".join(str(x) for x in facts.get("version_info", [])[:3])
    try:
        spec = SpecifierSet(release.requires_python)
    except InvalidSpecifier:
        return ""
    return release.requires_python if release.requires_python and python and \
        python not in spec else ""


def pick(release: ReleaseSet, facts: Mapping[str, Any]) -> Pick:
    """The wheel a cell whose interpreter reported ``facts`` would install: the one whose best
    tag comes first in the interpreter's supported tags, then the highest build tag (pip).
    A Python the release's Requires-Python leaves out gets none: pip skips the release."""
    excluded = outside(release, facts)
    if excluded:
        return Pick(wheel=None, tag=None, excluded=excluded, fallback=(
            f"{tags.describe(facts)} is outside the release (Requires-Python {excluded}): "
            f"pip there skips {release.distribution} {release.version} and takes an older "
            "release, if any; not a promise of this one"))
    priority: dict[Tag, int] = {}
    for index, tag in enumerate(tags.supported(facts)):
        priority.setdefault(tag, index)
    ranked = []
    for wheel in release.wheels:
        matches = [t for t in wheel.tags if t in priority]
        if matches:
            best = min(matches, key=priority.__getitem__)
            ranked.append((priority[best], _negated(wheel.build), wheel.filename, wheel, best))
    if ranked:
        _p, _b, _n, wheel, best = min(ranked, key=lambda r: r[:3])
        return Pick(wheel=wheel, tag=best, fallback="")
    return Pick(wheel=None, tag=None, fallback=fallback(release, facts))


def _negated(build: tuple[int, str] | tuple[()]) -> tuple[int, str]:
    """Sort key: a higher build tag first (pip prefers it among equal tags)."""
    return (-build[0], build[1]) if build else (0, "")


# --- uncovered cells: what the sdist fallback needs -----------------------------------------

_BACKEND_NEEDS = {
    "maturin": "a Rust toolchain (cargo, rustc) and a C compiler",
    "setuptools_rust": "a Rust toolchain (cargo, rustc) and a C compiler",
    "scikit_build_core": "CMake and a C/C++ compiler",
    "skbuild": "CMake and a C/C++ compiler",
    "mesonpy": "Meson, Ninja and a C/C++ compiler",
    "setuptools": "a C compiler (for extension modules)",
    "cython": "Cython and a C compiler",
}
_PURE_BACKENDS = ("hatchling", "flit_core", "pdm", "poetry")


def build_needs(contents: SdistContents) -> str:
    """What a source build of this sdist needs on the user's machine, in words."""
    backend = contents.backend or ("setuptools (setup.py)" if "setup.py" in contents.files
                                   else "setuptools (no pyproject.toml)")
    root = backend.split(":")[0].split(".")[0].split()[0]
    if root in _PURE_BACKENDS:
        return f"build backend {backend}: a pure-Python build, no compiler needed"
    needs = _BACKEND_NEEDS.get(root, f"whatever the build backend {backend} needs")
    return (f"build backend {backend}: needs {needs}, plus the development headers of every "
            "native library the package links")


def fallback(release: ReleaseSet, facts: Mapping[str, Any]) -> str:
    """What pip does in a cell no wheel fits: build the sdist (and what that needs), or fail."""
    sdist = release.sdist
    where = tags.describe(facts)
    if sdist is None:
        return (f"no wheel fits {where} and the release has no sdist: `pip install "
                f"{release.distribution}=={release.version}` fails there")
    contents = read_sdist(sdist.path)
    return (f"no wheel fits {where}: pip builds the sdist {sdist.filename} from source "
            "(unproven: no cell built it); " + build_needs(contents))


def read_sdist(path: Path) -> SdistContents:
    """The file list, PKG-INFO and [build-system] of an sdist (.tar.gz or .zip)."""
    try:
        names, members = _sdist_members(path)
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        return SdistContents(files=(), pkg_info={}, backend=None, requires=(),
                             error=f"{type(exc).__name__}: {exc}")
    pkg_info: dict[str, str] = {}
    if "PKG-INFO" in members:
        headers = BytesHeaderParser().parsebytes(members["PKG-INFO"])
        for key in dict.fromkeys(headers.keys()):
            pkg_info[key] = str(headers[key])
    backend, requires, error = None, (), None
    if "pyproject.toml" in members:
        try:
            system = tomllib.loads(members["pyproject.toml"].decode()).get("build-system", {})
            backend = system.get("build-backend")
            requires = tuple(system.get("requires", ()))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            error = f"pyproject.toml unreadable: {exc}"
    return SdistContents(files=tuple(sorted(names)),
                         pkg_info=pkg_info, backend=backend, requires=requires, error=error)


_WANTED = ("PKG-INFO", "pyproject.toml")


def _strip_top(name: str) -> str:
    parts = PurePosixPath(name).parts
    return "/".join(parts[1:]) if len(parts) > 1 else ""


def _sdist_members(path: Path) -> tuple[list[str], dict[str, bytes]]:
    """Every file below the sdist's top directory, and the top-level PKG-INFO and
    pyproject.toml contents."""
    found: dict[str, bytes] = {}
    names: list[str] = []
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                rel = _strip_top(info.filename)
                if rel and not info.is_dir():
                    names.append(rel)
                    if rel in _WANTED:
                        found[rel] = zf.read(info)
    else:
        with tarfile.open(path, "r:*") as tf:
            for member in tf:
                rel = _strip_top(member.name)
                if rel and member.isfile():
                    names.append(rel)
                    if rel in _WANTED and (fh := tf.extractfile(member)) is not None:
                        found[rel] = fh.read()
    return names, found
