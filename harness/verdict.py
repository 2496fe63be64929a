"""Probe events -> one verdict per cell: PASS, FAIL, INVALID, ERROR or TIMEOUT.

The per-check judging lives in harness/checks.py; this module reads the event stream,
applies the order in which checks block one another, and combines the results.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness import floor, outcome
from harness.checks import OK, CheckResult, CheckStatus, Context, judge_step, signal_name
from harness.matrix import CHECKS_AFTER, CHECKS_BEFORE, Package
from harness.release import Pick, pick
from harness.wheel import Release, WheelInfo

__all__ = ["CellResult", "CheckResult", "CheckStatus", "Diagnosis", "Predicted", "ProbeRun",
           "RunFacts", "Verdict", "check_order", "conclude", "judge", "predicted", "summarize",
           "tested_wheel"]
BLOCKING = ("sterility", "install", "import")  # a later check cannot stand without these


class Verdict(enum.Enum):
    """A cell's outcome. Only PASS means the wheel was proven to work there."""

    PASS = "PASS"
    FAIL = "FAIL"        # the wheel does not work in a clean environment
    INVALID = "INVALID"  # the environment was not provably clean: nothing was proven
    TIMEOUT = "TIMEOUT"  # the cell ran out of time
    ERROR = "ERROR"      # harness or infrastructure fault
    UNCOVERED = "UNCOVERED"  # no wheel of the release set fits the cell: nothing to test;
    # whether that blocks is the matrix's policy (release.uncovered)


@dataclass(frozen=True, kw_only=True)
class Predicted:
    """pip's pick for a cell from the release set, by its interpreter's tag priority."""

    file: str | None  # None: no wheel fits (uncovered)
    sha256: str | None
    tag: str | None
    fallback: str  # uncovered: what a user there gets instead; "" when covered
    excluded: str = ""  # the Requires-Python that leaves the cell's Python out of the release

    @property
    def covered(self) -> bool:
        """Whether some wheel of the set fits the cell."""
        return self.file is not None


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
class Diagnosis:
    """A known failure signature explained in the user's words."""

    title: str
    advice: str


@dataclass(frozen=True, kw_only=True)
class RunFacts:
    """What decides a cell's verdict besides its checks (the report keeps it, so a merge
    re-derives every verdict with ``conclude``)."""

    infra_error: str | None = None
    forged: str | None = None  # a step reported twice, or an event the probe never sends
    probe_errors: tuple[str, ...] = ()
    timed_out: bool = False
    returncode: int | None = None
    seconds: float = 0.0
    stderr: str = ""  # the tail the reason quotes
    fallback: str | None = None  # the cell is uncovered: what a user there gets instead
    cpu_problem: str | None = None  # a floor cell's CPU had more than the level asked


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
    artifact_file: str | None = None  # the wheel file the cell installed (proven in it)
    artifact_sha256: str | None = None  # its sha256, as hashed in the cell
    pick: Predicted | None = None  # pip's pick for the cell (None: no interpreter facts)
    emulated: Mapping[str, Any] | None = None  # floor cells: the CPU emulated, as glibc saw it
    run: RunFacts = field(default_factory=RunFacts)

    def check(self, name: str) -> CheckResult | None:
        """The named check's result, if it is part of this cell."""
        return next((c for c in self.checks if c.name == name), None)

    @property
    def failed_check(self) -> CheckResult | None:
        """The check the verdict is about: the first one that did not pass in this cell,
        else the wheel-level tags check."""
        bad = [c for c in self.checks if c.status in (
            CheckStatus.FAIL, CheckStatus.ERROR, CheckStatus.TIMEOUT)]
        return next((c for c in bad if c.name != "tags"), bad[0] if bad else None)


def check_order(package: Package) -> list[str]:
    """The checks of every cell, in the order they run."""
    return [*CHECKS_BEFORE, *(c.name for c in package.checks), *CHECKS_AFTER]


