"""A JSON report -> a markdown summary: cells x checks, verdicts, diagnoses, and the
pre-publish go / no-go (blockers with fixes, promise vs coverage, the file each cell tested).

Written to the report directory as ``smoke.md`` on every run, and appended to
``$GITHUB_STEP_SUMMARY`` when that is set (a GitHub Actions job's summary page).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

FILE = "smoke.md"
MARK = {"pass": "✅", "fail": "❌", "error": "⚠️", "timeout": "⏱️", "skip": "⏭️", "not run": "·"}
VERDICT_MARK = {"PASS": "✅", "FAIL": "❌", "INVALID": "🚫", "TIMEOUT": "⏱️", "ERROR": "⚠️",
                "UNCOVERED": "🕳️"}


def _cell_text(text: str) -> str:
    """One markdown table cell: no pipes, no newlines."""
    return " ".join(text.replace("|", "\\|").split())


def _check_names(cells: list[Mapping[str, Any]]) -> list[str]:
    """Every check of every cell, in first-seen order."""
    names: dict[str, None] = {}
    for cell in cells:
        for check in cell.get("checks", []):
            names.setdefault(check["name"], None)
    return list(names)


def _decision(data: Mapping[str, Any]) -> list[str]:
    """The go / no-go (harness.gate), when the report carries a decision: the verdict, every
    blocker with its fix and file, warnings, promise vs coverage, the file each cell tested."""
    decision = data.get("decision")
    if decision is None:
        return []
    if not isinstance(decision, Mapping):
        return [f"**{_cell_text(str(decision))}**", ""]
    go = "GO" if decision.get("go") else "NO-GO"
    lines = [f"**{go}**: {_cell_text(str(decision.get('reason', '')))}", ""]
    for title, key in (("Blockers", "blockers"), ("Warnings", "warnings")):
        issues = decision.get(key) or []
        if issues:
            lines.append(f"### {title}")
            for i in issues:
                cells = f" (cells: {', '.join(i['cells'])})" if i.get("cells") else ""
                error = " (could not judge)" if i.get("severity") == "error" else ""
                lines.append(f"- **{i['code']}**{error} `{i['file']}`{cells}: "
                             f"{_cell_text(i['message'])} — **fix**: {_cell_text(i['fix'])}")
            lines.append("")
    coverage = decision.get("coverage") or []
    if coverage:
        lines += ["### Promise vs coverage", "",
                  "| file | its tags promise | tested (cells, PASS) | not tested |",
                  "|---|---|---|---|"]
        for c in coverage:
            tested = "; ".join(c["covered"]) or "nothing"
            lines.append(f"| {c['file']} | {_cell_text('; '.join(c['promises']))} | "
                         f"{_cell_text(tested)} ({len(c['cells'])}, {c['passed']}) | "
                         f"{_cell_text('; '.join(c['untested'])) or '—'} |")
        lines.append("")
    tested_files = decision.get("tested") or []
    if tested_files:
        lines += ["### File tested per cell", "", "| cell | file | sha256 | verdict |",
                  "|---|---|---|---|"]
        for t in tested_files:
            lines.append(f"| {t['cell']} | {t['file'] or '(no wheel fits)'} | "
                         f"`{t['sha256'][:16]}` | {t['verdict']} |")
        lines.append("")
    for change in decision.get("policy_changes") or []:
        lines.append(f"- policy (matrix.yaml `release`): {_cell_text(change)}")
    return lines


def _glibc_levels(seen: Mapping[str, Any] | None) -> str:
    """What glibc's loader saw on an emulated CPU (its x86-64 levels)."""
    if not seen or "supported" not in seen:
        return ""
    return f" (glibc sees {', '.join(seen['supported']) or 'only the x86-64 baseline'})"


def markdown(data: Mapping[str, Any]) -> str:
    """The summary of one (possibly merged) JSON report."""
    wheel = data.get("wheel", {})
    cells = list(data.get("cells", []))
    counts = ", ".join(f"{n} {v}" for v, n in data.get("summary", {}).items() if n)
    shard = data.get("shard", "1/1")
    lines = [f"## Smoke: {wheel.get('file', '?')}", "",
             f"sha256 `{wheel.get('sha256', '?')}` · {counts or 'no cells ran'}"
             f"{' · shard ' + shard if shard != '1/1' else ''}"
             f"{' · interrupted' if data.get('interrupted') else ''}"
             f" · exit {data.get('exit_code')}", ""]
    lines += _decision(data)
    names = _check_names(cells)
    if cells:
        lines += ["| cell | verdict | file | " + " | ".join(names) + " |",
                  "|---|---|---|" + "---|" * len(names)]
        for cell in cells:
            status = {c["name"]: c["status"] for c in cell.get("checks", [])}
            marks = [MARK.get(status.get(n, ""), status.get(n, "")) for n in names]
            verdict = cell["verdict"]
            artifact = cell.get("artifact") or {}
            lines.append(f"| {cell['id']} | {VERDICT_MARK.get(verdict, '')} {verdict} | "
                         f"{_cell_text(artifact.get('file') or '-')} | "
                         + " | ".join(marks) + " |")
        lines.append("")
    emulated = [c for c in cells if c.get("emulated")]
    if emulated:  # floor cells: which CPU each ran the package on, and what glibc saw there
        lines.append("Emulated CPUs: " + "; ".join(
            f"`{c['id']}` {_cell_text(str(c['emulated'].get('cpu')))}"
            + _glibc_levels(c["emulated"].get("glibc")) for c in emulated))
        lines.append("")
    problems = [c for c in cells if c["verdict"] != "PASS"]
    if problems:
        lines.append("### Not passed")
        for cell in problems:
            d = cell.get("diagnosis")
            why = f" — **{_cell_text(d['title'])}**: {_cell_text(d['advice'])}" if d else ""
            lines.append(f"- `{cell['id']}` {cell['verdict']}: "
                         f"{_cell_text(cell.get('reason', ''))}{why}")
        lines.append("")
    return "\n".join(lines)


def append_to_step_summary(text: str) -> None:
    """Append the summary to ``$GITHUB_STEP_SUMMARY`` when set (a GitHub Actions job)."""
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(text + "\n")
