"""sdist checks: readable, the release's version, holds what its build backend needs."""

from __future__ import annotations

from packaging.version import Version

from harness import advice
from harness import release as release_mod
from harness.audit.model import (
    AuditOptions,
    Collector,
    Finding,
    SdistAudit,
    SdistCheck,
    same_version,
)
from harness.release import Dist


def _backend(contents: release_mod.SdistContents) -> advice.Backend:
    return advice.backend_of("", advice.Source(build_backend=contents.backend,
                                               rust="Cargo.toml" in contents.files))


_BACKEND_FILES = {"maturin": ("Cargo.toml",), "setuptools_rust": ("Cargo.toml",),
                  "scikit_build_core": ("CMakeLists.txt",), "mesonpy": ("meson.build",)}


def audit_sdist(dist: Dist, version: Version, options: AuditOptions) -> list[Finding]:
    """An sdist: readable, same version as the release, holds what a source build needs."""
    out = Collector(dist.filename, options.policy)
    contents = release_mod.read_sdist(dist.path)
    if contents.error and not contents.files:
        out.add("sdist-unreadable", f"cannot read the sdist: {contents.error}",
                f"rebuild it ({advice.fix('sdist-build', _backend(contents))})")
        return out.findings
    sdist = SdistAudit(dist=dist, contents=contents, version=version, options=options)
    for check in CHECKS.values():
        check(sdist, out)
    return out.findings


def check_readable(sdist: SdistAudit, out: Collector) -> None:
    """What reading the sdist's build configuration complained about."""
    if sdist.contents.error:
        out.add("sdist-incomplete", sdist.contents.error, "fix pyproject.toml and rebuild")


def check_version(sdist: SdistAudit, out: Collector) -> None:
    """PKG-INFO's version is the release's."""
    pkg_version = sdist.contents.pkg_info.get("Version")
    if pkg_version is None:
        out.add("sdist-incomplete", "no PKG-INFO at the top of the sdist",
                "build the sdist with a PEP 517 backend (`python -m build --sdist`)")
    elif not same_version(pkg_version, sdist.version):
        out.add("sdist-version-mismatch", f"PKG-INFO says version {pkg_version}, the release "
                f"is {sdist.version}", "rebuild the sdist from the same commit as the wheels")


def check_backend_files(sdist: SdistAudit, out: Collector) -> None:
    """A build configuration pip can use, and the files its backend needs."""
    contents = sdist.contents
    if contents.backend is None and "setup.py" not in contents.files:
        out.add("sdist-incomplete", "neither pyproject.toml nor setup.py: pip cannot build it",
                "build the sdist with `python -m build --sdist`")
    root = (contents.backend or "").split(".")[0]
    missing = [f for f in _BACKEND_FILES.get(root, ()) if f not in contents.files]
    if root in ("maturin", "setuptools_rust") and not any(
            f.endswith(".rs") for f in contents.files):
        missing.append("Rust sources (*.rs)")
    if missing:
        out.add("sdist-incomplete", f"build backend {contents.backend} needs "
                f"{', '.join(missing)}, which the sdist lacks",
                advice.fix("sdist-include", _backend(contents)))


CHECKS: dict[str, SdistCheck] = {
    "readable": check_readable,
    "version": check_version,
    "backend-files": check_backend_files,
}
