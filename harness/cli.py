"""Command line: a pipeline of plain task functions.

parse args -> load matrix -> expand + select cells -> resolve wheel -> prepare -> run cells
-> write reports -> exit code (0 all PASS, 1 any FAIL/INVALID/TIMEOUT, 2 bad input or
infrastructure, 130 interrupted).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console
from rich.markup import escape

from harness import (
    arguments,
    config,
    console,
    floor,
    follow,
    kinds,
    matrix,
    outcome,
    release,
    report,
    shard,
    timing,
    wheel,
)
from harness import cells as cells_mod
from harness.arguments import DEFAULT_MATRIX as DEFAULT_MATRIX  # re-exported
from harness.arguments import parser
from harness.errors import (
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_PASS,
    HarnessError,
    InputError,
    closed_pipe,
)
from harness.prepare import start as prepare  # each kind in its own thread
from harness.report_schema import ReportDoc
from harness.runner import RunContext, Staged, run_all, run_directory
from harness.stop import STOP_SIGNALS, Stopped, StopSignals
from harness.verdict import CellResult, Verdict

if TYPE_CHECKING:  # imported with --prepublish only (the audit's libraries are heavy)
    from harness import gate

PREPARE_GRACE = 5.0  # seconds a stopped prepare (an image build) gets to unwind


@dataclass(frozen=True, kw_only=True)
class Options:
    """What the command line asked for, checked."""

    dist: tuple[Path, ...]  # a wheel, a dist/ directory, or wheel and sdist files
    matrix: Path
    matrix_source: config.MatrixSource | None = None  # how the matrix was found (None: given)
    warnings: tuple[str, ...] = ()  # e.g. a misspelled Q_KANGAROO_SMOKE_* variable
    select: tuple[str, ...] = ()
    jobs: int | None = None
    timeout: float | None = None
    report_dir: Path = Path("reports")
    keep_failed: bool = False
    build_images: bool = True
    list_only: bool = False
    list_format: str = "text"
    shard: shard.Shard = shard.WHOLE
    prepublish: bool = False
    version: str | None = None  # the release set's version (default: newest final)
    prereleases: bool = False
    verbosity: int = 0  # -v minus -q


def parse_options(argv: Sequence[str] | None) -> Options:
    """argv (and Q_KANGAROO_SMOKE_* variables) -> Options; numbers that make no sense are an
    InputError."""
    argv = list(sys.argv[1:] if argv is None else argv)
    arguments.check_old_spellings(argv)
    p = parser()
    from_env = config.apply_environment(p, os.environ)
    warnings = config.misspelled_variables(p, os.environ)
    a = p.parse_intermixed_args(argv)
    source = config.find_matrix(a.matrix, from_env="matrix" in from_env and not any(
        x.split("=", 1)[0] == "--matrix" for x in argv))
    if a.timeout is not None and not (math.isfinite(a.timeout) and a.timeout > 0):
        raise InputError(f"--timeout {a.timeout:g}: give a finite number of seconds above 0")
    if a.jobs is not None and a.jobs < 1:
        raise InputError(f"--jobs {a.jobs}: give at least 1")
    if any(not s.strip(" ,") for s in a.select):
        raise InputError("--select '': an empty pattern; give a cell id or pattern "
                         "(python -m harness --list shows them)")
    return Options(dist=tuple(a.dist), version=a.release_version, prereleases=a.pre,
                   matrix=source.path, matrix_source=source, warnings=tuple(warnings),
                   select=tuple(a.select), jobs=a.jobs,
                   timeout=a.timeout, report_dir=a.report_dir, keep_failed=a.keep_failed,
                   build_images=not a.no_build_images, list_only=a.list,
                   list_format=a.format,
                   shard=shard.parse(a.shard) if a.shard is not None else shard.WHOLE,
                   prepublish=a.prepublish, verbosity=arguments.verbosity(a))


def load_cells(opts: Options) -> tuple[matrix.Matrix, list[cells_mod.Cell]]:
    """Matrix -> the selected cells (with any timeout override)."""
    src = opts.matrix_source
    m = matrix.load_found(src) if src is not None else matrix.load(opts.matrix)
    cells = cells_mod.select(cells_mod.expand(m), opts.select)
    cells_mod.check(cells, str(m.path))
    if opts.timeout is not None:
        cells = [replace(c, timeout=opts.timeout) for c in cells]
    return m, cells


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


def list_cells(cells: Sequence[cells_mod.Cell], fmt: str = "text") -> int:
    """Print one cell per line: id, kind, interpreter or image, aliases (or a JSON array)."""
    if fmt == "json":
        print(json.dumps(shard.job_list(cells)))
        return EXIT_PASS
    for c in cells:
        target = next(iter(kinds.of(c).fields(c).values()), None)
        aliases = f"  (also: {', '.join(c.aliases)})" if c.aliases else ""
        print(f"{c.id}\t{c.kind}\t{target}{aliases}")
    return EXIT_PASS


def check_wheel_fits(info: wheel.WheelInfo, cells: Sequence[cells_mod.Cell]) -> None:
    """Refuse up front a single wheel none of the selected cells can install (in a release
    set, such a wheel is simply another platform's)."""
    where = [kinds.of(c).platform(c) for c in cells]
    if not any(t.interpreter.startswith(("py3", "cp3", "pp3"))
               and (t.platform == "any" or any(p.installs(t.platform) for p in where))
               for t in info.tags):
        tags = ", ".join(sorted(str(t) for t in info.tags))
        systems = ", ".join(sorted({str(p) for p in where}))
        raise InputError(f"{info.path}: no cell can install this wheel (tags {tags}; the "
                         f"cells are {systems}, Python 3); pass a wheel built for them")


def announce_release(out: Console, release: wheel.Release) -> None:
    """The set's files (name, sha256) and every file given but not tested, with why."""
    files = release.files
    if len(files.files) == 1:
        return
    out.print(f"[bold]release set {files.distribution} {files.version}[/]: "
              f"{len(files.wheels)} wheel{'s' if len(files.wheels) != 1 else ''}, "
              f"{len(files.sdists)} sdist{'s' if len(files.sdists) != 1 else ''}",
              highlight=False)
    for w in release.wheels:
        out.print(f"  {escape(w.filename)}  sha256 {w.sha256[:16]}…", highlight=False)
    for d in files.sdists:
        out.print(f"  {escape(d.filename)}  (sdist: what uncovered cells would build)",
                  highlight=False)
    for item in files.ignored:
        out.print(f"  [dim]ignored {escape(item.path.name)}: {escape(item.reason)}[/]",
                  highlight=False)


def stop_aware_log(out: Console, stop: threading.Event) -> Callable[[str], None]:
    """Prepare's log; once a stop signal came it raises in the (worker) thread calling it,
    which unwinds an image build in progress (never called from a signal handler)."""
    def log(line: str) -> None:
        if stop.is_set():
            raise Stopped
        out.print(escape(line), highlight=False)
    return log


def run(opts: Options, out: Console, stop: StopSignals) -> int:
    """The whole pipeline for one release; a stop signal ends it early with the report
    written."""
    for warning in opts.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if opts.matrix_source is not None:
        out.print(escape(opts.matrix_source.describe()), highlight=False)
    m, selected = load_cells(opts)
    cells = shard.select(selected, opts.shard)
    timing.mark("matrix and cells")
    if opts.list_only:
        return list_cells(cells, opts.list_format)
    found, checked = read_release(opts, m)
    followed = follow.follow(m, cells_mod.expand(m),
                             [t.platform for w in checked.wheels for t in w.tags])
    selected = [*selected, *follow_selected(opts, m, followed)]
    cells = shard.select(selected, opts.shard)
    if len(checked.wheels) == 1:
        check_wheel_fits(checked.wheels[0], cells)
    writable_report_dir(opts.report_dir)
    gate_run = (start_gate(opts, m, found, followed.added) if opts.prepublish
                else None)  # audit beside cells
    plan = Plan(opts=opts, matrix=m, selected=tuple(selected), cells=tuple(cells),
                jobs=opts.jobs or m.jobs or os.cpu_count() or 2, started=time.time(),
                notes=follow_notes(opts, followed))
    with run_directory([w.path for w in checked.wheels],
                       m.package.dependencies_from) as staged:
        timing.mark("staging")
        release = checked.staged(staged.wheels)  # byte copies; each cell re-hashes them
        announce(out, plan, checked, release)
        results = run_cells(plan, staged, release, out, stop)
        written, failure = write_reports(
            opts.report_dir, lambda interrupted: run_info(plan, staged.run_id, checked,
                                                          results, interrupted),
            results, stop.event, decorate=gate_run.add_to if gate_run else None)
        timing.mark("reports")
    return finish(out, opts, results, written, failure, gate_run, stop)


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What one run does: the options, the matrix, the cells (this shard's and the whole
    selection), how many at once, and when it started."""

    opts: Options
    matrix: matrix.Matrix
    selected: tuple[cells_mod.Cell, ...]  # the unsharded selection
    cells: tuple[cells_mod.Cell, ...]  # what this run runs
    jobs: int
    started: float
    notes: tuple[str, ...] = ()  # what following the release added, or why not


def read_release(opts: Options, m: matrix.Matrix) -> tuple[release.ReleaseSet, wheel.Release]:
    """The release set the user gave, its wheels read (bad wheels refused now, named as the
    user gave them)."""
    if not opts.dist:
        raise InputError("no wheel given; pass a .whl, a dist/ directory or wheel and sdist "
                         f"files ({arguments.program_name()} --help)")
    found = wheel.resolve(opts.dist, m.package, version=opts.version,
                          prereleases=opts.prereleases, source=str(m.path))
    timing.mark("release: find files")
    checked = wheel.read_release(found)
    timing.mark("release: read and hash")
    return found, checked


def follow_selected(opts: Options, m: matrix.Matrix,
                    followed: follow.Followed) -> list[cells_mod.Cell]:
    """The cells following the release added that ``--select`` picks (all without it); none
    in a ``--shard`` run, whose slices are those of the matrix's cells (``--list``)."""
    if opts.shard != shard.WHOLE:
        return []
    patterns = [p for raw in opts.select for p in raw.split(",") if p]
    added = [c for c in followed.added if not patterns or any(c.matches(p) for p in patterns)]
    cells_mod.check(added, str(m.path))
    if opts.timeout is not None:
        added = [replace(c, timeout=opts.timeout) for c in added]
    return added


def follow_notes(opts: Options, followed: follow.Followed) -> tuple[str, ...]:
    """What following the release did, for the console."""
    if opts.shard == shard.WHOLE or not followed.added:
        return followed.notes
    return ("the release's other architectures get no emulated cells in a --shard run "
            "(slices of the matrix's own cells): give them cells in the matrix "
            "(environments.container with arch:)",)


def announce(out: Console, plan: Plan, checked: wheel.Release, staged: wheel.Release) -> None:
    """The release's files, then one line: what is tested, in how many cells, how many at
    once."""
    announce_release(out, checked)
    for note in plan.notes:
        out.print(escape(note), highlight=False)
    opts, cells = plan.opts, plan.cells
    part = f" (shard {opts.shard} of {len(plan.selected)})" if opts.shard != shard.WHOLE else ""
    single = staged.wheels[0] if len(staged.files.files) == 1 else None
    what = f"a wheel (sha256 {single.sha256[:16]}…)" if single else escape(staged.label)
    out.print(f"testing {what} in {len(cells)} cell{'s' if len(cells) != 1 else ''}{part}, "
              f"{plan.jobs} at a time" + (":" if single else ""), highlight=False)
    if single:  # the name on a line of its own: a log read at 80 columns
        out.print(f"  [bold]{escape(single.filename)}[/]", highlight=False)


def run_cells(plan: Plan, staged: Staged, release: wheel.Release, out: Console,
              stop: StopSignals) -> list[CellResult]:
    """Run the cells with live progress while what they share is prepared: each kind in its
    own thread, a cell waits for its own kind only (none starts once a stop signal came)."""
    m, opts, cells = plan.matrix, plan.opts, list(plan.cells)
    ctx = RunContext(run_id=staged.run_id, root=staged.root, release=release,
                     package=m.package, dependencies=staged.dependencies,
                     interrupted=stop.event)
    preparing = prepare(cells, run_id=staged.run_id, root=staged.root, package=m.package,
                        log=stop_aware_log(out, stop.event), stop=stop.event,
                        keep_failed=opts.keep_failed, build_images=opts.build_images)
    with console.Progress(cells, out, verbosity=opts.verbosity) as progress:
        results = run_all(cells, ctx, preparing.environment, jobs=plan.jobs,
                          on_start=progress.started, on_result=progress.finished)
    results = floor.with_twins(results, cells)  # a floor cell's failure beside its twin
    timing.mark("cells")
    if stop.event.is_set():  # stopped mid-prepare: a build unwinds at its next log line
        with contextlib.suppress(Exception):
            preparing.wait(PREPARE_GRACE)
    return results


def run_info(plan: Plan, run_id: str, checked: wheel.Release, results: Sequence[CellResult],
             interrupted: bool) -> report.RunInfo:
    """The run as the reports say it; its exit code is harness.outcome's."""
    m, coverage = plan.matrix, outcome.Coverage.of(plan.matrix.release)
    code = outcome.exit_code(results, interrupted=interrupted, coverage=coverage) \
        if plan.cells else EXIT_PASS  # an empty shard
    return report.RunInfo(run_id=run_id, matrix=str(m.path), release=checked,
                          coverage=coverage, started=plan.started, finished=time.time(),
                          interrupted=interrupted, exit_code=code,
                          selected=tuple(c.id for c in plan.cells),
                          matrix_sha256=shard.matrix_digest(m, plan.selected),
                          shard=str(plan.opts.shard),
                          all_cells=tuple(c.id for c in plan.selected))


def finish(out: Console, opts: Options, results: Sequence[CellResult], written: report.RunInfo,
           failure: report.ReportWriteError | None, gate_run: gate.Prepublish | None,
           stop: StopSignals) -> int:
    """The summary, the go / no-go when asked, and the last line; returns the exit code."""
    interrupted = written.interrupted
    code = written.exit_code
    console.summary(out, results, verbosity=opts.verbosity, coverage=written.coverage)
    timing.mark("summary")
    counts = ", ".join(f"{n} {v.value}" for v in Verdict
                       if (n := sum(r.verdict is v for r in results)))
    if failure is not None:
        code = code or EXIT_INPUT
        out.print(f"[red]error:[/] {escape(str(failure))}", highlight=False)
        reports = "reports not written"
    else:
        reports = "reports: " + ", ".join(str(p.absolute()) for p in
                                           report.paths(opts.report_dir).values())
    if gate_run is not None:
        code = run_gate(gate_run, out, code, interrupted=interrupted or failure is not None)
    stopped = f" (interrupted by {stop.name})" if interrupted else ""
    out.print(f"{counts or 'no cells ran'}{stopped}; {reports}; exit {code}", highlight=False)
    return code


def start_gate(opts: Options, m: matrix.Matrix, found: release.ReleaseSet,
               added: Sequence[cells_mod.Cell] = ()) -> gate.Prepublish:
    """The pre-publish gate over the release set the cells test (the matrix's cells and
    those following the release ``added``); its audit starts now."""
    from harness import gate

    if opts.shard != shard.WHOLE:
        raise InputError("--prepublish with --shard: the gate needs every cell; run it "
                         "unsharded (or merge the shards and audit separately)")
    whole = [*cells_mod.expand(m), *added]
    release_arches = follow.release_arches(t.platform for w in found.wheels for t in w.tags)
    return gate.Prepublish(found, m.release, m.package.bundled_libraries,
                           matrix_cells=tuple(c.id for c in whole),
                           runnable=follow.runnable(whole, release_arches))


def run_gate(gate_run: gate.Prepublish, out: Console, code: int, *, interrupted: bool) -> int:
    """Print the go / no-go; its exit code (0 go, 1 no-go, 2 unjudged) replaces the cells'
    unless the run was interrupted or the reports could not be written."""
    from harness import gate

    decision = gate_run.decision
    if decision is None:
        return code or EXIT_INPUT
    console.annotate_decision(out, decision)
    for line in gate.decision_lines(decision):
        out.print(escape(line), highlight=False,
                  style=None if not line.startswith(("GO", "NO-GO")) else
                  "bold green" if decision.go else "bold red")
    return code if interrupted else decision.exit_code


def write_reports(report_dir: Path, run_info: Callable[[bool], report.RunInfo],
                  results: Sequence[CellResult], stop: threading.Event, *,
                  decorate: Callable[[ReportDoc], ReportDoc] | None = None
                  ) -> tuple[report.RunInfo, report.ReportWriteError | None]:
    """Write the reports (``decorate`` adds sections to the JSON first, e.g. the gate's);
    again, marked interrupted, if a stop signal came while writing."""
    while True:
        interrupted = stop.is_set()
        info = run_info(interrupted)
        try:
            if decorate is None:
                report.write(report_dir, info, results)
            else:
                report.write_documents(report_dir, decorate(report.to_json(info, results)),
                                       report.to_junit(info, results))
        except report.ReportWriteError as exc:
            return info, exc
        if stop.is_set() == interrupted:
            return info, None


def main(argv: Sequence[str] | None = None, *, stop: StopSignals | None = None) -> int:
    """Entry point; every bad input is one line and exit 2.  Without ``stop`` (in-process
    callers), the stop handlers are installed for the call and given back after it."""
    own = stop is None
    signals = stop or StopSignals().install()
    args = list(sys.argv[1:] if argv is None else argv)
    timing.mark("imports")
    out = console.make_console(arguments.color_choice(args, os.environ))
    try:
        command = COMMANDS.get(args[0]) if args else None
        if command is not None:
            return command(args[1:], out)
        return run(parse_options(args), out, signals)
    except HarnessError as exc:
        for line in str(exc).splitlines():
            out.print(f"[red]error:[/] {escape(line)}", highlight=False)
        return EXIT_INTERRUPTED if signals.event.is_set() else exc.exit_code
    except BrokenPipeError:  # stdout's reader went away (`--list | head`): no traceback
        return closed_pipe(sys.stdout)
    finally:
        timing.mark("gate and exit code")
        timing.write()
        if own:
            signals.uninstall()


def merge_command(argv: Sequence[str], out: Console) -> int:
    """``python -m harness merge``: shard reports -> one report (harness.merge)."""
    from harness import merge

    return merge.main(argv, out)


#: subcommands: the first argument -> its task (anything else is a run)
COMMANDS: dict[str, Callable[[Sequence[str], Console], int]] = {"merge": merge_command}


def entry(stop: StopSignals | None = None) -> NoReturn:
    """The program (console script, ``python -m harness``): handlers kept until exit."""
    stop = stop or StopSignals().install()
    code = main(stop=stop)
    # The outcome is decided and reported: a late signal of the same storm (nox forwards
    # what the group already got) must not kill the interpreter while it finalises, when
    # Python hands SIGINT/SIGTERM back to their default action.
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            closed_pipe(stream)
    if stop.event.is_set() and any(not t.daemon and t is not threading.main_thread()
                                   for t in threading.enumerate()):
        os._exit(code)  # an abandoned image build must not hold the exit (the engine cancels it)
    sys.exit(code)


if __name__ == "__main__":
    entry()
