"""results -> the console, for people and for CI logs.

On a terminal: a live table while cells run.  Elsewhere (a CI log, a file): one line per
finished cell.  Then a compact table (full cell ids; each tested file once, in a legend) and
every failed check with its diagnosis; on GitHub Actions each cell's detail is a collapsed
group and every blocker an ``::error`` annotation.  Colour follows ``--color`` and, for
``auto``, the variables pytest honours (PY_COLORS, NO_COLOR, FORCE_COLOR, TERM=dumb).
"""

from __future__ import annotations

import io
import os
import sys
import textwrap
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, TextIO, cast

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from harness import github, outcome
from harness.cells import Cell
from harness.errors import closed_pipe
from harness.verdict import CellResult, CheckStatus, Verdict

if TYPE_CHECKING:
    from harness.gate import Decision

COLOR_CHOICES = ("auto", "always", "never")
STYLE = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.INVALID: "magenta",
         Verdict.TIMEOUT: "yellow", Verdict.ERROR: "bold red", Verdict.UNCOVERED: "cyan"}
MARKS = {CheckStatus.PASS: "✓", CheckStatus.FAIL: "✗", CheckStatus.SKIP: "-",
         CheckStatus.NOT_RUN: "·", CheckStatus.TIMEOUT: "⧗", CheckStatus.ERROR: "!"}
BAD = (CheckStatus.FAIL, CheckStatus.ERROR, CheckStatus.TIMEOUT)


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace (installer output is multi-line) and cut."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --- the console ----------------------------------------------------------------------------


def wants_color(choice: str, stream: TextIO, environ: Mapping[str, str]) -> bool:
    """``--color``: always / never; auto decides as pytest does."""
    if choice != "auto":
        return choice == "always"
    if environ.get("PY_COLORS") in ("0", "1"):
        return environ["PY_COLORS"] == "1"
    if environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR"):
        return True
    return is_tty(stream, environ)


