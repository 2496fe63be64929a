"""Shard reports -> one report: ``python -m harness merge REPORT_DIR... [--report-dir OUT]``.

The merged JSON, JUnit XML and markdown summary are what one unsharded run would have
written, with the same exit code. Reports that cannot be parts of one run are refused (exit 2,
one line): another wheel or release set, another matrix or selection, a shard given twice or
missing, a cell reported twice.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from harness import report
from harness.cli import exit_code
from harness.errors import InputError
from harness.verdict import CellResult, Verdict, summarize

Report = dict[str, Any]


def parser() -> argparse.ArgumentParser:
    """The ``merge`` subcommand's interface."""
    p = argparse.ArgumentParser(
        prog="python -m harness merge",
        description="Merge the reports of shards (--shard I/N) into one report, summary and "
                    "exit code, as one unsharded run would give.")
    p.add_argument("reports", nargs="+", type=Path,
                   help="report directories (holding smoke.json) or smoke.json files")
    p.add_argument("--report-dir", type=Path, default=Path("reports"),
                   help="where the merged smoke.json, smoke.junit.xml, smoke.md go")
    return p


def load(path: Path) -> Report:
    """One shard's JSON report; anything else is an InputError."""
    file = path / "smoke.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{file}: cannot read it ({exc.strerror}); pass a directory holding "
                         "a shard's smoke.json") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{file}: not a JSON report ({exc}); pass a directory holding a "
                         "shard's smoke.json") from exc
    if not isinstance(data, dict) or not all(k in data for k in ("matrix_sha256", "shard",
                                                                 "all_cells", "cells")):
        raise InputError(f"{file}: not a shard report (no matrix_sha256/shard/all_cells); "
                         "rerun the shard with this harness version")
    data["_file"] = str(file)
    return data


def _sha256s(value: Any) -> Iterator[str]:
    """Every ``sha256`` value anywhere inside a JSON value."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            if k == "sha256" and isinstance(v, str):
                yield v
            else:
                yield from _sha256s(v)
    elif isinstance(value, list):
        for v in value:
            yield from _sha256s(v)


def _artifacts(data: Report) -> tuple[str, frozenset[str]]:
    """What was tested: the wheel's sha256 and those of its release set, if any."""
    return data.get("wheel", {}).get("sha256", ""), frozenset(_sha256s(data.get("release")))


def _shard_of(data: Report) -> tuple[int, int]:
    index, _, count = str(data["shard"]).partition("/")
    try:
        return int(index), int(count)
    except ValueError:
        raise InputError(f"{data['_file']}: shard {data['shard']!r} is not I/N") from None


def check(reports: Sequence[Report]) -> None:
    """Refuse reports that are not the shards of one run, each exactly once."""
    first = reports[0]
    name = first["_file"]
    for other in reports[1:]:
        where = f"{other['_file']} and {name}"
        if _artifacts(other)[0] != _artifacts(first)[0]:
            raise InputError(f"{where} tested different wheels (sha256 "
                             f"{_artifacts(other)[0][:12]}… vs {_artifacts(first)[0][:12]}…); "
                             "merge the shards of one run only")
        if _artifacts(other) != _artifacts(first):
            raise InputError(f"{where} tested different release sets (sha256s differ); "
                             "merge the shards of one run only")
        if (other["matrix_sha256"], other["all_cells"]) != (first["matrix_sha256"],
                                                            first["all_cells"]):
            raise InputError(f"{where} ran different matrices or selections (matrix sha256 "
                             "or cell list differ); give every shard the same --matrix, "
                             "--select and --timeout")
    counts = {_shard_of(r)[1] for r in reports}
    if len(counts) != 1:
        raise InputError(f"shards of different counts ({', '.join(r['shard'] for r in reports)}"
                         "); merge the shards of one --shard I/N split")
    count = counts.pop()
    seen: dict[int, str] = {}
    for r in reports:
        index = _shard_of(r)[0]
        if index in seen:
            raise InputError(f"shard {r['shard']} given twice ({seen[index]}, {r['_file']})")
        seen[index] = r["_file"]
    missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in seen]
    if missing:
        raise InputError(f"shard{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                         f"missing; pass every shard's report directory")
    cells: dict[str, str] = {}
    for r in reports:
        for cell in r["cells"]:
            if cell["id"] in cells:
                raise InputError(f"cell {cell['id']} reported twice ({cells[cell['id']]}, "
                                 f"{r['_file']}); merge the shards of one run only")
            cells[cell["id"]] = r["_file"]
    unknown = sorted(set(cells) - set(first["all_cells"]))
    if unknown:
        raise InputError(f"cells {', '.join(unknown)} are not in the run's selection; "
                         "merge the shards of one run only")


def merged(reports: Sequence[Report]) -> tuple[Report, list[CellResult]]:
    """The report one unsharded run would have written, and its cells as results."""
    first = reports[0]
    order = {cid: i for i, cid in enumerate(first["all_cells"])}
    cells = sorted((c for r in reports for c in r["cells"]), key=lambda c: order[c["id"]])
    results = [report.result_from_json(c) for c in cells]
    missing = [cid for cid in first["all_cells"] if cid not in {c["id"] for c in cells}]
    interrupted = any(r.get("interrupted") for r in reports)
    data = {k: v for k, v in first.items() if k != "_file"}
    data.update({
        "run_id": "merged-" + "+".join(sorted(str(r.get("run_id")) for r in reports)),
        "started": min(str(r.get("started", "")) for r in reports),
        "seconds": round(max(float(r.get("seconds") or 0) for r in reports), 3),
        "interrupted": interrupted,
        # a shard stopped early reports fewer cells: that is an interrupted whole
        "exit_code": exit_code(results, interrupted or bool(missing), uncovered_blocks=(
            (first.get("release") or {}).get("uncovered", "blocker") == "blocker")),
        "summary": summarize(results),
        "selected": list(first["all_cells"]),
        "shard": "1/1",
        "shards": [{"shard": r["shard"], "run_id": r.get("run_id"), "host": r.get("host"),
                    "seconds": r.get("seconds"), "exit_code": r.get("exit_code")}
                   for r in sorted(reports, key=lambda r: _shard_of(r)[0])],
        "cells": cells,
    })
    return data, results


def main(argv: Sequence[str], out: Console) -> int:
    """Merge, write the reports, print one line; return the unsharded run's exit code."""
    opts = parser().parse_args(list(argv))
    reports = [load(p) for p in opts.reports]
    check(reports)
    data, results = merged(reports)
    junit = report.junit_tree(f"smoke {data.get('wheel', {}).get('file', '')}", results)
    paths = report.write_documents(opts.report_dir, data, junit)
    counts = ", ".join(f"{n} {v.value}" for v in Verdict
                       if (n := sum(r.verdict is v for r in results)))
    out.print(f"merged {len(reports)} shard{'s' if len(reports) != 1 else ''}: "
              f"{counts or 'no cells'}; reports: {paths['json']}, {paths['junit']}, "
              f"{paths['summary']}; exit {data['exit_code']}", highlight=False)
    return int(data["exit_code"])
