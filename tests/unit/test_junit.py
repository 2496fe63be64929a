"""JUnit XML as CI systems render it: one error per unjudged cell, dot-free class names,
the cell's stderr captured."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from harness import report
from harness.verdict import CellResult, Verdict
from tests.unit.conftest import judge_one, make_wheel, observed, passing_events, release_of


def _junit(tmp_path: Path, *cells: CellResult) -> ET.Element:
    info = report.RunInfo(run_id="r", matrix="m.yaml", release=release_of(make_wheel()),
                          started=0.0, finished=1.0, interrupted=False, exit_code=1,
                          selected=tuple(c.cell_id for c in cells))
    return ET.parse(report.write(tmp_path, info, list(cells))["junit"]).getroot()


def test_an_error_cell_is_one_error_not_one_per_check(tmp_path: Path) -> None:
    cell = judge_one([], cell_id="docker-debian12-py3.12", infra_error="engine went away",
                     stderr="the engine said: gone\n")
    assert cell.verdict is Verdict.ERROR
    suite = _junit(tmp_path, cell)[0]
    assert suite.get("errors") == "1", ET.tostring(suite).decode()
    assert len(suite.findall("testcase/error")) == 1
    assert suite.get("skipped") == str(len(cell.checks))  # none ran: skipped, not errors
    assert "engine went away" in (suite.findtext("testcase/error") or "")
    assert "the engine said: gone" in (suite.findtext("testcase/system-out") or "")


def test_class_names_have_no_dots_and_stderr_is_in_system_out(tmp_path: Path) -> None:
    bad = judge_one(passing_events(**{"import": observed("import", exception={
        "type": "ImportError", "message": "libgmp.so.10: cannot open", "traceback": ""})}),
        cell_id="venv-py3.12", stderr="Traceback ...\nImportError: libgmp.so.10\n")
    root = _junit(tmp_path, bad)
    assert {c.get("classname") for c in root.iter("testcase")} == {"venv-py3_12"}
    assert root[0].get("name") == "venv-py3.12"  # the suite keeps the real id
    assert "ImportError: libgmp.so.10" in (root[0].findtext("system-out") or "")
    failing = root[0].find("testcase[@name='import']")
    assert failing is not None and failing.find("failure") is not None
    assert "ImportError" in (failing.findtext("system-out") or "")
    assert root.get("failures") == "1" and root.get("tests") == root[0].get("tests")
