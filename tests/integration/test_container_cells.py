"""Real container cells on the clean images: verdicts, INVALID, TIMEOUT, Ctrl-C, reaping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.runner import private_parent
from tests.conftest import ROOT, HarnessRun, RunHarness, by_variant, smoke_containers
from tests.integration.expectations import VARIANTS, assert_cells_match

HANG = {"name": "hang", "expr": "__import__('time').sleep(600)", "expected": None}


@pytest.fixture(autouse=True)
def _engine_and_images(images: dict[str, Any]) -> None:
    """Every test here needs the real engine and the default images."""
    assert len(images) >= 5


@pytest.mark.parametrize("variant", by_variant(*VARIANTS))
def test_each_fixture_wheel_gets_its_verdict_in_every_container_cell(
        variant: str, whole_matrix: Callable[[str], HarnessRun], docker_client: Any) -> None:
    run = whole_matrix(variant)  # the venv cells of the same run: test_venv_cells
    cells = {k: c for k, c in run.cells().items() if c["kind"] == "container"}
    assert len(cells) >= 5, run.output
    assert_cells_match(variant, cells)
    assert run.returncode == (0 if variant == "good" else 1), run.output
    assert smoke_containers(docker_client, run=run.report["run_id"]) == []  # type: ignore[index]


def test_glibc_refusal_names_tag_glibc_and_fix(wheels: dict[str, Path],
                                               run_harness: RunHarness) -> None:
    run = run_harness(str(wheels["newglibc"]), "--select", "docker-debian11-py3.9")
    advice = run.cells()["docker-debian11-py3.9"]["diagnosis"]["advice"]
    assert "manylinux_2_34" in advice and "glibc 2.31" in advice
    assert "--compatibility manylinux2014" in advice


@pytest.mark.parametrize("variant", by_variant("good"))
def test_good_wheel_maps_the_bundled_gmp_inside_the_container(
        variant: str, whole_matrix: Callable[[str], HarnessRun]) -> None:
    run = whole_matrix(variant)
    assert run.returncode == 0, run.output
    for cell in (c for c in run.cells().values() if c["kind"] == "container"):
        (path,) = cell["libraries_mapped"]["gmp"]
        assert path.startswith("/tmp/cell/venv/") and "/q_kangaroo.libs/libgmp-" in path
        assert cell["environment"]["HOME"] == "/tmp"


def test_image_that_still_has_gmp_is_invalid_never_pass(
        wheels: dict[str, Path], run_harness: RunHarness, matrix_file: Callable[..., Path],
        docker_client: Any) -> None:
    from harness import imaging

    base = imaging.ensure_base("bookworm", client=docker_client, log=lambda line: None)
    matrix = matrix_file(container=[{"image": base, "python": "/usr/bin/python3",
                                     "id": "unscrubbed"}])
    for variant in ("good", "nogmp"):
        run = run_harness(str(wheels[variant]), "--matrix", str(matrix))
        cell = run.cells()["unscrubbed"]
        assert cell["verdict"] == "INVALID", cell["reason"]
        assert "libgmp.so.10" in cell["reason"]
        assert run.returncode == 1


def test_hanging_cell_times_out_and_leaves_nothing(
        wheels: dict[str, Path], run_harness: RunHarness, matrix_file: Callable[..., Path],
        docker_client: Any) -> None:
    matrix = matrix_file(container=[{"image": "debian12-py3.11"}], venv=[{"python": "3.12"}],
                         extra_checks=[HANG])
    start = time.monotonic()
    run = run_harness(str(wheels["good"]), "--matrix", str(matrix), "--timeout", "8")
    assert time.monotonic() - start < 60
    for cell in run.cells().values():
        assert cell["verdict"] == "TIMEOUT", cell["reason"]
        hang = next(c for c in cell["checks"] if c["name"] == "hang")
        assert hang["status"] == "timeout"
    assert run.returncode == 1
    run_id = run.report["run_id"]  # type: ignore[index]
    assert smoke_containers(docker_client, run=run_id) == []
    assert not list(private_parent().glob(f"run-{run_id}-*"))


def _start(args: list[str], report_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "harness", *args, "--report-dir",
                             str(report_dir)], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def _wait_for_containers(client: Any, n: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while len([c for c in smoke_containers(client, pid=proc.pid)
                if c.status == "running"]) < n:
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "containers never started"
        time.sleep(0.2)


def test_sigint_mid_run_removes_containers_and_writes_the_report(
        wheels: dict[str, Path], matrix_file: Callable[..., Path], docker_client: Any,
        tmp_path: Path) -> None:
    import json

    # only the container cells (uid 1000) hang; the venv cell finishes and must be reported
    hang = {**HANG, "expr": "__import__('time').sleep(600 if __import__('os').getuid() == "
                            "1000 else 0)"}
    matrix = matrix_file(container=[{"image": "debian12-py3.11"},
                                    {"image": "debian13-py3.13"}],
                         venv=[{"python": "3.12", "id": "quick"}], jobs=3,
                         extra_checks=[hang])
    proc = _start([str(wheels["good"]), "--matrix", str(matrix)], tmp_path)
    _wait_for_containers(docker_client, 2, proc)
    time.sleep(2)  # the quick venv cell finishes meanwhile
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert smoke_containers(docker_client, pid=proc.pid) == []
    report = json.loads((tmp_path / "smoke.json").read_text())
    verdicts = {c["id"]: c["verdict"] for c in report["cells"]}
    assert report["interrupted"] is True
    assert verdicts["quick"] == "PASS"
    assert verdicts["docker-debian12-py3.11"] == "ERROR"


def test_sigkill_leftovers_are_reaped_by_the_next_run(
        wheels: dict[str, Path], matrix_file: Callable[..., Path], docker_client: Any,
        run_harness: RunHarness, tmp_path: Path) -> None:
    matrix = matrix_file(container=[{"image": "debian12-py3.11"}], extra_checks=[HANG])
    proc = _start([str(wheels["good"]), "--matrix", str(matrix)], tmp_path)
    _wait_for_containers(docker_client, 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert len(smoke_containers(docker_client, pid=proc.pid)) == 1  # killed: left behind
    run = run_harness(str(wheels["good"]), "--select", "docker-debian12-py3.11")
    assert run.returncode == 0, run.output
    assert smoke_containers(docker_client, pid=proc.pid) == []
    if "PYTEST_XDIST_WORKER" not in os.environ:  # else another test's run may reap it first
        assert "removed leftover container" in run.output


def test_keep_failed_keeps_the_container_and_says_how_to_enter(
        wheels: dict[str, Path], run_harness: RunHarness, docker_client: Any) -> None:
    run = run_harness(str(wheels["nogmp"]), "--select", "docker-debian12-py3.11",
                      "--keep-failed")
    reason = run.cells()["docker-debian12-py3.11"]["reason"]
    assert "docker exec -it" in reason
    kept = smoke_containers(docker_client, run=run.report["run_id"])  # type: ignore[index]
    assert len(kept) == 1
    try:
        assert kept[0].status == "running"
        code, out = kept[0].exec_run(["sh", "-c", "ls /tmp/cell/venv/lib/*/site-packages"])
        assert code == 0 and b"q_kangaroo" in out
    finally:
        kept[0].remove(force=True)


def test_no_engine_is_error_with_one_line_and_venvs_still_run(
        wheels: dict[str, Path], run_harness: RunHarness) -> None:
    run = run_harness(str(wheels["good"]), "--select", "docker-debian12-py3.11",
                      "--select", "venv-py3.12", env={"DOCKER_HOST": "unix:///nonexistent.sock"})
    cells = run.cells()
    assert cells["venv-py3.12"]["verdict"] == "PASS"
    docker_cell = cells["docker-debian12-py3.11"]
    assert docker_cell["verdict"] == "ERROR"
    assert "no Docker engine answers at unix:///nonexistent.sock" in docker_cell["reason"]
    assert run.returncode == 2
