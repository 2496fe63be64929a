"""results -> the console: live progress while cells run, a table and diagnoses at the end."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from harness.cells import Cell
from harness.verdict import CellResult, CheckStatus, Verdict

STYLE = {Verdict.PASS: "green", Verdict.FAIL: "red", Verdict.INVALID: "magenta",
         Verdict.TIMEOUT: "yellow", Verdict.ERROR: "bold red", Verdict.UNCOVERED: "cyan"}


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace (installer output is multi-line) and cut."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


MARKS = {CheckStatus.PASS: "✓", CheckStatus.FAIL: "✗", CheckStatus.SKIP: "-",
         CheckStatus.NOT_RUN: "·", CheckStatus.TIMEOUT: "⧗", CheckStatus.ERROR: "!"}


def _checks(result: CellResult) -> str:
    return " ".join(f"{c.name}{MARKS[c.status]}" for c in result.checks)


def tested(result: CellResult) -> str:
    """The file the cell installed (sha256 prefix), "no wheel fits", or "-"."""
    if result.artifact_file:
        return f"{result.artifact_file} ({(result.artifact_sha256 or '')[:12]})"
    if result.pick is not None and not result.pick.covered:
        return "no wheel fits"
    return "-"


def table(results: Sequence[CellResult], pending: Sequence[Cell] = (),
          running: set[str] | None = None) -> Table:
    """One row per cell: verdict, time, the failing check or reason."""
    t = Table(title="smoke cells", expand=False)
    t.add_column("cell")
    t.add_column("verdict")
    t.add_column("time", justify="right")
    t.add_column("file tested", overflow="fold")
    t.add_column("details", overflow="fold")
    for r in results:
        detail = r.reason if r.verdict is not Verdict.PASS else _checks(r)
        t.add_row(r.cell_id, f"[{STYLE[r.verdict]}]{r.verdict.value}[/]", f"{r.seconds:.1f}s",
                  escape(tested(r)), escape(one_line(detail)))
    for c in pending:
        state = "running…" if running and c.id in running else "waiting"
        t.add_row(c.id, f"[dim]{state}[/]", "", "", "")
    return t


class Progress:
    """Live table on a terminal; one line per finished cell otherwise (CI logs)."""

    def __init__(self, cells: Sequence[Cell], console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.cells = list(cells)
        self.results: list[CellResult] = []
        self.running: set[str] = set()
        self.lock = threading.Lock()
        self.live: Live | None = None

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self.live = Live(self._render(), console=self.console, refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self._render())
            self.live.__exit__(None, None, None)

    def _render(self) -> Table:
        done = {r.cell_id for r in self.results}
        return table(self.results, [c for c in self.cells if c.id not in done], self.running)

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
            else:
                n, total = len(self.results), len(self.cells)
                self.console.print(f"[{n}/{total}] {result.cell_id}: "
                                   f"[{STYLE[result.verdict]}]{result.verdict.value}[/] "
                                   f"({result.seconds:.1f}s) {escape(one_line(result.reason))}",
                                   highlight=False)


def summary(console: Console, results: Sequence[CellResult], *, live_shown: bool) -> None:
    """The final table (unless the live one already shows it) and every diagnosis."""
    if not live_shown:
        console.print(table(results))
    grouped: dict[tuple[str, str], list[str]] = {}
    for r in results:
        if r.diagnosis is not None:
            grouped.setdefault((r.diagnosis.title, r.diagnosis.advice), []).append(r.cell_id)
    for (title, advice), ids in grouped.items():
        where = f"all {len(ids)} cells" if len(ids) == len(results) > 1 else ", ".join(ids)
        console.print(f"[bold]{escape(title)}[/] ({where}): {escape(advice)}",
                      highlight=False)
