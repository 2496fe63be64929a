"""The audit's data: findings, options, per-wheel facts, the report, and what a check sees.

A wheel check is ``check(wheel: WheelAudit, out: Collector) -> None``; an sdist check is
``check(sdist: SdistAudit, out: Collector) -> None``. Each source module keeps its checks in
one ``CHECKS`` table; ``harness.audit.run`` runs the tables.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from functools import cached_property
from pathlib import Path, PurePosixPath

from packaging.metadata import Metadata
from packaging.version import InvalidVersion, Version

from harness import advice
from harness import release as release_mod
from harness import wheel as wheel_mod
from harness.errors import HarnessError
from harness.policy import ReleasePolicy, Severity
from harness.release import Dist


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One problem found in one file, with what to do about it."""

    code: str
    severity: Severity
    file: str
    message: str
    fix: str


@dataclass(frozen=True, kw_only=True)
class AuditOptions:
    """How strict the audit is and what it knows about the package."""

    policy: ReleasePolicy = field(default_factory=ReleasePolicy)  # levels, size threshold
    bundled_libraries: tuple[str, ...] = ()  # e.g. ("gmp",): must be inside every binary wheel
    jobs: int = 0  # worker processes; 0: one per 8 wheels, at most one per CPU
    source: advice.Source | None = None  # what the release's sdist says about the build

    @classmethod
    def from_policy(cls, release_policy: ReleasePolicy,
                    bundled_libraries: tuple[str, ...] = ()) -> AuditOptions:
        """The audit a matrix's ``release`` section asks for."""
        return cls(policy=release_policy, bundled_libraries=bundled_libraries)


@dataclass(frozen=True, kw_only=True)
class WheelFacts:
    """What the audit read from one wheel's shared objects: for the gate to set against what
    the cells saw mapped."""

    file: str
    sha256: str
    needed: Mapping[str, tuple[str, ...]]  # shared object in the wheel -> its NEEDED entries
    extensions: tuple[str, ...]  # those of them that are extension modules (export PyInit_)
    bundled: tuple[str, ...]  # shared objects carried as libraries (e.g. <pkg>.libs/...)

    @classmethod
    def of(cls, info: wheel_mod.WheelInfo) -> WheelFacts:
        """The facts of an inspected wheel."""
        extensions = tuple(e.path for e in info.elf if e.pyinit)
        return cls(file=info.filename, sha256=info.sha256,
                   needed={e.path: e.needed for e in info.elf}, extensions=extensions,
                   bundled=tuple(e.path for e in info.elf if e.path not in extensions))


@dataclass(frozen=True, kw_only=True)
class AuditReport:
    """Every finding of the audit of one release set, and how long it took."""

    findings: tuple[Finding, ...]
    seconds: float
    wheels: Mapping[str, WheelFacts] = field(default_factory=dict)  # by file name

    def of(self, severity: Severity) -> tuple[Finding, ...]:
        """The findings of one severity."""
        return tuple(f for f in self.findings if f.severity == severity)

    @property
    def go(self) -> bool:
        """No blocker and no check that could not run."""
        return not self.of("blocker") and not self.of("error")


class Collector:
    """Findings of one file, graded by the policy as they are added."""

    def __init__(self, file: str, policy: ReleasePolicy) -> None:
        self.file = file
        self.policy = policy
        self.findings: list[Finding] = []

    def add(self, code: str, message: str, fix: str) -> None:
        """A finding, graded by the policy (dropped when the policy ignores its code)."""
        severity = self.policy.severity(code)
        if severity is not None:
            self.findings.append(Finding(code=code, severity=severity, file=self.file,
                                         message=message, fix=fix))

    def error(self, code: str, message: str, fix: str) -> None:
        """A check that could not run: always reported, whatever the policy."""
        self.findings.append(Finding(code=code, severity="error", file=self.file,
                                     message=message, fix=fix))


@dataclass(frozen=True, kw_only=True)
class WheelFiles:
    """A wheel's members (no directory entries), read once."""

    names: tuple[str, ...]
    data: Mapping[str, bytes]
    dist_info: str


@dataclass(frozen=True, kw_only=True)
class WheelAudit:
    """What a wheel check looks at: the file, its members, the options; facts read lazily
    and shared between checks."""

    dist: Dist
    files: WheelFiles
    options: AuditOptions
    version: Version  # the release's

    @cached_property
    def requires_python(self) -> str:
        """METADATA's Requires-Python ("" when METADATA or WHEEL is missing)."""
        meta_raw = self.files.data.get(f"{self.files.dist_info}/METADATA")
        if meta_raw is None or f"{self.files.dist_info}/WHEEL" not in self.files.data:
            return ""
        return str(Metadata.from_email(meta_raw, validate=False).requires_python or "")

    @cached_property
    def backend(self) -> advice.Backend:
        """The build backend that wrote the wheel (WHEEL's Generator, else the sdist's)."""
        raw = self.files.data.get(f"{self.files.dist_info}/WHEEL", b"")
        generator = str(BytesHeaderParser().parsebytes(raw).get("Generator", ""))
        return advice.backend_of(generator, self.options.source)

    def fix(self, topic: str, **values: object) -> str:
        """The fix ``topic`` in the terms of this wheel's build backend."""
        return advice.fix(topic, self.backend, **values)

    @cached_property
    def elf_names(self) -> tuple[str, ...]:
        """Members named like shared objects (``*.so``, ``*.so.N``)."""
        return tuple(n for n in self.files.names
                     if n.endswith(".so") or ".so." in PurePosixPath(n).name)

    @cached_property
    def inspected(self) -> wheel_mod.WheelInfo | HarnessError:
        """harness.wheel's reading of the file (ELF facts, auditwheel), or why it failed."""
        try:
            return wheel_mod.inspect(self.dist.path)
        except HarnessError as exc:
            return exc

    @property
    def info(self) -> wheel_mod.WheelInfo | None:
        """The reading, None when it failed."""
        return self.inspected if isinstance(self.inspected, wheel_mod.WheelInfo) else None


@dataclass(frozen=True, kw_only=True)
class SdistAudit:
    """What an sdist check looks at: the file, its read contents, the release's version."""

    dist: Dist
    contents: release_mod.SdistContents
    version: Version
    options: AuditOptions


WheelCheck = Callable[[WheelAudit, Collector], None]
SdistCheck = Callable[[SdistAudit, Collector], None]


def same_version(text: str, version: Version) -> bool:
    """Whether ``text`` parses as ``version``."""
    try:
        return Version(text) == version
    except InvalidVersion:
        return False


def tool(name: str) -> str | None:
    """A console script beside this interpreter, else on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() else shutil.which(name)
