"""results -> machine-readable reports: JSON (everything) and JUnit XML (cell x check)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import re
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness import outcome, summary
from harness.checks import check_code
from harness.errors import HarnessError
from harness.report_schema import (
    SCHEMA_VERSION,
    CellDoc,
    CheckDoc,
    PickDoc,
    ReleaseDoc,
    ReportDoc,
    RunDoc,
    WheelDoc,
)
from harness.verdict import (
    CellResult,
    CheckResult,
    CheckStatus,
    Diagnosis,
    Predicted,
    RunFacts,
    Verdict,
    summarize,
)
from harness.wheel import Release, file_sha256

__all__ = ["SCHEMA_VERSION", "ReportWriteError", "RunInfo", "paths", "result_from_json",
           "to_json", "to_junit", "write", "write_documents"]


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """The run as a whole."""

    run_id: str
    matrix: str
    release: Release  # as the user gave it (paths are theirs, not the staged copies)
    started: float
    finished: float
    interrupted: bool
    exit_code: int
    selected: tuple[str, ...]
    matrix_sha256: str = ""  # matrix content + the whole unsharded selection
    shard: str = "1/1"
    all_cells: tuple[str, ...] = ()  # the unsharded selection (``selected`` is this shard's)
    coverage: outcome.Coverage = field(default_factory=lambda: outcome.DEFAULT_COVERAGE)


def _run(facts: RunFacts) -> RunDoc:
    return {"infra_error": facts.infra_error, "forged": facts.forged,
            "probe_errors": list(facts.probe_errors), "timed_out": facts.timed_out,
            "returncode": facts.returncode, "seconds": round(facts.seconds, 3),
            "stderr": facts.stderr, "fallback": facts.fallback, "cpu_problem": facts.cpu_problem}


def _pick(pick: Predicted) -> PickDoc:
    return {"file": pick.file, "sha256": pick.sha256, "tag": pick.tag,
            "fallback": pick.fallback, "excluded": pick.excluded, "covered": pick.covered}


def _check(c: CheckResult) -> CheckDoc:
    return {"name": c.name, "status": c.status.value, "code": c.code, "detail": c.detail,
            "seconds": None if c.seconds is None else round(c.seconds, 3), "data": dict(c.data)}


def _cell(result: CellResult) -> CellDoc:
    facts = result.facts
    mapped = {}
    prov = result.check("provenance")
    if prov is not None:
        mapped = prov.data.get("libraries", {})
    return {
        "id": result.cell_id,
        "kind": result.kind,
        "verdict": result.verdict.value,
        "reason": result.reason,
        "diagnosis": asdict(result.diagnosis) if result.diagnosis else None,
        "interpreter": {k: facts.get(k) for k in ("executable", "version", "implementation",
                                                   "glibc", "musl", "machine")}
        if facts else None,
        "environment": dict(result.environment),
        "libraries_mapped": mapped,
        "seconds": round(result.seconds, 3),
        "artifact": {"file": result.artifact_file, "sha256": result.artifact_sha256}
        if result.artifact_file else None,
        "pick": _pick(result.pick) if result.pick else None,
        "checks": [_check(c) for c in result.checks],
        "stderr_tail": result.stderr[-2000:],
        "run": _run(result.run),
        "emulated": dict(result.emulated) if result.emulated else None,
    }


def _wheel(release: Release) -> WheelDoc:
    """The top-level ``wheel``: the one wheel, or the set as one identity (a digest of its
    files' sha256s) for readers that know a single wheel only."""
    if len(release.files.files) == 1:
        w = release.wheels[0]
        return {"file": w.filename, "path": str(w.path), "sha256": w.sha256,
                "name": w.name, "version": str(w.version),
                "tags": sorted(str(t) for t in w.tags)}
    lines = "".join(f"{w.sha256}  {w.filename}\n" for w in release.wheels)
    return {"file": release.label, "path": "", "name": release.files.distribution,
            "sha256": hashlib.sha256(lines.encode()).hexdigest(),
            "version": str(release.files.version),
            "tags": sorted({str(t) for w in release.wheels for t in w.tags})}


def release_section(run: RunInfo) -> ReleaseDoc:
    """The top-level ``release``: version, every file (name, sha256, kind), ignored files."""
    files = run.release.files
    shas = {w.filename: w.sha256 for w in run.release.wheels}
    return {
        "distribution": files.distribution, "version": str(files.version),
        "uncovered": "blocker" if run.coverage.level(excluded=False) == "blocker"
        else "warning",
        "coverage": run.coverage.to_json(),
        "files": [{"file": d.filename, "kind": d.kind,
                   "sha256": shas.get(d.filename) or file_sha256(d.path),
                   "tags": sorted(str(t) for t in d.tags)} for d in files.files],
        "ignored": [{"file": i.path.name, "reason": i.reason} for i in files.ignored],
    }


def to_json(run: RunInfo, results: Sequence[CellResult]) -> ReportDoc:
    """The JSON report as a dict."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "matrix": run.matrix,
        "host": {"platform": platform.platform(), "python": platform.python_version()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.started)),
        "seconds": round(run.finished - run.started, 3),
        "interrupted": run.interrupted,
        "exit_code": run.exit_code,
        "wheel": _wheel(run.release),
        "release": release_section(run),
        "summary": summarize(results),
        "selected": list(run.selected),
        "matrix_sha256": run.matrix_sha256,
        "shard": run.shard,
        "all_cells": list(run.all_cells or run.selected),
        "cells": [_cell(r) for r in results],
    }


def result_from_json(cell: CellDoc) -> CellResult:
    """A report's cell back as a CellResult (what merging shards needs)."""
    diagnosis = cell.get("diagnosis")
    run = cell["run"]
    return CellResult(
        cell_id=cell["id"], kind=cell["kind"], verdict=Verdict(cell["verdict"]),
        reason=cell.get("reason", ""),
        checks=tuple(CheckResult(name=c["name"], status=CheckStatus(c["status"]),
                                 code=check_code(c["code"]), detail=c.get("detail", ""),
                                 seconds=c.get("seconds"), data=c.get("data") or {})
                     for c in cell.get("checks", [])),
        facts=cell.get("interpreter") or {}, environment=cell.get("environment") or {},
        seconds=cell.get("seconds") or 0.0,
        diagnosis=Diagnosis(**diagnosis) if diagnosis else None,
        stderr=cell.get("stderr_tail", ""),
        artifact_file=artifact["file"] if (artifact := cell.get("artifact")) else None,
        artifact_sha256=artifact["sha256"] if artifact else None,
        pick=Predicted(file=pick["file"], sha256=pick["sha256"], tag=pick["tag"],
                       fallback=pick["fallback"], excluded=pick.get("excluded", ""))
        if (pick := cell.get("pick")) else None,
        run=RunFacts(infra_error=run["infra_error"], forged=run["forged"],
                     probe_errors=tuple(run["probe_errors"]), timed_out=run["timed_out"],
                     returncode=run["returncode"], seconds=run["seconds"],
                     stderr=run["stderr"], fallback=run["fallback"],
                     cpu_problem=run.get("cpu_problem")),
        emulated=cell.get("emulated"))


_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """What a package printed may hold NULs, escapes, lone surrogates: XML 1.0 cannot."""
    return _NOT_XML.sub("\ufffd", text)


def to_junit(run: RunInfo, results: Sequence[CellResult]) -> ET.ElementTree:
    """JUnit XML: a testsuite per cell, a testcase per check."""
    return junit_tree(f"smoke {run.release.label}", results, run.coverage)


def junit_class(cell_id: str) -> str:
    """A cell id as a JUnit class name: no dots (Jenkins would split ``venv-py3.12`` into a
    package ``venv-py3`` and a class ``12``)."""
    return cell_id.replace(".", "_")


def _outcome(r: CellResult, c: CheckResult,
             first_error: bool) -> tuple[str, str, str] | None:
    """One check's JUnit element: (tag, type, message), or None when it passed.  A cell
    that could not be judged (ERROR, TIMEOUT, INVALID) is one error, on its first bad
    check; checks that never ran are skipped."""
    detail = c.detail or r.reason
    bad = c.status in (CheckStatus.FAIL, CheckStatus.ERROR, CheckStatus.TIMEOUT)
    if bad and r.verdict in (Verdict.ERROR, Verdict.TIMEOUT, Verdict.INVALID):
        if first_error:
            return "error", r.verdict.value.lower(), f"{r.verdict.value}: {detail}"
        return "skipped", "not-judged", f"not judged ({c.status.value}): {detail}"
    if c.status is CheckStatus.FAIL:
        return "failure", "fail", detail
    if bad:
        return "error", c.status.value, detail
    if c.status is CheckStatus.NOT_RUN and r.verdict in (Verdict.ERROR, Verdict.TIMEOUT):
        return "skipped", "not-run", f"not run: {r.reason}"
    if c.status in (CheckStatus.SKIP, CheckStatus.NOT_RUN):
        return "skipped", "skip", c.detail or "not run"
    return None


def junit_tree(title: str, results: Sequence[CellResult],
               coverage: outcome.Coverage = outcome.DEFAULT_COVERAGE) -> ET.ElementTree:
    """JUnit XML named ``title``: a testsuite per cell (see ``_suite``), with totals."""
    suites = ET.Element("testsuites", name=title)
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for r in results:
        for k, v in _suite(suites, r, coverage).items():
            totals[k] += v
    for k, v in totals.items():
        suites.set(k, str(v))
    suites.set("time", f"{sum(r.seconds for r in results):.3f}")
    return ET.ElementTree(suites)


def _suite(parent: ET.Element, r: CellResult, coverage: outcome.Coverage) -> dict[str, int]:
    """One cell's testsuite: a testcase per check (class name: the cell id without dots);
    one error when the cell could not be judged; its stderr tail in ``system-out``; an
    UNCOVERED cell adds a ``coverage`` testcase, failed when it counts (harness.outcome),
    else skipped."""
    suite = ET.SubElement(parent, "testsuite", name=r.cell_id, time=f"{r.seconds:.3f}")
    if r.artifact_file:
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="file", value=xml_text(r.artifact_file))
        ET.SubElement(props, "property", name="sha256", value=r.artifact_sha256 or "")
    counts = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    carriers: list[ET.Element] = []  # the cases that say why the cell did not pass

    def case(name: str, seconds: float | None, element: tuple[str, str, str] | None,
             text: str = "") -> None:
        counts["tests"] += 1
        el = ET.SubElement(suite, "testcase", classname=junit_class(r.cell_id), name=name,
                           time=f"{seconds or 0:.3f}")
        if element is not None:
            tag, kind, message = element
            counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[tag]] += 1
            child = ET.SubElement(el, tag, message=xml_text(message)[:500], type=kind)
            if tag != "skipped":
                child.text = xml_text(message + text)
                carriers.append(el)

    for c in r.checks:
        diagnosis = (f"\n{r.diagnosis.title}: {r.diagnosis.advice}"
                     if r.diagnosis and r.failed_check is c else "")
        case(c.name, c.seconds, _outcome(r, c, not counts["errors"]), diagnosis)
    if r.verdict is Verdict.UNCOVERED:
        case("coverage", None, ("failure" if outcome.counts(r, coverage) else "skipped",
                                "uncovered",
                                r.reason))
    elif r.verdict is not Verdict.PASS and not carriers:  # e.g. a forged event stream
        case("verdict", None, ("error", r.verdict.value.lower(), r.reason))
    output = xml_text(r.stderr[-2000:])
    if output:
        if carriers:
            ET.SubElement(carriers[0], "system-out").text = output
        ET.SubElement(suite, "system-out").text = output
    for k, v in counts.items():
        suite.set(k, str(v))
    return counts


