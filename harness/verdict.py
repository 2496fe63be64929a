"""Probe events -> one verdict per cell: PASS, FAIL, INVALID, ERROR or TIMEOUT."""

from __future__ import annotations

import enum
import fnmatch
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion, Version

from harness import tags
from harness.matrix import CHECKS_AFTER, CHECKS_BEFORE, Package
from harness.wheel import WheelInfo, claimed_glibc


class Verdict(enum.Enum):
    """A cell's outcome. Only PASS means the wheel was proven to work there."""

    PASS = "PASS"
    FAIL = "FAIL"        # the wheel does not work in a clean environment
    INVALID = "INVALID"  # the environment was not provably clean: nothing was proven
    TIMEOUT = "TIMEOUT"  # the cell ran out of time
    ERROR = "ERROR"      # harness or infrastructure fault


@dataclass(frozen=True, kw_only=True)
class ProbeRun:
    """What an environment hands back after running the probe."""

    events: tuple[dict[str, Any], ...] = ()
    returncode: int | None = None
    stderr: str = ""
    seconds: float = 0.0
    timed_out: bool = False
    infra_error: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """One check in one cell: pass, fail, error, skip or not run."""

    name: str
    status: str
    detail: str = ""
    seconds: float | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Diagnosis:
    """A known failure signature explained in the user's words."""

    title: str
    advice: str


@dataclass(frozen=True, kw_only=True)
class CellResult:
    """Everything the reports say about one cell."""

    cell_id: str
    kind: str
    verdict: Verdict
    reason: str
    checks: tuple[CheckResult, ...]
    facts: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    diagnosis: Diagnosis | None = None
    stderr: str = ""

    def check(self, name: str) -> CheckResult | None:
        """The named check's result, if it is part of this cell."""
        return next((c for c in self.checks if c.name == name), None)

    @property
    def failed_check(self) -> CheckResult | None:
        """The check the verdict is about: the first one that did not pass in this cell,
        else the wheel-level tags check."""
        bad = [c for c in self.checks if c.status in ("fail", "error", "timeout")]
        return next((c for c in bad if c.name != "tags"), bad[0] if bad else None)


def check_order(package: Package) -> list[str]:
    """The checks of every cell, in the order they run."""
    return [*CHECKS_BEFORE, *(c.name for c in package.checks), *CHECKS_AFTER]


def _tag_lies(wheel: WheelInfo) -> list[str]:
    """Platform tags the wheel does not live up to, per auditwheel."""
    audit = wheel.audit
    if audit is None or audit.error:
        return []
    actual = claimed_glibc(audit.policy)
    lies = []
    for platform in sorted({t.platform for t in wheel.tags}):
        promised = claimed_glibc(platform)
        if promised is None:
            continue
        if actual is None:
            lies.append(f"tagged {platform} but auditwheel finds only {audit.policy}: it needs "
                        f"{', '.join(audit.external) or 'libraries'} outside the manylinux "
                        "base system, not bundled")
        elif actual > promised:
            lies.append(f"tagged {platform} but it needs glibc {audit.glibc} "
                        f"(GLIBC_{audit.glibc} symbols)")
    return lies


def _tags_check(wheel: WheelInfo, package: Package) -> CheckResult:
    """The wheel carries the tags the matrix requires, and its platform tags are true."""
    have = sorted(str(t) for t in wheel.tags)
    missing = [p for p in package.wheel_tags if not fnmatch.filter(have, p)]
    problems = ([f"wheel is tagged {'.'.join(have)} but must carry " + ", ".join(missing)]
                if missing else []) + _tag_lies(wheel)
    data = {"wheel_tags": have, "required": list(package.wheel_tags), "missing": missing,
            "audit": None if wheel.audit is None else vars(wheel.audit)}
    if problems:
        return CheckResult(name="tags", status="fail", detail="; ".join(problems), data=data,
                           seconds=0.0)
    note = (f" (auditwheel could not analyse the wheel: {wheel.audit.error}; the cells judge "
            "it alone)" if wheel.audit is not None and wheel.audit.error else "")
    return CheckResult(name="tags", status="pass", detail=", ".join(have) + note, data=data,
                       seconds=0.0)


def _install_check(reported: CheckResult, wheel: WheelInfo,
                   facts: Mapping[str, Any]) -> CheckResult:
    """The cell installed our exact file, and pip's tag rule applies whatever the installer did."""
    seen = reported.data.get("wheel_sha256")
    if seen is not None and seen != wheel.sha256:
        return CheckResult(name="install", status="error", seconds=reported.seconds,
                           data=reported.data, detail=f"the cell saw a different wheel file "
                           f"(sha256 {seen[:16]}…, expected {wheel.sha256[:16]}…)")
    if not facts or tags.compatible(wheel.tags, facts):
        return reported
    refusal = (f"ERROR: {wheel.filename} is not a supported wheel on this platform "
               f"({tags.describe(facts)}).")
    if reported.status == "pass":
        refusal += " (the installer accepted it; pip would not)"
    return CheckResult(name="install", status="fail", detail=refusal, seconds=reported.seconds,
                       data={**reported.data, "tag_refused": True})


def same_version(a: object, b: object) -> bool:
    """PEP 440 equality (1.0.0-rc.1 == 1.0.0rc1); plain equality for non-versions."""
    try:
        return Version(str(a)) == Version(str(b)) if isinstance(a, str) else a == b
    except InvalidVersion:
        return a == b