@dataclass(frozen=True, kw_only=True)
class EventStream:
    """What the probe's events say, read once: observations per step and the oddities."""

    facts: Mapping[str, Any]
    environment: Mapping[str, str]
    observed: Mapping[str, Mapping[str, Any]]
    running: str | None  # the step that started and never reported
    errors: tuple[str, ...]
    forged: str | None  # a step reported twice or an event the probe never sends


def read_events(run: ProbeRun) -> EventStream:
    """Sort the events into observations; anything the probe would not send is forged."""
    facts: Mapping[str, Any] = {}
    env: Mapping[str, str] = run.environment
    observed: dict[str, Mapping[str, Any]] = {}
    started: set[str] = set()
    running: str | None = None
    errors: list[str] = []
    forged: str | None = None
    for ev in run.events:
        kind, step = ev.get("event"), str(ev.get("step"))
        if kind == "observed":
            if step in observed:
                forged = forged or f"step {step!r} reported twice"
            observed[step] = ev
            running = None if running == step else running
        elif kind == "started":
            if step in started:
                forged = forged or f"step {step!r} started twice"
            started.add(step)
            running = step
        elif kind == "facts":
            facts = {k: v for k, v in ev.items() if k != "event"}
        elif kind == "environment":
            env = ev.get("variables", {})
        elif kind == "error":
            errors.append(f"{ev.get('stage')}: {ev.get('message')}")
        elif kind not in ("note", "linger", "timing", "ready"):  # timing: for the profile
            forged = forged or f"event {kind!r} is not one the probe sends"
    forged = forged or interference(observed)
    watcher = observed.get("observer") or {}
    prov = observed.get("provenance") or {}
    if isinstance(prov.get("mapped"), list) and watcher.get("mapped"):
        seen = list(prov["mapped"])  # plus what the package's process mapped, seen from outside
        observed["provenance"] = {**prov, "mapped": seen + [
            p for p in watcher["mapped"] if p not in seen]}
    venv = observed.get("venv")
    if venv is not None and venv.get("returncode") != 0:
        errors.append(f"venv: python -m venv failed: {venv.get('output', '')}")
    return EventStream(facts=facts, environment=env, observed=observed, running=running,
                       errors=tuple(errors), forged=forged)


def interference(observed: Mapping[str, Mapping[str, Any]]) -> str | None:
    """What the package's process claimed that the probe, looking at it from outside when
    it said it was done (``observer``), contradicts; or that it never let the probe look."""
    imp, watcher = observed.get("import"), observed.get("observer")
    if imp is None or imp.get("exception") or (watcher or {}).get("unsupported"):
        return None
    if watcher is None:
        if observed.get("provenance") is None:
            return None  # it died or was stopped before the end: judged as such
        return ("the package's process reported every step, then ended before the probe "
                "could look at it from outside")
    if watcher.get("mapped") is None:
        return f"the probe could not look at the package's process ({watcher.get('error')})"
    mapped = watcher.get("extensions") or {}
    claimed = [str(e.get("module")) for e in imp.get("extensions", [])
               if not e.get("exception") and not e.get("skipped")]  # skipped: never imported
    missing = [m for m in claimed if not mapped.get(m)]
    if missing:
        return (f"the import reported {', '.join(missing)} loaded, but the package's process "
                "never mapped its file")
    return None


