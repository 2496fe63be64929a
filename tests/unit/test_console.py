"""Console output for CI logs and people: one line per cell off a terminal, a compact final
table at 80 columns, every failed check, colour as pytest decides it, GitHub groups."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from harness import console, github
from harness.verdict import CellResult
from tests.unit.conftest import judge_one, make_wheel, observed, passing_events

LONG_IDS = [f"docker-debian12-py3.1{i}-with-a-long-name" for i in range(3)]


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _failing(cell_id: str) -> CellResult:
    events = passing_events(**{
        "version": observed("version", values={"metadata": "1.0.0", "__version__": "0.9.0",
                                               "version()": "1.0.0"}),
        "partition_gf": observed("partition_gf", got=[1, 1, 2], expected=[1, 1, 2, 3])})
    return judge_one(events, cell_id=cell_id, stderr="some output\n")


def _run(results: list[CellResult], environ: dict[str, str], verbosity: int = 0) -> str:
    stream = Pipe()
    out = console.make_console("auto", stream=stream, environ={"COLUMNS": "80", **environ})
    cell_list: list[Any] = [SimpleNamespace(id=r.cell_id) for r in results]  # Progress reads ids
    with console.Progress(cell_list, out, verbosity=verbosity) as progress:
        for r in results:
            progress.finished(r)
    console.summary(out, results, verbosity=verbosity, environ=environ)
    return stream.getvalue()


def test_piped_output_fits_80_columns_ids_whole_file_once_every_failed_check() -> None:
    results = [judge_one(passing_events(), cell_id=LONG_IDS[0]),
               *(_failing(i) for i in LONG_IDS[1:])]
    text = _run(results, {"FORCE_COLOR": "1"})  # colours a log; never makes it a terminal
    assert "\x1b[" in text and not re.search(r"\x1b\[\d*[ABCDKG]|\x1b\[\?25", text)
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = plain.splitlines()
    assert sum(line.startswith("[") for line in lines) == 3  # one line per finished cell
    table = [x for x in lines if x.startswith(tuple(LONG_IDS))]
    assert len(table) == 3 and all(len(x) <= 80 for x in table)
    assert {x.split()[0] for x in table} == set(LONG_IDS)  # full ids, never cut
    assert plain.count(make_wheel().filename) == 1  # the tested file: once, in the legend
    # every failed check of the failing cells, not only the first
    assert re.search(r"✗ version: .*0\.9\.0", plain) and "✗ partition_gf: " in plain
    assert "FAIL in 2 cells: " + ", ".join(LONG_IDS[1:]) in plain


def test_github_actions_groups_each_cell_and_annotates_blockers() -> None:
    results = [judge_one(passing_events(), cell_id="venv-py3.12"), _failing("venv-py3.13")]
    text = _run(results, {"GITHUB_ACTIONS": "true", "NO_COLOR": "1"})
    assert "\x1b[" not in text
    assert text.count("::group::") == 2 == text.count("::endgroup::")
    errors = [x for x in text.splitlines() if x.startswith("::error")]
    assert len(errors) == 1 and errors[0].startswith("::error title=smoke venv-py3.13%3A FAIL::")


def test_quiet_shows_only_what_did_not_pass() -> None:
    results = [judge_one(passing_events(), cell_id="venv-py3.12"), _failing("venv-py3.13")]
    text = _run(results, {}, verbosity=-1)
    assert "venv-py3.12" not in text and "venv-py3.13" in text
    assert _run(results[:1], {}, verbosity=-1) == ""  # all passed: nothing to say
    assert _run(results, {}, verbosity=-2) == ""


@pytest.mark.parametrize(("choice", "environ", "tty", "colour"), [
    ("auto", {}, False, False), ("auto", {}, True, True),
    ("auto", {"TERM": "dumb"}, True, False), ("auto", {"NO_COLOR": "1"}, True, False),
    ("auto", {"FORCE_COLOR": "1"}, False, True), ("auto", {"PY_COLORS": "0"}, True, False),
    ("auto", {"PY_COLORS": "1", "NO_COLOR": "1"}, False, True),
    ("always", {"NO_COLOR": "1"}, False, True), ("never", {"FORCE_COLOR": "1"}, True, False),
])
def test_colour_is_decided_as_pytest_does(choice: str, environ: dict[str, str], tty: bool,
                                          colour: bool) -> None:
    stream = Tty() if tty else Pipe()
    assert console.wants_color(choice, stream, environ) is colour
    out = console.make_console(choice, stream=stream, environ=environ)
    assert (out.color_system is not None) is colour
    assert console.is_live(out) is (tty and environ.get("TERM") != "dumb")


def test_workflow_commands_escape_their_data() -> None:
    assert github.error("50%\nnext", title="a: b, c") == "::error title=a%3A b%2C c::50%25%0Anext"


def test_a_closed_pipe_is_no_traceback() -> None:
    proc = subprocess.run(f"{sys.executable} -m harness --list --format json | true",
                          shell=True, capture_output=True, text=True, check=False)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
