"""Shard reports -> one report: ``python -m harness merge REPORT_DIR... [--report-dir OUT]``.

The merged JSON, JUnit XML and markdown summary are what one unsharded run would have
written, with the same exit code (harness.outcome). Reports that cannot be parts of one run
are refused (exit 2, one line): another schema version, wheel or release set, another matrix
or selection, a shard given twice or missing, a cell reported twice or missing, a cell whose
stored verdict is not what its checks give (re-derived with the verdict's own rule).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from harness import arguments, console, outcome, report
from harness.errors import InputError
from harness.report_schema import ReportDoc, ShardDoc, read
from harness.verdict import CellResult, Verdict, conclude, summarize


def parser() -> argparse.ArgumentParser:
    """The ``merge`` subcommand's interface."""
    p = argparse.ArgumentParser(
        prog=f"{arguments.program_name()} merge", parents=[arguments.output_options()],
        description="Merge the reports of shards (--shard I/N) into one report, summary and "
                    "exit code, as one unsharded run would give.")
    p.add_argument("reports", nargs="+", type=Path,
                   help="report directories (holding smoke.json) or smoke.json files")
    p.add_argument("--report-dir", type=Path, default=Path("reports"),
                   help="where the merged smoke.json, smoke.junit.xml, smoke.md go")
    return p


class Shard:
    """One shard's report and where it came from."""

    def __init__(self, path: Path) -> None:
        self.file = str(path / "smoke.json" if path.is_dir() else path)
        self.data: ReportDoc = read(path)
        index, _, count = str(self.data["shard"]).partition("/")
        try:
            self.index, self.count = int(index), int(count)
        except ValueError:
            raise InputError(f"{self.file}: shard {self.data['shard']!r} is not I/N") from None


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


def _artifacts(data: ReportDoc) -> tuple[str, frozenset[str]]:
    """What was tested: the wheel's sha256 and those of its release set."""
    return data["wheel"]["sha256"], frozenset(_sha256s(data["release"]))


def check(shards: Sequence[Shard]) -> None:
    """Refuse reports that are not the shards of one run, each exactly once, every cell
    once."""
    first = shards[0]
    for other in shards[1:]:
        where = f"{other.file} and {first.file}"
        mine, theirs = _artifacts(other.data), _artifacts(first.data)
        if mine[0] != theirs[0]:
            raise InputError(f"{where} tested different wheels (sha256 {mine[0][:12]}… vs "
                             f"{theirs[0][:12]}…); merge the shards of one run only")
        if mine != theirs:
            raise InputError(f"{where} tested different release sets (sha256s differ); "
                             "merge the shards of one run only")
        if (other.data["matrix_sha256"], other.data["all_cells"]) != (
                first.data["matrix_sha256"], first.data["all_cells"]):
            raise InputError(f"{where} ran different matrices or selections (matrix sha256 "
                             "or cell list differ); give every shard the same --matrix, "
                             "--select and --timeout")
    counts = {s.count for s in shards}
    if len(counts) != 1:
        raise InputError(f"shards of different counts ({', '.join(s.data['shard'] for s in shards)}"
                         "); merge the shards of one --shard I/N split")
    count = counts.pop()
    seen: dict[int, str] = {}
    for s in shards:
        if s.index in seen:
            raise InputError(f"shard {s.data['shard']} given twice ({seen[s.index]}, {s.file})")
        seen[s.index] = s.file
    missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in seen]
    if missing:
        raise InputError(f"shard{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                         f"missing; pass every shard's report directory")
    cells: dict[str, str] = {}
    for s in shards:
        for cell in s.data["cells"]:
            if cell["id"] in cells:
                raise InputError(f"cell {cell['id']} reported twice ({cells[cell['id']]}, "
                                 f"{s.file}); merge the shards of one run only")
            cells[cell["id"]] = s.file
    unknown = sorted(set(cells) - set(first.data["all_cells"]))
    if unknown:
        raise InputError(f"cells {', '.join(unknown)} are not in the run's selection; "
                         "merge the shards of one run only")
    for s in shards:
        lost = [cid for cid in s.data["selected"] if cid not in cells]
        if lost:
            raise InputError(f"{s.file}: cell{'s' if len(lost) > 1 else ''} {', '.join(lost)} "
                             f"of shard {s.data['shard']} missing from its report; rerun that "
                             "shard")
    lost = [cid for cid in first.data["all_cells"] if cid not in cells]
    if lost:
        raise InputError(f"cell{'s' if len(lost) > 1 else ''} {', '.join(lost)} of the run's "
                         "selection missing from every shard's report; rerun the shards")


def rederived(shards: Sequence[Shard]) -> list[CellResult]:
    """Every cell back as a result, its stored verdict checked against the one its checks
    and run facts give (harness.verdict.conclude, the rule every run uses)."""
    results = []
    for s in shards:
        for cell in s.data["cells"]:
            try:
                result = report.result_from_json(cell)
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{s.file}: cell {cell.get('id')!r} is not a report cell of "
                                 f"this harness ({exc!r}); rerun that shard") from None
            derived, _ = conclude(result.run, result.checks)
            if derived is not result.verdict:
                raise InputError(f"{s.file}: cell {result.cell_id} says {result.verdict.value} "
                                 f"but its checks give {derived.value}: the report was edited "
                                 "or is damaged; rerun that shard")
            results.append(result)
    return results


