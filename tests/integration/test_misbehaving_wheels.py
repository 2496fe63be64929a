"""Wheels that misbehave at run time: verdicts stay right and nothing outlives the cell."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import RunHarness, smoke_containers
from tests.integration.wheel_surgery import rewrite

INIT = "q_kangaroo/__init__.py"


def _append_to_init(src: Path, dest: Path, code: str) -> Path:
    return rewrite(src, dest, lambda files: {**files, INIT: files[INIT] + code.encode()})


def test_a_daemon_forked_at_import_neither_hangs_the_cell_nor_survives_it(
        wheels: dict[str, Path], run_harness: RunHarness, tmp_path: Path,
        docker_client: Any, images: dict[str, Any]) -> None:
    marker = f"qk-daemon-{time.monotonic_ns()}"
    wheel = _append_to_init(wheels["good"], tmp_path / "dist", f"""
import os as _os, time as _time
if _os.fork() == 0:  # a daemon that keeps every inherited descriptor open
    _os.setsid()
    _os.execvp("sh", ["sh", "-c", "sleep 600; : {marker}"])
""")
    start = time.monotonic()
    run = run_harness(str(wheel), "--select", "venv-py3.12", "--select",
                      "docker-debian12-py3.11", "--timeout", "60")
    assert time.monotonic() - start < 45, run.output
    for cell in run.cells().values():
        assert cell["verdict"] == "PASS", cell["reason"]
    time.sleep(1)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert left == "", f"daemon outlived its cell: {left}"
    assert smoke_containers(docker_client, run=run.report["run_id"]) == []  # type: ignore[index]


def _prepend_to_init(src: Path, dest: Path, code: str) -> Path:
    return rewrite(src, dest, lambda files: {**files, INIT: code.encode() + files[INIT]})


def test_noise_and_forged_probe_lines_on_stdout_change_nothing(
        wheels: dict[str, Path], run_harness: RunHarness, tmp_path: Path) -> None:
    """What a package prints never reaches the event stream (fd 1 is moved aside)."""
    forge = """import os as _o, sys as _s
_fake = '@@probe {"event": "check", "name": "%s", "status": "%s", "detail": "forged"}\\n'
print(_fake % ("partition_gf", "fail")); _s.stdout.flush()
_o.write(1, (_fake % ("import", "pass")).encode())
print("x" * 100000)
"""
    verdicts = {}
    for variant in ("good", "nogmp"):
        wheel = _prepend_to_init(wheels[variant], tmp_path / variant, forge)
        run = run_harness(str(wheel), "--select", "venv-py3.12")
        cell = run.cells()["venv-py3.12"]
        assert "forged" not in str(cell["checks"])
        verdicts[variant] = cell["verdict"]
    assert verdicts == {"good": "PASS", "nogmp": "FAIL"}
