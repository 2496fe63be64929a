"""Configuration where Python tools keep it, and the command line's conventions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import arguments, cli, config, matrix
from harness.errors import InputError
from tests.conftest import ROOT, default_matrix_data

TABLE = """
[project]
name = "tinypkg"

[tool.q-kangaroo-smoke.package]
distribution = "tinypkg"
import = "tinypkg"

[tool.q-kangaroo-smoke.environments]
venv = [{python = "3.12"}]
"""


def test_matrix_discovery_order(tmp_path: Path) -> None:
    given = tmp_path / "given.yaml"
    (tmp_path / "pyproject.toml").write_text(TABLE)
    found = config.find_matrix(None, cwd=tmp_path)
    assert found.how == "pyproject" and found.table is not None
    assert found.table["package"]["distribution"] == "tinypkg"
    (tmp_path / "matrix.yaml").write_text("package: {}\n")
    assert config.find_matrix(None, cwd=tmp_path).path == tmp_path / "matrix.yaml"
    assert config.find_matrix(given, cwd=tmp_path).how == "--matrix"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert config.find_matrix(None, cwd=empty).how == "bundled default"
    (empty / "pyproject.toml").write_text("[project]\nname = 'x'\n")  # no table: skipped
    assert config.find_matrix(None, cwd=empty).how == "bundled default"


def test_a_pyproject_table_is_the_matrix_and_the_run_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pyproject.toml").write_text(TABLE)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr()
    assert out.out.split("\t")[0] == "venv-py3.12"
    assert "matrix: ./pyproject.toml ([tool.q-kangaroo-smoke] table)" in out.err


def test_a_matrix_yaml_in_the_current_directory_is_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    data = default_matrix_data()
    data["environments"] = {"venv": [{"python": "3.11"}]}
    (tmp_path / "matrix.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("venv-py3.11\t") and "(found in the current directory)" in out.err


def test_options_from_the_environment_and_the_command_line_wins(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("Q_KANGAROO_SMOKE_JOBS", "3")
    monkeypatch.setenv("Q_KANGAROO_SMOKE_KEEP_FAILED", "yes")
    monkeypatch.setenv("Q_KANGAROO_SMOKE_SELECT", "py3.12-* py3.13-*")
    monkeypatch.setenv("Q_KANGAROO_SMOKE_QUIET", "1")
    opts = cli.parse_options(["x.whl"])
    assert opts.jobs == 3 and opts.keep_failed and opts.verbosity == -1
    assert opts.select == ("py3.12-*", "py3.13-*")
    assert cli.parse_options(["x.whl", "--jobs", "5"]).jobs == 5
    monkeypatch.setenv("Q_KANGAROO_SMOKE_MATRIX", "other.yaml")
    opts = cli.parse_options(["x.whl"])
    assert opts.matrix == Path("other.yaml") and opts.matrix_source is not None
    assert "$Q_KANGAROO_SMOKE_MATRIX" in opts.matrix_source.describe()


@pytest.mark.parametrize(("name", "value", "message"), [
    ("Q_KANGAROO_SMOKE_JOBS", "four", "Q_KANGAROO_SMOKE_JOBS='four': --jobs takes a whole number"),
    ("Q_KANGAROO_SMOKE_KEEP_FAILED", "maybe", "give 1 or 0"),
    ("Q_KANGAROO_SMOKE_COLOR", "sometimes", "give one of auto, always, never"),
])
def test_a_bad_variable_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, name: str,
                                              value: str, message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(InputError, match=message):
        cli.parse_options(["x.whl"])


def test_help_names_the_program_merge_and_every_variable(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/q-kangaroo-smoke"])
    with pytest.raises(SystemExit):
        arguments.parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: q-kangaroo-smoke ")
    assert "q-kangaroo-smoke merge REPORT_DIR" in text
    for action in arguments.parser()._actions:
        name = config.env_name(action)
        if name:
            assert name in " ".join(text.split()), name
    monkeypatch.setattr(sys, "argv", ["/x/harness/__main__.py"])
    assert arguments.parser().prog == "python -m harness"


def test_version_is_the_tools_and_the_old_spelling_says_what_to_write(
        capsys: pytest.CaptureFixture[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", "--version"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.split()[-1] == arguments.tool_version()
    assert cli.main(["dist/", "--version", "1.2.0"]) == 2
    err = capsys.readouterr().err
    assert "write --release-version 1.2.0" in err and err.count("error:") == 1


def test_shell_completion_comes_from_shtab() -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", "--print-completion", "bash"],
                          cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, "PATH": os.defpath})
    assert proc.returncode == 0 and "--release-version" in proc.stdout
    assert "complete " in proc.stdout and "shtab" in proc.stdout


def test_a_number_where_a_string_belongs_says_quote_it(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("package: {distribution: d, import: d}\n"
                    "environments:\n  venv:\n    - python: 3.10\n")
    with pytest.raises(InputError, match=r'3\.1 is a number, not a string: quote it, e\.g\. '
                                         r'"3\.10"'):
        matrix.load(path)


@pytest.mark.parametrize(("argv", "default_wheel", "runs"), [
    ([], True, True), (["dist/"], False, True), (["--select", "venv-*"], True, True),
    (["--help"], False, False), (["--version"], False, False), (["--list"], False, False),
    (["--print-completion", "bash"], False, False),
])
def test_front_doors_add_a_wheel_and_start_an_engine_only_for_a_run(
        argv: list[str], default_wheel: bool, runs: bool) -> None:
    assert arguments.needs_default_wheel(argv) is default_wheel
    assert arguments.runs_cells(argv) is runs


def test_a_misspelled_variable_is_a_warning_with_the_right_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("Q_KANGAROO_SMOKE_JOB", "4")
    monkeypatch.setenv("Q_KANGAROO_SMOKE_MIRROR", "http://deb.example/debian")  # not an option
    opts = cli.parse_options(["x.whl"])
    assert opts.jobs is None
    assert opts.warnings == ("Q_KANGAROO_SMOKE_JOB is not an option's variable; did you mean "
                             "Q_KANGAROO_SMOKE_JOBS? (ignored)",)
