"""Running the audit: every wheel through the check tables (in child processes), every sdist,
the release as a whole; the findings as JSON and console lines."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, replace
from pathlib import Path

from packaging.version import Version

from harness import advice
from harness import release as release_mod
from harness import wheel as wheel_mod
from harness.audit import cpu, metadata, native, source
from harness.audit.model import (
    AuditOptions,
    AuditReport,
    Collector,
    Finding,
    WheelAudit,
    WheelCheck,
    WheelFacts,
    WheelFiles,
)
from harness.audit.sdist import audit_sdist
from harness.policy import ReleasePolicy
from harness.release import Dist, ReleaseSet

#: every wheel check, by source module, in the order they run
WHEEL_CHECKS: Mapping[str, Mapping[str, WheelCheck]] = {
    "metadata": metadata.CHECKS,
    "native": native.CHECKS,
    "cpu": cpu.CHECKS,
    "source": source.CHECKS,
}
_WHEELS_PER_JOB = 8


def audit_release(release: ReleaseSet, options: AuditOptions | None = None) -> AuditReport:
    """Audit every wheel and sdist of ``release`` (in parallel); a missing sdist is a finding."""
    options = options or AuditOptions()
    if options.source is None and release.sdist is not None:
        options = replace(options, source=advice.source_of(release.sdist.path))
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
        note = Collector("(release)", options.policy)
        note.add("no-sdist", f"the release of {release.distribution} {release.version} has no "
                 "sdist: users on platforms no wheel fits get no fallback, the install fails",
                 f"build the sdist ({advice.fix('sdist-build', 'unknown')}) and upload it too")
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
                          "levels": dict(options.policy.levels),
                          "max_size_mb": options.policy.max_size_mb,
                          "bundled_libraries": list(options.bundled_libraries),
                          "source": asdict(options.source) if options.source else None})
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
        out = Collector(dist.filename, options.policy)
        out.error("audit-crashed", f"the audit of this file failed ({problem})",
                  "report this harness bug with the file attached")
        findings += out.findings
    return findings, []


def worker(stdin: str) -> str:
    """The child's side: one JSON request in, the findings of every file as JSON out."""
    request = json.loads(stdin)
    policy = ReleasePolicy(levels=request["levels"], max_size_mb=request["max_size_mb"])
    source = advice.Source(**request["source"]) if request["source"] else None
    options = AuditOptions(policy=policy, bundled_libraries=tuple(request["bundled_libraries"]),
                           source=source)
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


def audit_wheel(dist: Dist, version: Version, options: AuditOptions) -> list[Finding]:
    """Every static check of one wheel file."""
    return _audit_wheel(dist, version, options)[0]


def _audit_wheel(dist: Dist, version: Version,
                 options: AuditOptions) -> tuple[list[Finding], WheelFacts | None]:
    """Every static check of one wheel file, and its shared objects' facts (None when they
    could not be read)."""
    out = Collector(dist.filename, options.policy)
    try:
        with zipfile.ZipFile(dist.path) as zf:
            if (unsafe := wheel_mod.unsafe_member(zf.namelist())) is not None:
                out.add("unsafe-path", wheel_mod.unsafe_member_message(unsafe),
                        "rebuild the wheel so every member is a relative path inside it")
                return out.findings, None
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
    wheel = WheelAudit(dist=dist, options=options, version=version,
                       files=WheelFiles(names=tuple(data), data=data, dist_info=dist_infos[0]))
    for table in WHEEL_CHECKS.values():
        for check in table.values():
            check(wheel, out)
    info = wheel.info
    return out.findings, WheelFacts.of(info) if info is not None else None


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
