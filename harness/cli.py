"""Command line: a pipeline of plain task functions.

parse args -> load matrix -> expand + select cells -> resolve wheel -> prepare -> run cells
-> write reports -> exit code (0 all PASS, 1 any FAIL/INVALID/TIMEOUT, 2 bad input or
infrastructure, 130 interrupted).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness import cells as cells_mod
from harness import console, matrix, report, wheel
from harness.errors import (
    EXIT_FAIL,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_PASS,
    HarnessError,
    InputError,
)
from harness.prepare import prepare
from harness.runner import RunContext, run_all, run_directory
from harness.verdict import CellResult, Verdict

DEFAULT_MATRIX = Path(__file__).resolve().parent.parent / "matrix.yaml"


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        prog="python -m harness",
        description="Prove a wheel installs and works on clean machines: fresh venvs and "
                    "containers per matrix.yaml, GMP made unreachable, honest verdicts.",
        epilog="Exit codes: 0 all PASS; 1 any FAIL (or INVALID/TIMEOUT without ERROR); 2 bad "
               "input, or any ERROR without a FAIL; 130 interrupted.")
    p.add_argument("wheel", nargs="?", type=Path,
                   help="the wheel to test, or a directory holding it")
    p.add_argument("--matrix", type=Path, default=DEFAULT_MATRIX, help="matrix file")
    p.add_argument("--select", "-k", action="append", default=[], metavar="PATTERN",
                   help="only cells whose id or alias matches (fnmatch; repeatable; a,b)")
    p.add_argument("--jobs", "-j", type=int, default=None,
                   help="cells at once (default: matrix defaults.jobs, else CPU count)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per cell (override)")
    p.add_argument("--report-dir", type=Path, default=Path("reports"),
                   help="where smoke.json and smoke.junit.xml go (default: reports/)")
    p.add_argument("--keep-failed", action="store_true",
                   help="keep failed cells' containers and print how to enter them")
    p.add_argument("--no-build-images", action="store_true",
                   help="do not build missing images (their cells are ERROR)")
    p.add_argument("--list", action="store_true", help="list the cells and exit")
    return p


@dataclass(frozen=True, kw_only=True)
class Options:
    """What the command line asked for, checked."""

    wheel: Path | None
    matrix: Path
    select: tuple[str, ...] = ()
    jobs: int | None = None
    timeout: float | None = None
    report_dir: Path = Path("reports")
    keep_failed: bool = False
    build_images: bool = True
    list_only: bool = False


def parse_options(argv: Sequence[str] | None) -> Options:
    """argv -> Options; numbers that make no sense are an InputError."""
    a = parser().parse_args(argv)
    if a.timeout is not None and a.timeout <= 0:
        raise InputError(f"--timeout {a.timeout:g}: give a number of seconds above 0")
    if a.jobs is not None and a.jobs < 1:
        raise InputError(f"--jobs {a.jobs}: give at least 1")
    if any(not s.strip(" ,") for s in a.select):
        raise InputError("--select '': an empty pattern; give a cell id or pattern "
                         "(python -m harness --list shows them)")
    return Options(wheel=a.wheel, matrix=a.matrix, select=tuple(a.select), jobs=a.jobs,
                   timeout=a.timeout, report_dir=a.report_dir, keep_failed=a.keep_failed,
                   build_images=not a.no_build_images, list_only=a.list)


def load_cells(opts: Options) -> tuple[matrix.Matrix, list[cells_mod.Cell]]:
    """Matrix -> the selected cells (with any timeout override)."""
    m = matrix.load(opts.matrix)
    cells = cells_mod.select(cells_mod.expand(m), opts.select)
    check_images(m, cells)
    if opts.timeout is not None:
        cells = [replace(c, timeout=opts.timeout) for c in cells]
    return m, cells


def check_images(m: matrix.Matrix, cells: Sequence[cells_mod.Cell]) -> None:
    """A bare name must be a recipe; anything else must look like an image reference."""
    from harness.imaging import load_recipes

    recipes = load_recipes()
    for cell in cells:
        ref = cell.image
        if ref and ref not in recipes and not any(ch in ref for ch in ":/@"):
            raise InputError(f"{m.path}: environments.container: image {ref!r} is not a recipe "
                             f"under images/ ({', '.join(sorted(recipes))}); for an image "
                             f"reference give its tag, e.g. {ref}:latest")


def writable_report_dir(path: Path) -> None:
    """Refuse an unusable report directory before any cell runs."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe_file = path / ".write-test"
        probe_file.write_text("")
        probe_file.unlink()
    except OSError as exc:
        raise InputError(f"--report-dir {path}: cannot write reports there "
                         f"({exc.strerror}); pass a writable directory") from exc


