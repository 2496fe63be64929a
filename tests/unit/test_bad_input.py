"""Bad input found up front or mid-run: one line, exit 2, no traceback, reports kept."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from harness import cli, report
from harness.cells import Cell
from harness.errors import InputError
from harness.kinds.host import HostEntry
from harness.kinds.venv import VenvEntry
from tests.conftest import default_matrix_data
from tests.unit.conftest import make_wheel, release_of
from tests.unit.test_runner import FakeEnvironment

ROOT = Path(__file__).resolve().parents[2]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("matrix: ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    return lines[0]


def matrix_with(tmp_path: Path, **changes: Any) -> Path:
    data = default_matrix_data()
    for key, value in changes.items():
        data[key] = value
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(("changes", "expected"), [
    ({"defaults": {"timeout": float("nan")}}, "defaults.timeout: nan is not a number of seconds"),
    ({"defaults": {"timeout": float("inf")}}, "defaults.timeout: inf is not a number of seconds"),
    ({"environments": {"venv": [{"python": "3.12", "timeout": float("inf")}]}},
     "environments.venv[0].timeout: inf is not a number of seconds"),
    ({"environments": {"container": [{"image": "debian12-py3.11", "timeout": float("nan")}]}},
     "environments.container[0].timeout: nan is not a number of seconds"),
])
def test_non_finite_timeouts_in_the_matrix(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           changes: dict[str, Any], expected: str) -> None:
    path = matrix_with(tmp_path, **changes)
    assert ".nan" in path.read_text() or ".inf" in path.read_text()  # YAML's own spelling
    assert cli.main(["--matrix", str(path), "--list"]) == 2
    assert expected in one_error_line(capsys)


@pytest.mark.parametrize(("venv", "expected"), [
    ([{"python": "3.12", "id": "a"}, {"python": "3.11", "id": "a"}],
     "the id 'a' names two cells; make every 'id' different"),
    ([{"python": "3.12"}, {"python": "3.11", "id": "venv-py3.12"}],
     "the id 'venv-py3.12' names two cells"),
    ([{"python": "3.12"}, {"python": "3.12"}],
     "two entries make the same cell id 'venv-py3.12'; give one of them an 'id'"),
])
def test_duplicate_cell_ids_say_what_to_change(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               venv: list[dict[str, str]],
                                               expected: str) -> None:
    path = matrix_with(tmp_path, environments={"venv": venv})
    assert cli.main(["--matrix", str(path), "--list"]) == 2
    assert expected in one_error_line(capsys)


def tiny_wheel(directory: Path, filename: str) -> Path:
    """A real (minimal) wheel archive: name, version and tags from its file name."""
    name, version = filename.split("-")[:2]
    path = directory / filename
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}-{version}.dist-info/METADATA",
                    f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{name}/__init__.py", "")
    return path


@pytest.mark.parametrize(("filename", "expected"), [
    ("other-1.0.0-cp39-abi3-manylinux_2_17_x86_64.whl",
     "a wheel of other, but {matrix} tests q_kangaroo; pass a q_kangaroo wheel"),
    ("q_kangaroo-1.0.0-cp39-abi3-win_amd64.whl",
     "no cell can install this wheel (tags cp39-abi3-win_amd64;"),
    ("q_kangaroo-1.0.0-cp27-cp27mu-manylinux1_x86_64.whl", "no cell can install this wheel"),
])
def test_a_wheel_that_cannot_be_tested_is_refused_before_any_cell(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        filename: str, expected: str) -> None:
    monkeypatch.chdir(tmp_path)  # no matrix.yaml here: the bundled default
    whl = tiny_wheel(tmp_path, filename)
    reports = tmp_path / "reports"
    assert cli.main([str(whl), "--report-dir", str(reports)]) == 2
    assert expected.format(matrix=cli.DEFAULT_MATRIX) in one_error_line(capsys)
    assert not reports.exists()  # refused before anything ran


def test_a_windows_wheel_fits_a_matrix_with_windows_host_cells(tmp_path: Path) -> None:
    whl = cli.wheel.inspect(tiny_wheel(tmp_path, "q_kangaroo-1.0.0-cp39-abi3-win_amd64.whl"))
    linux = Cell(id="venv-py3.12", kind="venv", entry=VenvEntry(python="3.12"), timeout=60)
    windows = Cell(id="host-windows-py3.12", kind="host",
                   entry=HostEntry(python="3.12", os=("windows",)), timeout=60)
    cli.check_wheel_fits(whl, [linux, windows])  # a Windows cell installs it: not refused
    with pytest.raises(InputError, match="no cell can install this wheel"):
        cli.check_wheel_fits(whl, [linux])


@pytest.fixture
def small_file_limit() -> Iterator[None]:
    """Writes past 64 KiB fail with EFBIG, as a full disk would (no root, nothing mocked)."""
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, old_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


def big_run(n: int = 300) -> tuple[report.RunInfo, list[Any]]:
    from harness.verdict import CellResult, CheckResult, CheckStatus, Verdict

    results = [CellResult(cell_id=f"c{i}", kind="venv", verdict=Verdict.PASS, reason="",
                          checks=(CheckResult(name="x", status=CheckStatus.PASS,
                                              code="check-ok", detail="y" * 300),))
               for i in range(n)]
    info = report.RunInfo(run_id="r", matrix="m", release=release_of(make_wheel()),
                          started=0, finished=1,
                          interrupted=False, exit_code=0, selected=())
    return info, results


def test_a_failed_report_write_keeps_the_previous_report(tmp_path: Path,
                                                        small_file_limit: None) -> None:
    info, results = big_run(1)
    report.write(tmp_path, info, results)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    info, results = big_run()
    with pytest.raises(report.ReportWriteError, match="could not write the reports to"):
        report.write(tmp_path, info, results)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no .tmp either


def test_a_report_write_failure_mid_run_still_prints_the_table(
        tmp_path: Path, synthetic_wheel: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "smoke.json").write_text('{"previous": true}\n')
    real_write = report.write

    def write_on_a_full_disk(*args: Any) -> dict[str, Path]:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)
        old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, limit[1]))
        try:
            return real_write(*args)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, limit)
            signal.signal(signal.SIGXFSZ, old)

    def factory(cell: Cell) -> FakeEnvironment:
        return FakeEnvironment(cell, 0)  # every cell passes

    data = default_matrix_data()
    data["package"]["checks"] = data["package"]["checks"][:1]  # what the fake reports
    data["package"]["wheel_tags"] = []  # the synthetic wheel is pure Python
    data["environments"] = {"venv": [{"python": "3.12"}, {"python": "3.13"}]}
    matrix = tmp_path / "m.yaml"
    matrix.write_text(yaml.safe_dump(data))
    monkeypatch.setattr(cli, "prepare", lambda *a, **k: SimpleNamespace(environment=factory))
    monkeypatch.setattr(cli.report, "write", write_on_a_full_disk)
    code = cli.main([str(synthetic_wheel), "--report-dir", str(reports), "--matrix", str(matrix)])
    err = capsys.readouterr().err
    assert code == 2, err  # every cell passed, but there is no report
    assert "Traceback" not in err
    assert any(x.split()[:1] == ["venv-py3.12"] for x in err.splitlines()), err  # the table
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"could not write the reports to {reports}" in errors[0]
    assert json.loads((reports / "smoke.json").read_text()) == {"previous": True}
    assert sorted(p.name for p in reports.iterdir()) == ["smoke.json"]


def test_no_access_to_the_docker_socket_is_said_as_such(tmp_path: Path) -> None:
    """A socket this user may not open (a real non-root user when running as root)."""
    where = Path(tempfile.mkdtemp(prefix="sock-", dir="/tmp"))
    try:
        where.chmod(0o755)
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(where / "docker.sock"))
        sock.listen()
        (where / "docker.sock").chmod(0o600 if os.geteuid() == 0 else 0)
        as_user = (["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]
                   if os.geteuid() == 0 else [])
        proc = subprocess.run(
            [*as_user, sys.executable, "-c", "from harness import engine; engine.connect(5)"],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
            env={**os.environ, "DOCKER_HOST": f"unix://{where}/docker.sock",
                 "PYTHONPATH": str(ROOT)})
        assert proc.returncode != 0
        assert "permission denied on the Docker socket" in proc.stderr, proc.stderr
        assert "no Docker engine answers" not in proc.stderr
        sock.close()
    finally:
        for p in where.iterdir():
            p.unlink()
        where.rmdir()