def _unreported(name: str, run: ProbeRun, stream: EventStream, results: list[CheckResult],
                blocked: bool, wheel: WheelInfo) -> CheckResult:
    """A check with no observation: why not (not run, out of time, the process died; on an
    emulated CPU, the instruction it died on)."""
    exited = stream.observed.get("exit")
    over = exited.get("over_budget") if exited else None
    installed = any(r.name == "install" and r.status is CheckStatus.PASS for r in results)
    if blocked:
        return CheckResult(name=name, status=CheckStatus.NOT_RUN, code="not-run")
    if over and over.get("step") == name:
        return CheckResult(name=name, status=CheckStatus.TIMEOUT, code="step-timeout",
                           data=dict(over),
                           detail=f"no result within its {over.get('budget'):g}s budget "
                                  "(stopped by the probe)")
    if run.timed_out and stream.running in (name, None):
        return CheckResult(name=name, status=CheckStatus.TIMEOUT, code="cell-timeout",
                           detail=f"no result when the cell timed out after {run.seconds:.0f}s")
    if exited is not None and installed:  # the package's process ended before reporting
        rc = exited.get("returncode")
        tail = str(exited.get("stderr", "")).strip()[-800:]
        fault = floor.read_fault(exited, wheel)
        if fault is not None:
            return CheckResult(name=name, status=CheckStatus.ERROR if run.infra_error or
                               fault.kind in floor.NOT_JUDGED else CheckStatus.FAIL,
                               code="cpu-fault", detail=fault.text(),
                               data={"cpu_fault": fault.to_json(), "stderr": tail})
        return CheckResult(name=name, status=CheckStatus.ERROR if run.infra_error else
                           CheckStatus.FAIL, code="died-before-reporting",
                           detail=f"the Python process "
                           f"{'exited' if rc == 0 else 'died'} ({signal_name(rc)}) before "
                           "reporting" + (f": {tail}" if tail else ""))
    return CheckResult(name=name, status=CheckStatus.NOT_RUN, code="not-run")


def judge_checks(run: ProbeRun, stream: EventStream, ctx: Context,
                 uncovered: bool = False) -> list[CheckResult]:
    """Every check of the cell in order: judged from its observation, or why it has none.
    An uncovered cell (no wheel fits) has only its sterility judged; nothing was installed."""
    observed = {**stream.observed, **({"tags": {}} if stream.facts else {})}  # host-only
    results: list[CheckResult] = []
    blocked = False
    for name in check_order(ctx.package):
        obs = observed.get(name)
        if uncovered and name in ("tags", "install"):
            refused = "; ".join(f"ERROR: {w.filename} is not a supported wheel on this "
                                f"platform" for w in (ctx.release.wheels if ctx.release
                                                      else ()))
            result = CheckResult(name=name, status=CheckStatus.NOT_RUN,
                                 code="install-uncovered" if name == "install" else "not-run",
                                 detail=f"no wheel of the release set fits this cell ({refused})"
                                 if name == "install" else "no wheel of the release set fits",
                                 data={k: v for k, v in (obs or {}).items()
                                       if k not in ("event", "step")})
            blocked = blocked or name == "install"
        elif obs is not None and not (blocked and name == "exit"):
            result = judge_step(name, obs, ctx)
            blocked = blocked or (name in BLOCKING and result.status not in OK)
        else:
            result = _unreported(name, run, stream, results, blocked, ctx.wheel)
            blocked = True
        results.append(result)
    return results


def run_facts(run: ProbeRun, stream: EventStream, fallback: str | None = None) -> RunFacts:
    """What of the run and its event stream decides the verdict besides the checks."""
    return RunFacts(infra_error=run.infra_error, forged=stream.forged,
                    probe_errors=stream.errors, timed_out=run.timed_out,
                    returncode=run.returncode, seconds=run.seconds,
                    stderr=run.stderr.strip()[-300:], fallback=fallback,
                    cpu_problem=floor.cpu_problem(stream.observed.get("exit")))


def combine(run: ProbeRun, stream: EventStream, results: Sequence[CheckResult],
            fallback: str | None = None) -> tuple[Verdict, str]:
    """The cell's verdict from its checks, most serious first (``fallback``: the cell is
    uncovered, and this is what a user there gets instead)."""
    return conclude(run_facts(run, stream, fallback), results)