def list_cells(cells: Sequence[cells_mod.Cell]) -> int:
    """Print one cell per line: id, kind, interpreter or image, aliases."""
    for c in cells:
        target = c.image if c.kind == "container" else c.python
        aliases = f"  (also: {', '.join(c.aliases)})" if c.aliases else ""
        print(f"{c.id}\t{c.kind}\t{target}{aliases}")
    return EXIT_PASS


def exit_code(results: Sequence[CellResult], interrupted: bool) -> int:
    """0 all PASS; 1 a wheel or environment verdict; 2 could not judge; 130 interrupted."""
    verdicts = {r.verdict for r in results}
    if interrupted:
        return EXIT_INTERRUPTED
    if Verdict.FAIL in verdicts:
        return EXIT_FAIL
    if Verdict.ERROR in verdicts:
        return EXIT_INPUT
    if verdicts - {Verdict.PASS}:
        return EXIT_FAIL
    return EXIT_PASS if results else EXIT_INPUT


def run(opts: Options, out: Console) -> int:
    """The whole pipeline for one wheel."""
    m, cells = load_cells(opts)
    if opts.list_only:
        return list_cells(cells)
    if opts.wheel is None:
        raise InputError("no wheel given; pass a .whl or a directory of wheels "
                                "(`nox -s smoke` builds the fixture wheel for you)")
    wheel_path = wheel.resolve(opts.wheel, m.package)
    checked = wheel.inspect(wheel_path)  # bad wheels refused now, named as the user gave them
    writable_report_dir(opts.report_dir)
    started = time.time()
    jobs = opts.jobs or m.jobs or os.cpu_count() or 2
    with run_directory(wheel_path) as (run_id, root, staged):
        info = replace(checked, path=staged)  # a byte copy; each cell re-hashes what it installs
        out.print(f"[bold]{info.filename}[/] sha256 {info.sha256[:16]}… — {len(cells)} "
                  f"cell{'s' if len(cells) != 1 else ''}, {jobs} at a time", highlight=False)
        ctx = RunContext(run_id=run_id, root=root, wheel=info, package=m.package)
        results: list[CellResult] = []
        try:
            prepared = prepare(cells, run_id=run_id, root=root, package=m.package,
                               log=lambda line: out.print(escape(line), highlight=False),
                               keep_failed=opts.keep_failed, build_images=opts.build_images)
            with console.Progress(cells, out) as progress:
                results = run_all(cells, ctx, prepared.environment, jobs=jobs,
                                  on_start=progress.started, on_result=progress.finished)
        except KeyboardInterrupt:
            ctx.interrupted.set()
        interrupted = ctx.interrupted.is_set()
        code = exit_code(results, interrupted)
        run_info = report.RunInfo(run_id=run_id, matrix=str(m.path), wheel=info,
                                  started=started, finished=time.time(),
                                  interrupted=interrupted, exit_code=code,
                                  selected=tuple(c.id for c in cells))
        paths = report.write(opts.report_dir, run_info, results)
    console.summary(out, results, live_shown=out.is_terminal)
    counts = ", ".join(f"{n} {v.value}" for v in Verdict
                       if (n := sum(r.verdict is v for r in results)))
    out.print(f"{counts or 'no cells ran'}{' (interrupted)' if interrupted else ''}; "
              f"reports: {paths['json']}, {paths['junit']}; exit {code}", highlight=False)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; every bad input is one line and exit 2."""
    out = Console(stderr=True, soft_wrap=True)
    try:
        return run(parse_options(argv), out)
    except HarnessError as exc:
        for line in str(exc).splitlines():
            out.print(f"[red]error:[/] {escape(line)}", highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        out.print("[red]interrupted[/]")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
