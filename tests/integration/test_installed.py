"""The harness as an installed tool: a real non-editable install, run from another directory,
finds its default matrix and image recipes (package data)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_non_editable_install_lists_cells_from_anywhere(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a clean copy of the committed tree: what a clone holds
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        dest = source / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_symlink():
            dest.symlink_to((ROOT / name).readlink())
        elif (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest)
    uv = [sys.executable, "-m", "uv"]
    venv = tmp_path / "venv"
    subprocess.run([*uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True)
    subprocess.run([*uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
                    str(source)], check=True, timeout=600)
    shutil.rmtree(source)  # nothing may still point into the source tree
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cmd in ([str(venv / "bin" / "python"), "-m", "harness", "--list"],
                [str(venv / "bin" / "q-kangaroo-smoke"), "--list"]):
        proc = subprocess.run(cmd, cwd=elsewhere, capture_output=True, text=True, timeout=120,
                              env={"PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, proc.stderr
        assert "docker-debian11-py3.9\tcontainer\tdebian11-py3.9" in proc.stdout
        assert "venv-py3.12\tvenv\t3.12" in proc.stdout
    recipes = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "harness.imaging", "--list"], cwd=elsewhere,
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert recipes.returncode == 0, recipes.stderr
    assert "debian12-py3.11" in recipes.stdout
    site = next((venv / "lib").glob("python3*/site-packages/smoke_defaults"))
    assert (site / "images" / "Dockerfile").is_file()
    assert (site / "images" / "scripts" / "scrub-gmp.sh").stat().st_mode & 0o111
