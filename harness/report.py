"""results -> machine-readable reports: JSON (everything) and JUnit XML (cell x check)."""

from __future__ import annotations

import json
import platform
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.verdict import CellResult, CheckStatus, Verdict, summarize
from harness.wheel import WheelInfo

SCHEMA_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    """The run as a whole."""

    run_id: str
    matrix: str
    wheel: WheelInfo
    started: float
    finished: float
    interrupted: bool
    exit_code: int
    selected: tuple[str, ...]


def _cell(result: CellResult) -> dict[str, Any]:
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
                                                   "glibc", "machine")} if facts else None,
        "environment": dict(result.environment),
        "libraries_mapped": mapped,
        "seconds": round(result.seconds, 3),
        "checks": [{"name": c.name, "status": c.status.value, "detail": c.detail,
                    "seconds": None if c.seconds is None else round(c.seconds, 3),
                    "data": c.data} for c in result.checks],
        "stderr_tail": result.stderr[-2000:],
    }


def to_json(run: RunInfo, results: Sequence[CellResult]) -> dict[str, Any]:
    """The JSON report as a dict."""
    w = run.wheel
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "matrix": run.matrix,
        "host": {"platform": platform.platform(), "python": platform.python_version()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(run.started)),
        "seconds": round(run.finished - run.started, 3),
        "interrupted": run.interrupted,
        "exit_code": run.exit_code,
        "wheel": {"file": w.filename, "path": str(w.path), "sha256": w.sha256,
                  "name": w.name, "version": str(w.version),
                  "tags": sorted(str(t) for t in w.tags)},
        "summary": summarize(results),
        "selected": list(run.selected),
        "cells": [_cell(r) for r in results],
    }


_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """What a package printed may hold NULs, escapes, lone surrogates: XML 1.0 cannot."""
    return _NOT_XML.sub("\ufffd", text)


def to_junit(run: RunInfo, results: Sequence[CellResult]) -> ET.ElementTree:
    """JUnit XML: a testsuite per cell, a testcase per check."""
    suites = ET.Element("testsuites", name=f"smoke {run.wheel.filename}")
    for r in results:
        suite = ET.SubElement(suites, "testsuite", name=r.cell_id, time=f"{r.seconds:.3f}")
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for c in r.checks:
            counts["tests"] += 1
            case = ET.SubElement(suite, "testcase", classname=r.cell_id, name=c.name,
                                 time=f"{c.seconds or 0:.3f}")
            message = xml_text(c.detail or r.reason)
            reason = xml_text(r.reason)
            if c.status is CheckStatus.FAIL and r.verdict is Verdict.INVALID:
                counts["errors"] += 1
                ET.SubElement(case, "error", message=f"INVALID: {message}",
                              type="invalid").text = message
            elif c.status is CheckStatus.FAIL:
                counts["failures"] += 1
                text = message + (xml_text(f"\n{r.diagnosis.title}: {r.diagnosis.advice}")
                                  if r.diagnosis and r.failed_check is c else "")
                ET.SubElement(case, "failure", message=message[:500], type="fail").text = text
            elif c.status in (CheckStatus.ERROR, CheckStatus.TIMEOUT):
                counts["errors"] += 1
                ET.SubElement(case, "error", message=message[:500],
                              type=c.status.value).text = message
            elif c.status is CheckStatus.NOT_RUN and r.verdict in (Verdict.ERROR,
                                                                   Verdict.TIMEOUT):
                counts["errors"] += 1
                ET.SubElement(case, "error", message=reason[:500],
                              type=r.verdict.value.lower()).text = reason
            elif c.status in (CheckStatus.SKIP, CheckStatus.NOT_RUN):
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=xml_text(c.detail) or "not run")
        if r.verdict is not Verdict.PASS and not counts["failures"] + counts["errors"]:
            counts["tests"] += 1  # e.g. a forged event stream: every check "passed"
            counts["errors"] += 1
            case = ET.SubElement(suite, "testcase", classname=r.cell_id, name="verdict")
            ET.SubElement(case, "error", message=xml_text(r.reason)[:500],
                          type=r.verdict.value.lower()).text = xml_text(r.reason)
        for k, v in counts.items():
            suite.set(k, str(v))
    return ET.ElementTree(suites)


def write(report_dir: Path, run: RunInfo, results: Sequence[CellResult]) -> dict[str, Path]:
    """Write smoke.json and smoke.junit.xml; return their paths."""
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": report_dir / "smoke.json", "junit": report_dir / "smoke.junit.xml"}
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(to_json(run, results), indent=2, default=str) + "\n")
    tmp.replace(paths["json"])
    tree = to_junit(run, results)
    ET.indent(tree)
    tree.write(paths["junit"], encoding="utf-8", xml_declaration=True)
    return paths
