"""Per-user private run directories: a real unprivileged user runs after root, side by side,
and nobody trusts (or reaps) a directory another user owns."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, default_matrix_data

USER = "nobody"
SITE = next(p for p in sys.path if p.endswith("site-packages"))
AS_USER = ["setpriv", "--reuid", USER, "--regid", "nogroup", "--clear-groups"]
HOLD_RUN_DIR = ("import sys, time; from pathlib import Path; "
                "from harness.runner import run_directory\n"
                "with run_directory([Path(sys.argv[1])]) as staged:\n"
                "    print(staged.root, flush=True); time.sleep(600)")


@pytest.fixture
def shared_tmp(wheels: dict[str, Path]) -> Iterator[Path]:
    """A world-writable sticky TMPDIR (like /tmp) holding a wheel and a matrix anyone reads."""
    assert os.geteuid() == 0, "this test switches to a real unprivileged user: run it as root"
    where = Path(tempfile.mkdtemp(prefix="shared-tmp-", dir="/tmp"))
    where.chmod(0o1777)
    shutil.copy(wheels["good"], where)
    data = default_matrix_data()
    data["environments"] = {"venv": [{"python": "/usr/bin/python3.11"}]}  # the user's too
    (where / "m.yaml").write_text(yaml.safe_dump(data))
    for p in where.iterdir():
        p.chmod(0o644)
    yield where
    shutil.rmtree(where, ignore_errors=True)


def harness(tmp: Path, *, as_user: bool, report: str) -> subprocess.CompletedProcess[str]:
    """The real CLI; the unprivileged user runs the system Python with this checkout."""
    wheel = next(tmp.glob("*.whl"))
    env = {"PATH": os.environ["PATH"], "TMPDIR": str(tmp), "HOME": str(tmp),
           "PYTHONPATH": f"{ROOT}:{SITE}"}
    cmd = [*(AS_USER if as_user else []), "/usr/bin/python3.11", "-m", "harness", str(wheel),
           "--matrix", str(tmp / "m.yaml"), "--report-dir", str(tmp / report)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, timeout=300)


def dead_run_dir(tmp: Path, *, as_user: bool) -> Path:
    """A run directory left by a SIGKILLed harness of this user."""
    env = {"TMPDIR": str(tmp), "PYTHONPATH": f"{ROOT}:{SITE}", "PATH": os.environ["PATH"]}
    proc = subprocess.Popen([*(AS_USER if as_user else []), "/usr/bin/python3.11", "-c",
                             HOLD_RUN_DIR, str(next(tmp.glob("*.whl")))],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=tmp)
    assert proc.stdout is not None
    root = Path(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert root.is_dir()
    return root


def owner_and_mode(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, stat.S_IMODE(st.st_mode)


def test_root_then_unprivileged_user_each_private_and_reaping_only_their_own(
        shared_tmp: Path) -> None:
    nobody = int(subprocess.run(["id", "-u", USER], capture_output=True, text=True).stdout)
    first = harness(shared_tmp, as_user=False, report="r-root")
    assert first.returncode == 0, first.stderr
    root_left = dead_run_dir(shared_tmp, as_user=False)
    assert owner_and_mode(root_left.parent) == (0, 0o700)
    assert owner_and_mode(root_left) == (0, 0o700)

    second = harness(shared_tmp, as_user=True, report="r-user")
    assert second.returncode == 0, second.stderr  # no PermissionError after a root run
    assert "Traceback" not in second.stderr
    user_parent = shared_tmp / f"q-kangaroo-smoke-{nobody}"
    assert owner_and_mode(user_parent) == (nobody, 0o700)
    assert root_left.exists()  # the user's reaper never touches root's runs

    user_left = dead_run_dir(shared_tmp, as_user=True)
    assert owner_and_mode(user_left) == (nobody, 0o700)
    third = harness(shared_tmp, as_user=False, report="r-root2")
    assert third.returncode == 0, third.stderr
    assert not root_left.exists()  # root reaped its own dead run ...
    assert user_left.exists()  # ... and left the user's alone
    fourth = harness(shared_tmp, as_user=True, report="r-user2")
    assert fourth.returncode == 0, fourth.stderr
    assert not user_left.exists()
    assert not [p for parent in shared_tmp.glob("q-kangaroo-smoke-*") for p in parent.iterdir()]


@pytest.mark.parametrize("plant", ["world-writable", "symlink"])
def test_a_parent_planted_by_another_user_is_refused(shared_tmp: Path, plant: str) -> None:
    planted = shared_tmp / "q-kangaroo-smoke-0"
    decoy = shared_tmp / "decoy"
    cmd = (f"mkdir -m 777 {planted}" if plant == "world-writable"
           else f"mkdir -m 777 {decoy} && ln -s {decoy} {planted}")
    subprocess.run([*AS_USER, "sh", "-c", cmd], check=True)
    run = harness(shared_tmp, as_user=False, report="r")
    assert run.returncode == 2, run.stderr
    lines = [line for line in run.stderr.splitlines()  # the error, after the matrix used
             if line.strip() and not line.startswith("matrix: ")]
    assert len(lines) == 1 and "is not a private directory of this user" in lines[0], lines
    assert not (shared_tmp / "r").exists() or not list((shared_tmp / "r").iterdir())
    assert not (decoy.exists() and list(decoy.iterdir()))  # nothing written through it
