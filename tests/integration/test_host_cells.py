"""Host cells for real on this (Linux) machine, through the POSIX path macOS takes: the
allowlisted environment reaches the process, the real probe runs from the combined source,
a hung cell's whole process group is killed, nothing is left behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

from harness import interpreters
from harness.environments.base import ProbeSpec
from harness.environments.host import HostEnvironment
from harness.verdict import Verdict, judge
from tests.unit.conftest import PACKAGE, make_wheel, release_of

FAKE_PYTHON = """#!/bin/sh
env > "$TMPDIR/../seen.env"
sleep 300 &
echo $! > "$TMPDIR/../child.pid"
sleep 300
"""


def _source_env(tmp_path: Path) -> dict[str, str]:
    brew = tmp_path / "brew"
    (brew / "bin").mkdir(parents=True)
    (brew / "lib").mkdir()
    (brew / "lib" / "libgmp.10.dylib").write_bytes(b"\xcf\xfa\xed\xfe")
    return {"PATH": f"{brew / 'bin'}:/usr/bin:/bin", "HOME": "/root", "MINGW_BIN": "C:\\m",
            "DYLD_LIBRARY_PATH": str(brew / "lib"), "PYTHONPATH": "/src"}


def test_hung_host_cell_is_killed_with_its_children_and_sees_only_the_allowlist(
        tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    spec = ProbeSpec(package=PACKAGE, release=release_of(make_wheel()))
    env = HostEnvironment(python=fake, run_root=tmp_path, uv="/nonexistent/uv", cell_id="h",
                          libraries=["gmp"], source_env=_source_env(tmp_path), platform="darwin")
    with env:
        run = env.run(spec, timeout=2)
        workdir = env.workdir
        seen = dict(line.split("=", 1) for line in
                    (workdir / "seen.env").read_text().splitlines() if "=" in line)
        child = int((workdir / "child.pid").read_text())
    assert run.timed_out
    assert set(seen) - {"PWD", "SHLVL", "_"} == {"PATH", "HOME", "TMPDIR", "LANG"}
    assert seen["PATH"] == "/usr/bin:/bin"  # the Homebrew-like bin (its lib has GMP) is gone
    assert env.removed_path == (str(tmp_path / "brew" / "bin"),)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child), "the cell's background child survived the timeout"
    assert not workdir.exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text().split()
    return stat[2] != "Z"


def test_real_probe_from_combined_source_in_a_host_cell_is_invalid_where_gmp_loads(
        tmp_path: Path) -> None:
    """This machine has libgmp and nothing hides it from a host cell: INVALID, never PASS."""
    python = interpreters.find("3.9").executable
    spec = ProbeSpec(package=PACKAGE, release=release_of(make_wheel()))
    with HostEnvironment(python=python, run_root=tmp_path, uv="/nonexistent/uv",
                         cell_id="h39", libraries=["gmp"], source_env=_source_env(tmp_path),
                         platform="darwin") as env:
        run = env.run(spec, timeout=120)
    result = judge(run, cell_id="host-macos-py3.9", kind="host", release=spec.release,
                   package=PACKAGE)
    assert result.verdict is Verdict.INVALID, (result.reason, run.stderr)
    sterility = result.check("sterility")
    assert sterility is not None and "libgmp" in sterility.detail
    assert result.facts.get("version", "").startswith("3.9.")
    assert "MINGW_BIN" not in run.environment and "DYLD_LIBRARY_PATH" not in run.environment
    assert list(tmp_path.glob("h39-*")) == []