def conclude(run: RunFacts, results: Sequence[CheckResult]) -> tuple[Verdict, str]:
    """The verdict and its reason from the checks and the run's facts, most serious first."""
    def first(status: CheckStatus) -> CheckResult | None:
        found = sorted((r for r in results if r.status is status), key=lambda r: r.name == "tags")
        return found[0] if found else None

    broken, failed, late = (first(CheckStatus.ERROR), first(CheckStatus.FAIL),
                            first(CheckStatus.TIMEOUT))
    sterility = next((r for r in results if r.name == "sterility"), None)
    if run.infra_error:
        return Verdict.ERROR, run.infra_error
    if run.forged:
        return Verdict.ERROR, f"the package interfered with the probe: {run.forged}"
    if broken:
        return Verdict.ERROR, f"{broken.name}: {broken.detail}"
    if run.fallback is not None:
        return Verdict.UNCOVERED, run.fallback
    if sterility is not None and sterility.status is CheckStatus.FAIL:
        return Verdict.INVALID, "environment not clean: " + sterility.detail
    if run.cpu_problem:
        return Verdict.INVALID, run.cpu_problem
    if failed:
        return Verdict.FAIL, f"{failed.name}: {failed.detail}"
    if late or run.timed_out:
        return Verdict.TIMEOUT, (f"{late.name}: {late.detail}" if late
                                 else f"cell timed out after {run.seconds:.0f}s")
    if run.probe_errors:
        return Verdict.ERROR, "probe error: " + "; ".join(run.probe_errors)
    missing = [r.name for r in results if r.status not in OK]
    if not missing:
        return Verdict.PASS, "all checks passed"
    return Verdict.ERROR, (f"probe ended ({signal_name(run.returncode)}) without reporting "
                           + ", ".join(missing)
                           + (f": {run.stderr}" if run.stderr else ""))


def predicted(release: Release, chosen: Pick) -> Predicted:
    """pip's pick for a cell, as the reports say it."""
    if chosen.wheel is None:
        return Predicted(file=None, sha256=None, tag=None, fallback=chosen.fallback,
                         excluded=chosen.excluded)
    return Predicted(file=chosen.wheel.filename, sha256=release.info(chosen.wheel).sha256,
                     tag=str(chosen.tag), fallback="")


def tested_wheel(release: Release, result: CellResult) -> WheelInfo:
    """The wheel a cell is about (harness.outcome.tested_file), else the set's first."""
    pick = result.pick
    name = outcome.tested_file(
        verdict=result.verdict.value, artifact=result.artifact_file,
        pick=pick.file if pick else None, pick_covered=pick.covered if pick else None,
        only_wheel=release.wheels[0].filename if len(release.wheels) == 1 else None)
    found = release.by_name(name) if name else None
    return found if found is not None else release.wheels[0]


def judge(run: ProbeRun, *, cell_id: str, kind: str, release: Release,
          package: Package, emulated: str | None = None) -> CellResult:
    """Turn a probe run into the cell's verdict and its checks in order: which wheel of the
    set it installed, whether that is pip's pick, and what the checks found (``emulated``:
    the CPU a floor cell emulated, as reports say it)."""
    stream = read_events(run)
    chosen = pick(release.files, stream.facts) if stream.facts else None
    guess = predicted(release, chosen) if chosen is not None else None
    install = stream.observed.get("install") or {}
    artifact = install.get("installed") or {}
    base = CellResult(cell_id=cell_id, kind=kind, verdict=Verdict.ERROR, reason="",
                      checks=(), artifact_file=artifact.get("file"),
                      artifact_sha256=artifact.get("sha256"), pick=guess)
    uncovered = (guess is not None and not guess.covered and bool(install)
                 and install.get("returncode") != 0)
    ctx = Context(wheel=tested_wheel(release, base), package=package, facts=stream.facts,
                  release=release, pick=chosen)
    results = judge_checks(run, stream, ctx, uncovered=uncovered)
    facts = run_facts(run, stream, guess.fallback if uncovered and guess is not None else None)
    verdict, reason = conclude(facts, results)
    exited = stream.observed.get("exit") or {}
    return replace(base, verdict=verdict, reason=reason, checks=tuple(results), run=facts,
                   emulated={"cpu": emulated, "glibc": (exited.get("emulation") or {}).get(
                       "seen")} if emulated else None,
                   facts=stream.facts, environment=stream.environment, seconds=run.seconds,
                   stderr=run.stderr[-4000:])


def summarize(results: Sequence[CellResult]) -> dict[str, int]:
    """Count of cells per verdict."""
    counts = {v.value: 0 for v in Verdict}
    for r in results:
        counts[r.verdict.value] += 1
    return counts