class ReportWriteError(HarnessError):
    """The reports could not be written; the previous ones are unchanged."""


def paths(report_dir: Path) -> dict[str, Path]:
    """Where the reports go."""
    return {"json": report_dir / "smoke.json", "junit": report_dir / "smoke.junit.xml",
            "summary": report_dir / summary.FILE}


def write(report_dir: Path, run: RunInfo, results: Sequence[CellResult]) -> dict[str, Path]:
    """Write smoke.json, smoke.junit.xml and smoke.md; return their paths."""
    return write_documents(report_dir, to_json(run, results), to_junit(run, results))


def _private_temp(final: Path) -> Path:
    """A new file beside ``final`` that nobody else made (O_EXCL, unique name, 0644)."""
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
    finally:
        os.close(fd)
    return Path(name)


@contextlib.contextmanager
def _report_lock(report_dir: Path) -> Iterator[None]:
    """One run writes into ``report_dir`` at a time (a lock on the directory itself); others
    wait for it."""
    try:
        import fcntl
    except ImportError:  # Windows: unique temporary files still keep every file whole
        yield
        return
    fd = os.open(report_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_documents(report_dir: Path, data: ReportDoc,
                    junit: ET.ElementTree) -> dict[str, Path]:
    """Write a JSON report, its JUnit XML and its markdown summary atomically (unique
    temporary files first, then renamed, one run at a time: on failure the previous reports
    stay intact and no temporary file is left); then append the summary to
    ``$GITHUB_STEP_SUMMARY`` when set."""
    final = paths(report_dir)
    tmp: dict[str, Path] = {}
    ET.indent(junit)
    text = summary.markdown(data)
    try:
        report_dir.mkdir(parents=True, exist_ok=True)
        with _report_lock(report_dir):
            tmp = {k: _private_temp(p) for k, p in final.items()}
            tmp["json"].write_text(json.dumps(data, indent=2, default=str) + "\n")
            junit.write(tmp["junit"], encoding="utf-8", xml_declaration=True)
            tmp["summary"].write_text(text, encoding="utf-8")
            for key, path in tmp.items():
                path.replace(final[key])
    except OSError as exc:
        for path in tmp.values():
            path.unlink(missing_ok=True)
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise ReportWriteError(f"could not write the reports to {report_dir.absolute()} "
                               f"({exc.strerror or exc}); any previous report there is "
                               "unchanged; " + ("free space there" if full else
                                                "check that directory") +
                               " or pass another --report-dir") from exc
    summary.append_to_step_summary(text)
    return final