def _version_check(reported: CheckResult) -> CheckResult:
    """Re-judge the probe's exact-string comparison with PEP 440 normalisation."""
    values, expected = reported.data.get("values"), reported.data.get("expected")
    if not isinstance(values, dict):
        return reported
    wrong = {k: v for k, v in values.items() if not same_version(v, expected)}
    if wrong:
        detail = f"expected {expected} (wheel) but " + ", ".join(
            f"{k} = {v!r}" for k, v in wrong.items())
        return CheckResult(name="version", status="fail", detail=detail,
                           seconds=reported.seconds, data=reported.data)
    return CheckResult(name="version", status="pass", detail=str(expected),
                       seconds=reported.seconds, data=reported.data)


def _signal_name(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


def judge(run: ProbeRun, *, cell_id: str, kind: str, wheel: WheelInfo,
          package: Package) -> CellResult:
    """Turn a probe run into the cell's verdict and its checks in order."""
    facts: dict[str, Any] = {}
    env: Mapping[str, str] = run.environment
    reported: dict[str, CheckResult] = {}
    started: str | None = None
    errors: list[str] = []
    duplicated: list[str] = []  # only the package could have written these
    checks_exit: dict[str, Any] | None = None
    for ev in run.events:
        kind_ = ev.get("event")
        if kind_ == "facts":
            facts = {k: v for k, v in ev.items() if k != "event"}
        elif kind_ == "check":
            if ev["name"] in reported:
                duplicated.append(ev["name"])
            reported[ev["name"]] = CheckResult(
                name=ev["name"], status=ev["status"], detail=ev.get("detail", ""),
                seconds=ev.get("data", {}).get("seconds"), data=ev.get("data", {}))
            started = None
        elif kind_ == "check_started":
            started = ev["name"]
        elif kind_ == "environment":
            env = ev.get("variables", {})
        elif kind_ == "error":
            errors.append(f"{ev.get('stage')}: {ev.get('message')}")
        elif kind_ == "checks_exit":
            checks_exit = ev

    order = check_order(package)
    if "install" in reported:
        reported["install"] = _install_check(reported["install"], wheel, facts)
    if "version" in reported:
        reported["version"] = _version_check(reported["version"])
    if facts:
        reported["tags"] = _tags_check(wheel, package)
    died = ""
    if checks_exit is not None:  # whatever is still missing, the package's process ended first
        rc = checks_exit.get("returncode")
        tail = str(checks_exit.get("stderr", "")).strip()[-800:]
        died = (f"the Python process {'exited' if rc == 0 else 'died'} "
                f"({_signal_name(rc)}) before reporting" + (f": {tail}" if tail else ""))
        reported["exit"] = CheckResult(
            name="exit", status="pass" if rc == 0 else "fail",
            data={"returncode": rc, "process_seconds": checks_exit.get("seconds")},
            detail="exit status 0" if rc == 0 else f"the Python process ended with "
                   f"{_signal_name(rc)} after the checks (atexit handlers, finalisers)"
                   + (f": {tail}" if tail else ""))
    results: list[CheckResult] = []
    blocked = False
    for name in order:
        if name in reported and not (blocked and name == "exit"):
            results.append(reported[name])
            blocked = blocked or (reported[name].status != "pass" and name in (
                "sterility", "install", "import"))
            continue
        if blocked:
            results.append(CheckResult(name=name, status="not run"))
        elif run.timed_out and (started == name or started is None):
            results.append(CheckResult(name=name, status="timeout",
                                       detail=f"no result within {run.seconds:.0f}s"))
            blocked = True
        elif died and reported.get("install", CheckResult(name="", status="")).status == "pass":
            results.append(CheckResult(name=name, status="error" if run.infra_error else "fail",
                                       detail=died))
            blocked = True
        else:
            results.append(CheckResult(name=name, status="not run"))
            blocked = True

    statuses = {r.name: r.status for r in results}
    failed = sorted((r for r in results if r.status == "fail"), key=lambda r: r.name == "tags")
    broken = [r for r in results if r.status == "error"]
    if run.infra_error:
        verdict, reason = Verdict.ERROR, run.infra_error
    elif duplicated:
        verdict, reason = Verdict.ERROR, (f"check {duplicated[0]!r} reported twice: something "
                                          "in the package wrote to the probe's event channel")
    elif broken:
        verdict, reason = Verdict.ERROR, f"{broken[0].name}: {broken[0].detail}"
    elif statuses.get("sterility") == "fail":
        verdict, reason = Verdict.INVALID, "environment not clean: " + reported["sterility"].detail
    elif failed:
        verdict, reason = Verdict.FAIL, f"{failed[0].name}: {failed[0].detail}"
    elif run.timed_out:
        verdict, reason = Verdict.TIMEOUT, f"cell timed out after {run.seconds:.0f}s"
    elif errors:
        verdict, reason = Verdict.ERROR, "probe error: " + "; ".join(errors)
    elif all(s in ("pass", "skip") for s in statuses.values()):
        verdict, reason = Verdict.PASS, "all checks passed"
    else:
        missing = [n for n, s in statuses.items() if s not in ("pass", "skip")]
        verdict = Verdict.ERROR
        reason = (f"probe ended ({_signal_name(run.returncode)}) without reporting "
                  + ", ".join(missing) + (f": {run.stderr.strip()[-300:]}" if run.stderr else ""))
    return CellResult(cell_id=cell_id, kind=kind, verdict=verdict, reason=reason,
                      checks=tuple(results), facts=facts, environment=env,
                      seconds=run.seconds, stderr=run.stderr[-4000:])


def summarize(results: Sequence[CellResult]) -> dict[str, int]:
    """Count of cells per verdict."""
    counts = {v.value: 0 for v in Verdict}
    for r in results:
        counts[r.verdict.value] += 1
    return counts