def merged(shards: Sequence[Shard]) -> tuple[ReportDoc, list[CellResult]]:
    """The report one unsharded run would have written, and its cells as results."""
    first = shards[0].data
    order = {cid: i for i, cid in enumerate(first["all_cells"])}
    results = sorted(rederived(shards), key=lambda r: order[r.cell_id])
    by_id = {c["id"]: c for s in shards for c in s.data["cells"]}
    interrupted = any(s.data["interrupted"] for s in shards)
    coverage = outcome.Coverage.from_json(first["release"].get("coverage"))
    data: ReportDoc = {**first}
    data.update({
        "run_id": "merged-" + "+".join(sorted(s.data["run_id"] for s in shards)),
        "started": min(s.data["started"] for s in shards),
        "seconds": round(max(float(s.data["seconds"]) for s in shards), 3),
        "interrupted": interrupted,
        "exit_code": outcome.exit_code(results, interrupted=interrupted, coverage=coverage),
        "summary": summarize(results),
        "selected": list(first["all_cells"]),
        "shard": "1/1",
        "shards": [ShardDoc(shard=s.data["shard"], run_id=s.data["run_id"],
                            host=s.data["host"], seconds=s.data["seconds"],
                            exit_code=s.data["exit_code"])
                   for s in sorted(shards, key=lambda s: s.index)],
        "cells": [by_id[r.cell_id] for r in results],
    })
    return data, results


def main(argv: Sequence[str], out: Console) -> int:
    """Merge, write the reports, print one line; return the unsharded run's exit code."""
    opts = parser().parse_args(list(argv))
    shards = [Shard(p) for p in opts.reports]
    check(shards)
    data, results = merged(shards)
    coverage = outcome.Coverage.from_json(data["release"].get("coverage"))
    junit = report.junit_tree(f"smoke {data['wheel']['file']}", results, coverage)
    paths = report.write_documents(opts.report_dir, data, junit)
    # the table and every failure; the annotations came from the cells' own runs
    console.summary(out, results, live_shown=False, verbosity=arguments.verbosity(opts),
                    coverage=coverage, annotate=False)
    counts = ", ".join(f"{n} {v.value}" for v in Verdict
                       if (n := sum(r.verdict is v for r in results)))
    out.print(f"merged {len(shards)} shard{'s' if len(shards) != 1 else ''}: "
              f"{counts or 'no cells'}; reports: {paths['json']}, {paths['junit']}, "
              f"{paths['summary']}; exit {data['exit_code']}", highlight=False)
    return data["exit_code"]
