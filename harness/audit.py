"""Static audit of every file of a release set, before any cell runs.

Each finding has a code; a policy maps the code to ``blocker``, ``warning`` or ``ignore``
(DEFAULT_POLICY below; the matrix may tighten it). A check that could not run at all is an
``error`` finding, which no policy can ignore: an unjudged release is not a good one.

Per wheel: file name vs WHEEL vs METADATA (packaging), RECORD hashes, size, ELF architecture vs
platform tag, auditwheel's platform policy / external libraries / glibc symbol versions, the
extensions' NEEDED entries vs the libraries the wheel bundles, abi3 (abi3audit, the floor vs
Requires-Python, extension file suffixes), check-wheel-contents, twine's rendering check, and
the package's own Python code loading native libraries from environment-variable paths (ast).
Per sdist: readable, same version, holds what its build backend needs; no sdist is a warning.
"""

from __future__ import annotations

import ast
import base64
import concurrent.futures
import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path, PurePosixPath
from typing import Literal

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from packaging.metadata import ExceptionGroup, InvalidMetadata, Metadata
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, parse_tag
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from harness import release as release_mod
from harness import tags
from harness import wheel as wheel_mod
from harness.errors import HarnessError
from harness.policy import DEFAULT_MAX_SIZE_MB as DEFAULT_MAX_SIZE_MB  # re-exported
from harness.policy import DEFAULT_POLICY as DEFAULT_POLICY
from harness.policy import Level as Level
from harness.policy import ReleasePolicy
from harness.release import Dist, ReleaseSet

Severity = Literal["blocker", "warning", "error"]
_WHEELS_PER_JOB = 8


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

    policy: Mapping[str, Level] = field(default_factory=lambda: dict(DEFAULT_POLICY))
    max_size_mb: float = DEFAULT_MAX_SIZE_MB
    bundled_libraries: tuple[str, ...] = ()  # e.g. ("gmp",): must be inside every binary wheel
    jobs: int = 0  # worker processes; 0: one per 8 wheels, at most one per CPU

    @classmethod
    def from_policy(cls, release_policy: ReleasePolicy,
                    bundled_libraries: tuple[str, ...] = ()) -> AuditOptions:
        """The audit a matrix's ``release`` section asks for."""
        return cls(policy=release_policy.merged(), max_size_mb=release_policy.max_size_mb,
                   bundled_libraries=bundled_libraries)


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


class _Collector:
    """Findings of one file, graded by the policy as they are added."""

    def __init__(self, file: str, policy: Mapping[str, Level]) -> None:
        self.file = file
        self.policy = policy
        self.findings: list[Finding] = []

    def add(self, code: str, message: str, fix: str) -> None:
        family = code.split("-W", 1)[0] if code.startswith("contents-") else code
        level = self.policy.get(code, self.policy.get(family, DEFAULT_POLICY.get(family,
                                                                                  "blocker")))
        if level != "ignore":
            self.findings.append(Finding(code=code, severity=level, file=self.file,
                                         message=message, fix=fix))

    def error(self, code: str, message: str, fix: str) -> None:
        """A check that could not run: always reported, whatever the policy."""
        self.findings.append(Finding(code=code, severity="error", file=self.file,
                                     message=message, fix=fix))


# --- the release -----------------------------------------------------------------------------