def is_tty(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """A real terminal (FORCE_COLOR colours a log, it does not make it one)."""
    try:
        return stream.isatty() and environ.get("TERM") != "dumb"
    except (ValueError, OSError):
        return False


class PipeSafe(io.TextIOBase):
    """A stream whose reader may go away (``| head``): once the pipe is closed, writes are
    dropped (the run goes on: its reports are still written, its exit code kept)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._closed_pipe()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._closed_pipe()

    def isatty(self) -> bool:
        return is_tty(self.stream, {})

    def fileno(self) -> int:
        return self.stream.fileno()

    def _closed_pipe(self) -> None:
        self.broken = True
        closed_pipe(self.stream)


def make_console(color: str = "auto", *, stream: TextIO | None = None,
                 environ: Mapping[str, str] | None = None) -> Console:
    """The harness's console (stderr): coloured as ``--color`` says, live only on a real
    terminal, never wrapped by rich (lines are cut to fit where that matters)."""
    stream = stream or sys.stderr
    environ = os.environ if environ is None else environ
    color_on = wants_color(color, stream, environ)
    live = is_tty(stream, environ)
    return Console(file=cast(IO[str], PipeSafe(stream)), soft_wrap=True, highlight=False,
                   force_terminal=live or color_on, no_color=not color_on,
                   color_system=("auto" if live else "standard") if color_on else None,
                   _environ=dict(environ))


def is_live(console: Console) -> bool:
    """Whether the live table can redraw in place (a real terminal, not a coloured log)."""
    file = console.file
    return console.is_terminal and bool(getattr(file, "isatty", lambda: False)())


# --- pieces ---------------------------------------------------------------------------------


def files_legend(results: Iterable[CellResult]) -> dict[str, str]:
    """Each distinct tested file -> its short key ("1", "2", ...), in first-seen order."""
    keys: dict[str, str] = {}
    for r in results:
        if r.artifact_file and r.artifact_file not in keys:
            keys[r.artifact_file] = str(len(keys) + 1)
    return keys


def _file_key(result: CellResult, keys: Mapping[str, str]) -> str:
    if result.artifact_file:
        return keys[result.artifact_file]
    return "none" if result.pick is not None and not result.pick.covered else "-"


def _legend_lines(results: Sequence[CellResult]) -> list[str]:
    """The tested files, once each: name, sha256 prefix, how many cells."""
    keys = files_legend(results)
    sha = {r.artifact_file: r.artifact_sha256 or "" for r in results if r.artifact_file}
    n = {f: sum(r.artifact_file == f for r in results) for f in keys}
    if len(keys) == 1:
        (f,) = keys
        return [f"file tested by {n[f]} of {len(results)} cells (sha256 {sha[f][:12]}):",
                f"  {f}"]
    lines = []
    for f, k in keys.items():
        lines += [f"file {k}, tested by {n[f]} cells (sha256 {sha[f][:12]}):", f"  {f}"]
    return lines


def _why(result: CellResult) -> str:
    """The first bad check and its detail, else the reason (PASS: how many checks)."""
    if result.verdict is Verdict.PASS:
        return f"{len(result.checks)} checks passed"
    bad = result.failed_check
    if bad is not None:
        return f"{bad.name}: {bad.detail or result.reason}"
    return result.reason


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def table(results: Sequence[CellResult], pending: Sequence[Cell] = (),
          running: set[str] | None = None) -> Table:
    """The live table: one row per cell (verdict, time, file key, the first bad check)."""
    keys = files_legend(results)
    t = Table(title="smoke cells", expand=False)
    for name in ("cell", "verdict", "time", *(("file",) if len(keys) > 1 else ()), "details"):
        t.add_column(name, justify="right" if name == "time" else "left",
                     no_wrap=name != "details", overflow="fold")
    for r in results:
        file = (_file_key(r, keys),) if len(keys) > 1 else ()
        t.add_row(r.cell_id, Text(r.verdict.value, STYLE[r.verdict]), f"{r.seconds:.1f}s",
                  *file, Text(one_line(_why(r), 200)))
    for c in pending:
        state = "running…" if running and c.id in running else "waiting"
        t.add_row(c.id, Text(state, "dim"), "", *(("",) if len(keys) > 1 else ()), "")
    return t


def progress_line(n: int, total: int, result: CellResult, width: int, idw: int = 0) -> Text:
    """One finished cell, in one line of at most ``width`` characters (ids padded to
    ``idw``, never cut)."""
    count = f"[{n:>{len(str(total))}}/{total}]"
    head = (f"{count} {result.verdict.value:<9} {result.cell_id:<{idw}} "
            f"{result.seconds:>6.1f}s")
    tail = "" if result.verdict is Verdict.PASS else one_line(_why(result))
    line = Text(_fit(f"{head}  {tail}" if tail else head, width))
    start = len(count) + 1
    line.stylize(STYLE[result.verdict], start, start + len(result.verdict.value))
    return line


def compact_table(results: Sequence[CellResult], width: int, *, verbosity: int = 0) -> list[Text]:
    """The final table for a log: legend, then one row per cell that fits ``width`` (ids
    never cut; -q: only the cells that did not pass)."""
    keys = files_legend(results)
    shown = [r for r in results if verbosity >= 0 or r.verdict is not Verdict.PASS]
    if not shown:
        return []
    lines = [Text(line) for line in _legend_lines(results)]
    idw = max(len("cell"), *(len(r.cell_id) for r in shown))
    filew = max(len("file"), *(len(_file_key(r, keys)) for r in shown)) if len(keys) > 1 else 0

    def row(cell: str, verdict: str, time: str, file: str, why: str) -> str:
        head = f"{cell:<{idw}}  {verdict:<9} {time:>6}  " + (f"{file:<{filew}}  " if filew else "")
        return head + _fit(why, max(width - len(head), 20))

    lines.append(Text(row("cell", "verdict", "time", "file", "details"), "bold"))
    for r in shown:
        line = Text(row(r.cell_id, r.verdict.value, f"{r.seconds:.1f}s", _file_key(r, keys),
                        one_line(_why(r))))
        line.stylize(STYLE[r.verdict], idw + 2, idw + 2 + len(r.verdict.value))
        lines.append(line)
    return lines


def _details(result: CellResult, verbosity: int) -> list[str]:
    """A cell's failed checks (every one; without any: the reason), its diagnosis and, with
    -v, every check and the stderr tail."""
    bad = [c for c in result.checks if c.status in BAD]
    lines = [] if bad or result.verdict is Verdict.PASS else [f"  {result.reason}"]
    for c in result.checks:
        if c.status in BAD or verbosity > 0:
            lines.append(f"  {MARKS[c.status]} {c.name}: {one_line(c.detail, 2000)}"
                         if c.detail else f"  {MARKS[c.status]} {c.name}")
    if result.diagnosis is not None:
        lines.append(f"  diagnosis: {result.diagnosis.title}: {result.diagnosis.advice}")
    if verbosity > 0 and result.stderr.strip() and result.verdict is not Verdict.PASS:
        lines += ["  stderr (tail):", *(f"    {x}" for x in result.stderr[-2000:].splitlines())]
    return lines


def detail_blocks(results: Sequence[CellResult], verbosity: int = 0
                  ) -> list[tuple[Verdict, str, list[str]]]:
    """(verdict, heading, lines) for every cell that did not pass (-v: every cell); cells
    that failed in exactly the same way share one block."""
    blocks: dict[tuple[object, ...], tuple[list[CellResult], list[str]]] = {}
    for r in results:
        if r.verdict is Verdict.PASS and verbosity <= 0:
            continue
        lines = _details(r, verbosity)
        key: tuple[object, ...] = (r.cell_id,) if verbosity > 0 else (r.verdict, *lines)
        blocks.setdefault(key, ([], lines))[0].append(r)
    out = []
    for cells, lines in blocks.values():
        verdict = cells[0].verdict
        if len(cells) == 1:
            heading = f"{verdict.value} {cells[0].cell_id} ({cells[0].seconds:.1f}s)"
        else:
            where = f"all {len(cells)} cells" if len(cells) == len(results) else \
                f"{len(cells)} cells"
            heading = f"{verdict.value} in {where}: {', '.join(c.cell_id for c in cells)}"
        out.append((verdict, heading, lines))
    return out


def annotation(result: CellResult,
               coverage: outcome.Coverage = outcome.DEFAULT_COVERAGE) -> str | None:
    """The ``::error`` annotation of a cell that counts (harness.outcome; ``::warning``: an
    UNCOVERED cell that does not), None for a PASS."""
    if result.verdict is Verdict.PASS:
        return None
    diagnosis = f" ({result.diagnosis.title}: {result.diagnosis.advice})" \
        if result.diagnosis else ""
    return (github.error if outcome.counts(result, coverage) else github.warning)(
        one_line(_why(result), 2000) + diagnosis,
        title=f"smoke {result.cell_id}: {result.verdict.value}")


class Progress:
    """Live table on a real terminal; one line per finished cell otherwise (CI logs)."""

    def __init__(self, cells: Sequence[Cell], console: Console | None = None, *,
                 verbosity: int = 0) -> None:
        self.console = console or make_console()
        self.cells = list(cells)
        self.results: list[CellResult] = []
        self.running: set[str] = set()
        self.lock = threading.Lock()
        self.live: Live | None = None
        self.verbosity = verbosity

    def __enter__(self) -> Progress:
        if is_live(self.console):
            self.live = Live(self._render(), console=self.console, refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.__exit__(None, None, None)

    def _render(self) -> Group:
        done = {r.cell_id for r in self.results}
        legend = [Text(line, "dim") for line in _legend_lines(self.results)]
        return Group(*legend, table(self.results, [c for c in self.cells if c.id not in done],
                                    self.running))

    def started(self, cell: Cell) -> None:
        """A cell began."""
        with self.lock:
            self.running.add(cell.id)
            if self.live:
                self.live.update(self._render())

    def finished(self, result: CellResult) -> None:
        """A cell ended."""
        with self.lock:
            self.running.discard(result.cell_id)
            self.results.append(result)
            if self.live:
                self.live.update(self._render())
            elif self.verbosity >= 0:
                self.console.print(progress_line(
                    len(self.results), len(self.cells), result, self.console.width,
                    max((len(c.id) for c in self.cells), default=0)))


def summary(console: Console, results: Sequence[CellResult], *, live_shown: bool | None = None,
            verbosity: int = 0, coverage: outcome.Coverage = outcome.DEFAULT_COVERAGE,
            annotate: bool = True, environ: Mapping[str, str] | None = None) -> None:
    """After the run: the compact table (unless the live one shows it), every failed check
    with its diagnosis; on GitHub Actions a collapsed group per cell and (``annotate``) an
    annotation per cell that blocks."""
    if verbosity < -1:
        return
    live_shown = is_live(console) if live_shown is None else live_shown
    if not live_shown:
        for row in compact_table(results, console.width, verbosity=verbosity):
            console.print(row)
    if github.active(environ):
        for r in results:
            console.print(github.group(f"{r.verdict.value} {r.cell_id} ({r.seconds:.1f}s)"),
                          markup=False, emoji=False)
            for line in _details(r, max(verbosity, 1)):
                console.print(line, markup=False, emoji=False)
            console.print(github.END_GROUP, markup=False, emoji=False)
        for r in results if annotate else ():
            note = annotation(r, coverage)
            if note is not None:
                console.print(note, markup=False, emoji=False)
        return
    wrap = is_live(console)  # a terminal: wrapped at words; a log keeps whole lines (grep)
    for verdict, heading, lines in detail_blocks(results, verbosity):
        console.print(Text(heading, STYLE[verdict]))
        for line in lines:
            console.print(textwrap.fill(line, console.width, subsequent_indent="      ",
                                        break_on_hyphens=False) if wrap else line,
                          markup=False, emoji=False)


def annotate_decision(console: Console, decision: Decision,
                      environ: Mapping[str, str] | None = None) -> None:
    """On GitHub Actions: an ``::error`` annotation per pre-publish blocker."""
    if not github.active(environ):
        return
    for i in decision.blockers:
        console.print(github.error(f"{i.file}: {i.message} -> fix: {i.fix}",
                                   title=f"NO-GO {i.code}"), markup=False, emoji=False)


