"""Rootless venv cells for real: a user this test creates runs the harness, unprivileged.

The user gets what an ordinary user has: a Python it can read (the system's, not root's
pyenv), the harness's dependencies in a venv built from it, a copy of the harness and of
the wheels in a directory it can read, its own TMPDIR.  Its cells must hide the host's GMP
through an unprivileged user namespace: the good wheel PASS, the unbundled one FAIL.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import requires
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from tests.conftest import ROOT

SYSTEM_PYTHON = "/usr/bin/python3"  # readable by every user, unlike root's pyenv
DEPS_CACHE = Path("/var/tmp/q-kangaroo-smoke-tests")
USER_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True, kw_only=True)
class Unprivileged:
    """A real user without privileges, and what it can read to run the harness."""

    name: str
    uid: int
    python: Path   # runs the harness: a venv of the system Python with its dependencies
    home: Path
    share: Path    # readable copy of the harness and the wheels; its report dirs


def _harness_venv() -> Path:
    """A venv of the system Python holding the harness's dependencies (cached by
    pyproject.toml); root-owned and world-readable, like a system-wide install."""
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    venv = DEPS_CACHE / f"venv-{key}"
    if not (venv / "ok").exists():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True)
        deps = [r for r in requires("q-kangaroo-smoke") or []
                if Requirement(r).marker is None]  # the harness's own, not the test extras
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *deps],
                       check=True)
        (venv / "ok").write_text("ok\n")
    DEPS_CACHE.chmod(0o755)
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def unprivileged(wheels: dict[str, Path]) -> Iterator[Unprivileged]:
    assert os.geteuid() == 0, "creating a test user needs root (CI runs these tests as root)"
    assert Path(SYSTEM_PYTHON).exists(), f"{SYSTEM_PYTHON} is needed as the user's Python"
    name = f"qksmoke{os.getpid() % 100000}"
    subprocess.run(["useradd", "--create-home", "--user-group", "--shell", "/bin/sh", name],
                   check=True)
    share = Path(tempfile.mkdtemp(prefix="qk-rootless-", dir="/tmp"))
    try:
        entry = pwd.getpwnam(name)
        python = _harness_venv()
        for part in ("harness", "smoke_defaults", "images"):  # the checkout's layout
            shutil.copytree(ROOT / part, share / "src" / part,
                            ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "q_kangaroo_reference.py", share)  # the matrix's reference module
        for variant in ("good", "nogmp"):
            (share / variant).mkdir()
            shutil.copy(wheels[variant], share / variant)
        for sub in ("tmp", "reports"):
            (share / sub).mkdir()
            os.chown(share / sub, entry.pw_uid, entry.pw_gid)
        for path in [share, *share.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else 0o644)
        yield Unprivileged(name=name, uid=entry.pw_uid, python=python,
                           home=Path(entry.pw_dir), share=share)
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False)
        subprocess.run(["userdel", "--remove", name], check=False, capture_output=True)
        shutil.rmtree(share, ignore_errors=True)


def run_as(user: Unprivileged, *args: str) -> subprocess.CompletedProcess[str]:
    """The harness as the unprivileged user, with an environment built from nothing."""
    env = [f"PATH={USER_PATH}", f"HOME={user.home}", f"TMPDIR={user.share / 'tmp'}",
           f"PYTHONPATH={user.share / 'src'}", "LANG=C.UTF-8"]
    return subprocess.run(["runuser", "-u", user.name, "--", "env", "-i", *env,
                           str(user.python), "-m", "harness", *args], capture_output=True,
                          text=True, cwd=user.share, timeout=600)


def test_unprivileged_user_cells_hide_the_host_gmp(unprivileged: Unprivileged) -> None:
    data = yaml.safe_load((ROOT / "matrix.yaml").read_text())
    version = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print('%d.%d' % "
                              "sys.version_info[:2])"], capture_output=True, text=True,
                             check=True).stdout.strip()
    data["environments"] = {"venv": [{"python": version}]}
    data["package"]["checks"].append({
        "name": "network_interfaces", "expected": ["lo"],
        "expr": "[n for _, n in __import__('socket').if_nameindex()]"})
    matrix = unprivileged.share / "matrix.yaml"
    matrix.write_text(yaml.safe_dump(data))
    matrix.chmod(0o644)
    verdicts = {}
    for variant in ("good", "nogmp"):
        wheel = next((unprivileged.share / variant).glob("*.whl"))
        reports = unprivileged.share / "reports" / variant
        proc = run_as(unprivileged, str(wheel), "--matrix", str(matrix), "--report-dir",
                      str(reports))
        assert (reports / "smoke.json").exists(), proc.stdout + proc.stderr
        cell = json.loads((reports / "smoke.json").read_text())["cells"][0]
        checks = {c["name"]: c for c in cell["checks"]}
        assert checks["sterility"]["status"] == "pass", (cell["reason"], proc.stderr)
        assert checks["sterility"]["data"]["evidence"]["gmp"]["files"] == []
        if variant == "good":
            assert checks["network_interfaces"]["status"] == "pass", cell["reason"]
        else:
            assert "libgmp.so.10" in cell["reason"], cell["reason"]
        assert (reports / "smoke.json").stat().st_uid == unprivileged.uid  # ran as the user
        verdicts[variant] = (cell["verdict"], proc.returncode)
    assert verdicts == {"good": ("PASS", 0), "nogmp": ("FAIL", 1)}


def test_an_unprivileged_users_venv_cell_cannot_reach_the_host(
        unprivileged: Unprivileged) -> None:
    """The escape wheel as the user: besides root's things, the user's own 0600 file in its
    home and its own writable directories stay out of reach (an empty home, a read-only
    host)."""
    from tests.conftest import _load_builder
    from tests.integration.test_isolation import assert_contained, escape_targets

    escape = _load_builder().build_variants(["escape"])["escape"]
    (unprivileged.share / "escape").mkdir()
    wheel = Path(shutil.copy(escape, unprivileged.share / "escape"))
    wheel.chmod(0o644)
    own = unprivileged.home / "own-secret"
    own.write_text("the user's own\n")
    os.chown(own, unprivileged.uid, unprivileged.uid)
    own.chmod(0o600)
    writable = unprivileged.share / "reports"  # the user's: written by the harness
    # (its home in the cell is an empty tmpfs: writing there reaches nothing; reading shows it)
    with escape_targets(write=(str(writable / "written"),), read=(str(own),)) as targets:
        version = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print('%d.%d' % "
                                  "sys.version_info[:2])"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        matrix = unprivileged.share / "escape.yaml"
        matrix.write_text(yaml.safe_dump(targets.matrix(version)))
        matrix.chmod(0o644)
        reports = writable / "escape"
        proc = run_as(unprivileged, str(wheel), "--matrix", str(matrix), "--report-dir",
                      str(reports))
        assert (reports / "smoke.json").exists(), proc.stdout + proc.stderr
        cell = json.loads((reports / "smoke.json").read_text())["cells"][0]
        assert_contained(cell, targets)
        assert proc.returncode == 0