def audit_release(release: ReleaseSet, options: AuditOptions | None = None) -> AuditReport:
    """Audit every wheel and sdist of ``release`` (in parallel); a missing sdist is a finding."""
    options = options or AuditOptions()
    started = time.monotonic()
    # A worker costs ~0.5 s of CPU to start, a wheel ~0.3 s to audit: one worker per 8 wheels
    jobs = options.jobs or min(os.cpu_count() or 1, -(-len(release.wheels) // _WHEELS_PER_JOB))
    jobs = max(1, min(jobs, len(release.wheels)))
    shares = [release.wheels[i::jobs] for i in range(jobs)]  # one worker process per share
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(_audit_in_worker, share, release.version, options)
                   for share in shares]
        findings = [f for d in release.sdists for f in audit_sdist(d, release.version, options)]
        results = [future.result() for future in futures]
    findings = [f for found, _ in results for f in found] + findings
    wheels = {w.file: w for _, facts in results for w in facts}
    if not release.sdists:
        note = _Collector("(release)", options.policy)
        note.add("no-sdist", f"the release of {release.distribution} {release.version} has no "
                 "sdist: users on platforms no wheel fits get no fallback, the install fails",
                 "add the sdist (`maturin sdist`, `python -m build --sdist`) to the upload")
        findings += note.findings
    return AuditReport(findings=tuple(findings), seconds=time.monotonic() - started,
                       wheels=wheels)


def _audit_in_worker(wheels: tuple[Dist, ...], version: Version,
                     options: AuditOptions) -> tuple[list[Finding], list[WheelFacts]]:
    """audit_wheel on each of ``wheels``, in one child process (``python -m harness.audit``):
    auditwheel changes the process's working directory while it reads a wheel, which must not
    race with other audits or with the harness's own threads. A crashed worker is an error
    finding for each of its files."""
    request = json.dumps({"paths": [str(d.path) for d in wheels], "version": str(version),
                          "policy": dict(options.policy), "max_size_mb": options.max_size_mb,
                          "bundled_libraries": list(options.bundled_libraries)})
    try:
        proc = subprocess.run([sys.executable, "-m", "harness.audit"], input=request,
                              capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode == 0:
            answer = json.loads(proc.stdout)
            return ([Finding(**f) for f in answer["findings"]],
                    [WheelFacts(**{**w, "extensions": tuple(w["extensions"]),
                                   "bundled": tuple(w["bundled"]),
                                   "needed": {k: tuple(v) for k, v in w["needed"].items()}})
                     for w in answer["wheels"]])
        problem = f"exit {proc.returncode}: {' '.join(proc.stderr.split())[-400:]}"
    except (OSError, subprocess.SubprocessError, ValueError, TypeError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    findings: list[Finding] = []
    for dist in wheels:
        out = _Collector(dist.filename, options.policy)
        out.error("audit-crashed", f"the audit of this file failed ({problem})",
                  "report this harness bug with the file attached")
        findings += out.findings
    return findings, []


def _worker(stdin: str) -> str:
    """The child's side: one JSON request in, the findings of every file as JSON out."""
    request = json.loads(stdin)
    options = AuditOptions(policy=request["policy"], max_size_mb=request["max_size_mb"],
                           bundled_libraries=tuple(request["bundled_libraries"]))
    findings: list[Finding] = []
    wheels: list[dict[str, object]] = []
    for path in request["paths"]:
        dist = release_mod.classify(Path(path))
        if not isinstance(dist, Dist):
            raise SystemExit(f"{path}: {dist.reason}")
        found, facts = _audit_wheel(dist, Version(request["version"]), options)
        findings += found
        if facts is not None:
            wheels.append(dict(vars(facts)))
    return json.dumps({"findings": [dict(vars(f)) for f in findings], "wheels": wheels})


# --- wheels ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _WheelFiles:
    names: tuple[str, ...]
    data: Mapping[str, bytes]
    dist_info: str


def audit_wheel(dist: Dist, version: Version, options: AuditOptions) -> list[Finding]:
    """Every static check of one wheel file."""
    return _audit_wheel(dist, version, options)[0]


def _audit_wheel(dist: Dist, version: Version,
                 options: AuditOptions) -> tuple[list[Finding], WheelFacts | None]:
    """Every static check of one wheel file, and its shared objects' facts (None when they
    could not be read)."""
    out = _Collector(dist.filename, options.policy)
    try:
        with zipfile.ZipFile(dist.path) as zf:
            data = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    except (OSError, zipfile.BadZipFile) as exc:
        out.add("metadata-missing", f"not a readable zip archive: {exc}", "rebuild the wheel")
        return out.findings, None
    dist_infos = sorted({n.split("/", 1)[0] for n in data if n.split("/", 1)[0].endswith(
        ".dist-info")})
    if len(dist_infos) != 1:
        out.add("metadata-missing", f"expected one .dist-info directory, found {dist_infos}",
                "rebuild the wheel with a standard build backend")
        return out.findings, None
    dist_info = dist_infos[0]
    files = _WheelFiles(names=tuple(data), data=data, dist_info=dist_info)
    requires_python = _check_metadata(dist, files, out)
    _check_record(files, out)
    _check_size(dist, options, out)
    info = _check_native(dist, files, options, out)
    _check_abi3(dist, files, requires_python, out)
    _check_env_native_paths(dist, files, out)
    _check_contents(dist, out)
    _check_twine(dist, out)
    return out.findings, WheelFacts.of(info) if info is not None else None


def _check_metadata(dist: Dist, files: _WheelFiles, out: _Collector) -> str:
    """METADATA and WHEEL against the file name; returns METADATA's Requires-Python."""
    meta_raw = files.data.get(f"{files.dist_info}/METADATA")
    wheel_raw = files.data.get(f"{files.dist_info}/WHEEL")
    if meta_raw is None or wheel_raw is None:
        out.add("metadata-missing", f"{files.dist_info} lacks METADATA or WHEEL",
                "rebuild the wheel with a standard build backend")
        return ""
    try:
        meta = Metadata.from_email(meta_raw, validate=True)
    except (InvalidMetadata, ExceptionGroup) as exc:  # packaging's, also on 3.10
        details = "; ".join(str(e) for e in getattr(exc, "exceptions", [exc]))
        out.add("metadata-invalid", f"METADATA does not validate: {details}",
                "fix the project metadata (pyproject.toml [project]) and rebuild")
        meta = Metadata.from_email(meta_raw, validate=False)
    if canonicalize_name(str(meta.name)) != dist.name:
        out.add("metadata-name-mismatch",
                f"METADATA Name {meta.name!r} is not the file name's {dist.name!r}",
                "rebuild; never rename wheel files by hand")
    if meta.version != dist.version:
        out.add("metadata-version-mismatch",
                f"METADATA Version {meta.version} but the file name says {dist.version}",
                "rebuild so the version comes from one place (e.g. Cargo.toml or "
                "pyproject.toml); never rename or edit a built wheel")
    dist_info_version = files.dist_info.removesuffix(".dist-info").rpartition("-")[2]
    if not _same_version(dist_info_version, dist.version):
        out.add("metadata-version-mismatch",
                f"the {files.dist_info} directory says version {dist_info_version}, the file "
                f"name {dist.version}", "rebuild the wheel")
    headers = BytesHeaderParser().parsebytes(wheel_raw)
    declared = {t for value in headers.get_all("Tag", []) for t in parse_tag(value.strip())}
    if declared != set(dist.tags):
        extra, missing = _tag_list(declared - dist.tags), _tag_list(dist.tags - declared)
        out.add("wheel-tags-mismatch",
                f"WHEEL's Tag lines and the file name disagree (only in WHEEL: {extra}; only in "
                f"the name: {missing})", "re-tag with `wheel tags` (it rewrites both) or rebuild")
    return str(meta.requires_python or "")


def _same_version(text: str, version: Version) -> bool:
    try:
        return Version(text) == version
    except InvalidVersion:
        return False


def _tag_list(tags: set[Tag] | frozenset[Tag]) -> str:
    return ", ".join(sorted(str(t) for t in tags)) or "none"


def _check_record(files: _WheelFiles, out: _Collector) -> None:
    record_name = f"{files.dist_info}/RECORD"
    raw = files.data.get(record_name)
    if raw is None:
        out.add("record-missing", "no RECORD file", "rebuild the wheel")
        return
    listed: set[str] = set()
    for row in csv.reader(io.StringIO(raw.decode("utf-8", "replace"))):
        if not row:
            continue
        path, digest = row[0], row[1] if len(row) > 1 else ""
        listed.add(path)
        if path == record_name or path.endswith(".dist-info/RECORD.jws"):
            continue
        if path not in files.data:
            out.add("record-hash-mismatch", f"RECORD lists {path}, which is not in the wheel",
                    "rebuild the wheel; do not edit it after building")
            continue
        algorithm, _, expected = digest.partition("=")
        if algorithm not in hashlib.algorithms_guaranteed or not expected:
            out.add("record-hash-mismatch", f"RECORD has no usable hash for {path}",
                    "rebuild the wheel")
            continue
        actual = base64.urlsafe_b64encode(hashlib.new(algorithm, files.data[path]).digest())
        if actual.rstrip(b"=").decode() != expected:
            out.add("record-hash-mismatch", f"{path} does not match its RECORD hash: the file "
                    "was changed after the wheel was built; pip refuses to install it",
                    "rebuild the wheel instead of patching it (or use `wheel pack`, which "
                    "rewrites RECORD)")
    unlisted = sorted(n for n in files.names if n not in listed and not n.endswith(
        (".dist-info/RECORD.jws", ".dist-info/RECORD.p7s")))
    if unlisted:
        out.add("record-unlisted-file", f"not listed in RECORD: {', '.join(unlisted[:5])}",
                "rebuild the wheel; do not add files after building")


def _check_size(dist: Dist, options: AuditOptions, out: _Collector) -> None:
    size_mb = dist.path.stat().st_size / 1e6
    if size_mb > options.max_size_mb:
        out.add("size", f"{size_mb:.1f} MB, above the {options.max_size_mb:g} MB threshold "
                "(PyPI's default file limit is 100 MB)",
                "look for debug symbols (strip them: maturin's `strip = true`), test data or "
                "duplicated libraries in the wheel")


# --- native code -----------------------------------------------------------------------------

_ARCH_OF_MACHINE = {"EM_X86_64": "x86_64", "EM_386": "i686", "EM_AARCH64": "aarch64",
                    "EM_ARM": "armv7l", "EM_PPC64": "ppc64le", "EM_S390": "s390x",
                    "EM_RISCV": "riscv64", "EM_LOONGARCH": "loongarch64"}


def _elf_machine(data: bytes) -> str | None:
    try:
        return str(ELFFile(io.BytesIO(data))["e_machine"])
    except (ELFError, KeyError, ValueError):
        return None


def _tag_arches(dist: Dist) -> set[str]:
    arches = set()
    for tag in dist.tags:
        match = re.match(r"^(?:many|musl)linux_\d+_\d+_(.+)$|^(?:manylinux\d+|linux)_(.+)$",
                         tag.platform)
        if match:
            arches.add(match[1] or match[2])
    return arches


def _library_stem(name: str) -> str:
    """'libgmp-1a2b3c4d.so.10' and 'libgmp.so.10' -> 'libgmp'."""
    base = PurePosixPath(name).name.split(".so", 1)[0]
    return re.sub(r"-[0-9a-f]{8}$", "", base)


def _check_native(dist: Dist, files: _WheelFiles, options: AuditOptions,
                  out: _Collector) -> wheel_mod.WheelInfo | None:
    """ELF architecture, auditwheel's verdict, NEEDED vs bundled libraries; the wheel's facts
    (None when its shared objects could not be read)."""
    elf_names = [n for n in files.names if n.endswith(".so") or ".so." in PurePosixPath(n).name]
    if not elf_names:
        return _inspect_quietly(dist)
    arches = _tag_arches(dist)
    for name in elf_names:
        machine = _elf_machine(files.data[name])
        arch = _ARCH_OF_MACHINE.get(machine or "", machine)
        if arch and arches and arch not in arches:
            out.add("arch-mismatch", f"{name} is {arch} code but the tags say "
                    f"{', '.join(sorted(arches))}: no machine the tag admits can load it",
                    "build on (or cross-compile for) the tagged architecture, or fix the tag")
    try:
        info = wheel_mod.inspect(dist.path)
    except HarnessError as exc:
        out.error("elf-unreadable", f"could not read the wheel's shared objects: {exc}",
                  "rebuild the wheel")
        return None
    _check_auditwheel(dist, info, out)
    _check_needed(info, options, out)
    return info


def _inspect_quietly(dist: Dist) -> wheel_mod.WheelInfo | None:
    """A wheel without shared objects: its facts, or None (another check reports why)."""
    try:
        return wheel_mod.inspect(dist.path)
    except HarnessError:
        return None


def _check_auditwheel(dist: Dist, info: wheel_mod.WheelInfo, out: _Collector) -> None:
    musl_arches = sorted({m[1] for t in dist.tags
                          if (m := re.match(r"^musllinux_\d+_\d+_(.+)$", t.platform))})
    if musl_arches:
        _check_musllinux(dist, musl_arches[0], out)
    if info.audit is None:
        return
    if info.audit.error:
        out.error("auditwheel-failed", f"auditwheel could not analyse the wheel: "
                  f"{info.audit.error}", "check the wheel's architecture tag and ELF files")
        return
    if info.audit.external:
        out.add("external-library", "needs libraries that are neither bundled nor allowed by "
                f"its manylinux tag: {', '.join(info.audit.external)}",
                "bundle them: `auditwheel repair` (maturin does it unless told "
                "`--auditwheel skip`)")
    claimed = max((g for t in dist.tags if (g := tags.promised_glibc(t.platform))),
                  default=None)
    meets = tags.promised_glibc(info.audit.policy)
    if claimed and (meets is None or meets > claimed) and not (
            meets is None and info.audit.external):  # the external libraries say why
        why = f"its newest glibc symbol is GLIBC_{info.audit.glibc}" if info.audit.glibc else ""
        out.add("platform-tag-unmet", f"tagged for glibc {claimed[0]}.{claimed[1]} but "
                f"auditwheel finds it only meets {info.audit.policy}"
                + (f" ({why})" if why else ""),
                "build against the promised glibc (manylinux container or `maturin --zig "
                "--compatibility ...`) and bundle external libraries, or tag what it meets")


def _check_musllinux(dist: Dist, arch: str, out: _Collector) -> None:
    """auditwheel's musl analysis: a musllinux tag on glibc-linked objects is a lie."""
    from auditwheel.architecture import Architecture
    from auditwheel.error import NonPlatformWheelError
    from auditwheel.libc import Libc
    from auditwheel.wheel_abi import analyze_wheel_abi

    try:
        info = analyze_wheel_abi(Libc.MUSL, Architecture(arch), dist.path, frozenset(),
                                 disable_isa_ext_check=True, allow_graft=False)
    except NonPlatformWheelError:
        out.add("libc-mismatch", "tagged musllinux but no shared object in it is linked "
                "against musl (auditwheel ignores them all): a musl system cannot load them",
                "build inside a musllinux container (or `maturin --zig --compatibility "
                "musllinux_1_2`) instead of re-tagging a glibc build")
        return
    except Exception as exc:
        out.error("auditwheel-failed", f"auditwheel (musl) could not analyse the wheel: "
                  f"{type(exc).__name__}: {exc}", "check the wheel's tags and ELF files")
        return
    external = sorted({lib for refs in info.external_refs.values() for lib in refs.libs})
    if info.overall_policy.name.startswith("linux") and external:
        out.add("external-library", "needs libraries that are neither bundled nor allowed by "
                f"its musllinux tag: {', '.join(external)}", "bundle them: `auditwheel repair`")


def _check_needed(info: wheel_mod.WheelInfo, options: AuditOptions, out: _Collector) -> None:
    """A bundled copy the extension does not use, and libraries the matrix says must be
    bundled but are taken from the system."""
    bundled = {PurePosixPath(f).name: f for f in info.files if ".libs/" in f or ".so" in f}
    bundled_stems = {_library_stem(n): n for n in bundled if re.search(r"\.libs/", bundled[n])}
    needed_anywhere = {n for e in info.elf for n in e.needed}
    for elf in info.elf:
        for needed in elf.needed:
            if needed in bundled:
                continue
            stem = _library_stem(needed)
            if stem in bundled_stems:
                copy = bundled_stems[stem]
                out.add("bundled-but-system-needed",
                        f"{elf.path} NEEDs the system's {needed} although the wheel carries "
                        f"{bundled[copy]}: on a machine without {needed} the import fails, "
                        "and elsewhere the system's copy is used, not the bundled one",
                        f"repair the wheel again so NEEDED names the bundled copy "
                        f"(`auditwheel repair`), or `patchelf --replace-needed {needed} "
                        f"{copy} {PurePosixPath(elf.path).name}` before packing")
            elif stem.removeprefix("lib") in options.bundled_libraries:
                out.add("unbundled-library",
                        f"{elf.path} NEEDs {needed} from the system; the matrix says "
                        f"{stem} must be bundled", "build with repair (`auditwheel repair`, "
                        "maturin without `--auditwheel skip`)")
    for name, path in bundled.items():  # ELF only: a dylib's or DLL's users are not read here
        if ".libs/" in path and ".so" in name and name not in needed_anywhere:
            out.add("bundled-unused", f"{path} is bundled but no shared object in the wheel "
                    "NEEDs it", "drop it, or fix the extension's NEEDED to point at it")


# --- abi3 ------------------------------------------------------------------------------------


def _check_abi3(dist: Dist, files: _WheelFiles, requires_python: str, out: _Collector) -> None:
    floors = sorted({t.interpreter for t in dist.tags if t.abi == "abi3"})
    if not floors:
        return
    for name in files.names:
        suffix = re.search(r"\.(cpython-\d+[^.]*)\.so$", name)
        if suffix:
            out.add("abi3-extension-suffix", f"tagged abi3 but {name} carries the "
                    f"version-specific suffix {suffix[1]}: only that CPython imports it",
                    "build with the limited API (pyo3 `abi3-py3X` feature) so the file is "
                    "`*.abi3.so`, or tag the wheel for that one Python")
    floor = min(floors, key=lambda i: int(i[3:]) if i[3:].isdigit() else 0)
    version = f"{floor[2]}.{floor[3:]}" if floor.startswith("cp") else ""
    try:
        spec = SpecifierSet(requires_python) if requires_python else None
    except InvalidSpecifier:
        spec = None
    if version and spec is not None:
        lower = [f"3.{m}" for m in range(0, int(floor[3:])) if f"3.{m}" in spec]
        if lower:
            out.add("abi3-floor-above-requires-python",
                    f"tagged {floor}-abi3 but Requires-Python is {requires_python}: Python "
                    f"{', '.join(lower)} get no wheel from it (the abi3 floor is the build "
                    "interpreter's version, not the package's minimum)",
                    f"build with the floor set explicitly (pyo3 feature `abi3-py3"
                    f"{lower[0].split('.')[1]}`) or raise Requires-Python")
    _run_abi3audit(dist, out)


def _tool(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() else shutil.which(name)


def _run_abi3audit(dist: Dist, out: _Collector) -> None:
    exe = _tool("abi3audit")
    if exe is None:
        out.error("abi3audit-failed", "abi3audit is not installed", "pip install abi3audit")
        return
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        proc = subprocess.run([exe, "--report", "--output", str(report), str(dist.path)],
                              capture_output=True, text=True, check=False, timeout=300,
                              env={**os.environ, "NO_COLOR": "1", "TERM": "dumb"})
        text = report.read_text() if report.exists() else ""
    try:
        specs = json.loads(text)["specs"]
        results = [r for spec in specs.values() for r in spec.get("wheel", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        tail = " ".join((proc.stderr or proc.stdout).split())[-300:]
        out.error("abi3audit-failed", f"abi3audit gave no report (exit {proc.returncode}): "
                  f"{tail}", "run `abi3audit -v WHEEL` by hand")
        return
    for entry in results:
        result = entry.get("result", {})
        if result.get("non_abi3_symbols"):
            symbols = sorted(result["non_abi3_symbols"])
            out.add("abi3-violation", f"{entry.get('name')} uses CPython symbols outside the "
                    f"stable ABI: {', '.join(symbols[:6])}{' ...' if len(symbols) > 6 else ''}",
                    "build with the limited API (pyo3 `abi3-py3X` feature) or tag the wheel "
                    "for one Python (cp3X-cp3X)")
        if not result.get("is_abi3_baseline_compatible", True):
            out.add("abi3-version-mismatch", f"{entry.get('name')} needs the stable ABI of "
                    f"Python {result.get('computed')} but is tagged for {result.get('baseline')}",
                    f"raise the abi3 tag to cp{str(result.get('computed')).replace('.', '')} "
                    "or avoid the newer API")


# --- Python code reaching for native libraries through the environment ------------------------

_LOADERS = {"add_dll_directory", "CDLL", "WinDLL", "OleDLL", "PyDLL", "LoadLibrary", "dlopen"}
_WINDOWS_WORDS = ("win32", "nt", "windows", "cygwin", "win")


def _env_var(node: ast.AST) -> str | None:
    """The variable name of ``os.environ[X]``, ``os.environ.get(X)``, ``os.getenv(X)``."""
    if isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("environ"):
        return ast.unparse(node.slice).strip("'\"")
    if isinstance(node, ast.Call) and node.args:
        func = ast.unparse(node.func)
        if func.endswith(("environ.get", "getenv", "environ.setdefault")):
            return ast.unparse(node.args[0]).strip("'\"")
    return None


def _is_windows_guard(test: ast.expr) -> bool:
    text = ast.unparse(test)
    if not any(word in text for word in ("sys.platform", "os.name", "platform.system")):
        return False
    constants = [n.value for n in ast.walk(test) if isinstance(n, ast.Constant)
                 and isinstance(n.value, str)]
    return any(c.lower() in _WINDOWS_WORDS or c.lower().startswith("win") for c in constants)


@dataclass(frozen=True, kw_only=True)
class EnvLoad:
    """A call loading native code (or adding a DLL directory) from an environment path."""

    line: int
    loader: str  # e.g. "os.add_dll_directory", "ctypes.CDLL"
    variable: str  # the environment variable the path comes from
    windows_only: bool  # inside an `if sys.platform == "win32"`-like block


def env_native_loads(source: str | bytes, filename: str = "<string>") -> list[EnvLoad]:
    """Native loads from environment-variable paths in one Python source (SyntaxError if it
    does not parse). Follows names assigned from the environment within the module."""
    visitor = _EnvLoads()
    visitor.visit(ast.parse(source, filename=filename))
    return visitor.found


class _EnvLoads(ast.NodeVisitor):
    """Calls that load native code from a path taken from an environment variable."""

    def __init__(self) -> None:
        self.tainted: dict[str, str] = {}  # local name -> environment variable
        self.guarded = 0  # depth of `if <Windows>` blocks around the current node
        self.found: list[EnvLoad] = []

    def _source(self, node: ast.AST) -> str | None:
        for sub in ast.walk(node):
            if (var := _env_var(sub)) is not None:
                return var
            if isinstance(sub, ast.Name) and sub.id in self.tainted:
                return self.tainted[sub.id]
        return None

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        windows = _is_windows_guard(node.test)
        self.guarded += windows
        for stmt in node.body:
            self.visit(stmt)
        self.guarded -= windows
        for stmt in node.orelse:
            self.visit(stmt)

    def visit_Assign(self, node: ast.Assign) -> None:
        self._assign(node.targets, node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._assign([node.target], node.value)

    def _assign(self, targets: list[ast.expr], value: ast.expr) -> None:
        self.visit(value)
        if (var := self._source(value)) is not None:
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        self.tainted[name.id] = var

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in _LOADERS:
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if (var := self._source(arg)) is not None:
                    self.found.append(EnvLoad(line=node.lineno, loader=ast.unparse(func),
                                              variable=var, windows_only=self.guarded > 0))
                    break
        self.generic_visit(node)


def _check_env_native_paths(dist: Dist, files: _WheelFiles, out: _Collector) -> None:
    windows_wheel = any(t.platform.startswith("win") for t in dist.tags)
    for name in files.names:
        if not name.endswith(".py") or ".dist-info/" in name:
            continue
        try:
            found = env_native_loads(files.data[name], name)
        except (SyntaxError, ValueError):
            continue
        for load in found:
            var = load.variable
            where = f"{name}:{load.line} calls {load.loader}() on a path from ${var}"
            fix = (f"ship the library inside the wheel and load it relative to the package "
                   f"(auditwheel/delvewheel repair) instead of reading ${var}")
            if load.windows_only and not windows_wheel:
                out.add("env-native-library-path-guarded", f"{where}, only on Windows: not "
                        "reachable from this wheel's platforms, but the Windows wheel will "
                        "depend on the user's environment", fix)
            else:
                out.add("env-native-library-path", f"{where}: the package loads native code "
                        f"from wherever the user's environment points (and fails or loads a "
                        f"foreign copy where ${var} is unset or different)", fix)


# --- third-party content and rendering checks ------------------------------------------------


_LIBS_DIR_CHECKS = {"W009": 1, "W010": 0}  # check -> entries left that are still fine


def _check_contents(dist: Dist, out: _Collector) -> None:
    try:
        from check_wheel_contents.checker import WheelChecker
        from check_wheel_contents.contents import WheelContents

        checker = WheelChecker()
        checker.configure_options()
        failures = checker.check_contents(WheelContents.from_wheel(dist.path))
    except Exception as exc:  # the tool's own failure, reported, never skipped
        out.error("contents-failed", f"check-wheel-contents could not run: "
                  f"{type(exc).__name__}: {exc}", "run `check-wheel-contents WHEEL` by hand")
        return
    for failure in failures:
        # auditwheel's standard `<package>.libs/` directory is not a layout mistake
        kept = [a for a in failure.args if not a.rstrip("/").endswith(".libs")]
        if failure.check.name in _LIBS_DIR_CHECKS and len(kept) <= _LIBS_DIR_CHECKS[
                failure.check.name]:
            continue
        paths = ", ".join(failure.args[:5])
        out.add(f"contents-{failure.check.name}", f"check-wheel-contents {failure.check.name}: "
                f"{failure.check.value}" + (f": {paths}" if paths else ""),
                "see https://github.com/jwodder/check-wheel-contents#checks")


def _check_twine(dist: Dist, out: _Collector) -> None:
    try:
        from twine.commands.check import _check_file, _WarningStream
        from twine.exceptions import TwineException
    except ImportError as exc:
        out.error("twine-failed", f"twine check unavailable: {exc}", "pip install twine")
        return
    stream = _WarningStream()
    try:
        warnings, ok = _check_file(str(dist.path), stream)
    except TwineException as exc:
        out.add("twine-invalid", f"twine refuses the file: {exc}",
                "fix the metadata and rebuild")
        return
    except Exception as exc:
        out.error("twine-failed", f"twine check could not run: {type(exc).__name__}: {exc}",
                  "run `twine check FILE` by hand")
        return
    if not ok:
        out.add("twine-render", "the long description has markup errors; the index will not "
                f"render it (PyPI rejects the upload): {' '.join(str(stream).split())[:300]}",
                "fix the README markup; check with `twine check`")
    for warning in warnings:
        out.add("twine-warning", f"twine check: {warning}",
                "set readme / long_description_content_type in the project metadata")


# --- sdists ----------------------------------------------------------------------------------

_BACKEND_FILES = {"maturin": ("Cargo.toml",), "setuptools_rust": ("Cargo.toml",),
                  "scikit_build_core": ("CMakeLists.txt",), "mesonpy": ("meson.build",)}


def audit_sdist(dist: Dist, version: Version, options: AuditOptions) -> list[Finding]:
    """An sdist: readable, same version as the release, holds what a source build needs."""
    out = _Collector(dist.filename, options.policy)
    contents = release_mod.read_sdist(dist.path)
    if contents.error and not contents.files:
        out.add("sdist-unreadable", f"cannot read the sdist: {contents.error}",
                "rebuild it (`maturin sdist`, `python -m build --sdist`)")
        return out.findings
    if contents.error:
        out.add("sdist-incomplete", contents.error, "fix pyproject.toml and rebuild")
    pkg_version = contents.pkg_info.get("Version")
    if pkg_version is None:
        out.add("sdist-incomplete", "no PKG-INFO at the top of the sdist",
                "build the sdist with a PEP 517 backend (`python -m build --sdist`)")
    elif not _same_version(pkg_version, version):
        out.add("sdist-version-mismatch", f"PKG-INFO says version {pkg_version}, the release "
                f"is {version}", "rebuild the sdist from the same commit as the wheels")
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
                "include them (maturin: `include` in [tool.maturin]; setuptools: MANIFEST.in)")
    return out.findings


def findings_json(report: AuditReport) -> dict[str, object]:
    """The audit as plain JSON data for the report."""
    return {"seconds": round(report.seconds, 3), "go": report.go,
            "findings": [dict(vars(f)) for f in report.findings],
            "wheels": {name: {**vars(w), "needed": dict(w.needed)}
                       for name, w in report.wheels.items()}}


def finding_lines(report: AuditReport) -> Iterator[str]:
    """One line per finding, blockers first, for the console."""
    order = {"error": 0, "blocker": 1, "warning": 2}
    for f in sorted(report.findings, key=lambda f: (order[f.severity], f.file, f.code)):
        yield f"{f.severity.upper():8} {f.file}: [{f.code}] {f.message} -> {f.fix}"


if __name__ == "__main__":
    sys.stdout.write(_worker(sys.stdin.read()))
