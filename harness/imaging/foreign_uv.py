"""uv for another architecture's image: the host's uv version, that architecture's wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from harness.imaging.recipes import cache_dir


def _root() -> Path:
    return cache_dir() / "uv"


def is_cached(path: Path) -> bool:
    """Whether ``path`` is a uv this module downloaded (not runnable on the host)."""
    return path.parent.parent == _root()


def _pip() -> list[str] | None:
    for python in (sys.executable, shutil.which("python3")):
        if python and subprocess.run([python, "-m", "pip", "--version"],
                                     capture_output=True, check=False).returncode == 0:
            return [python, "-m", "pip"]
    return None


def binary(arch: str, version: str) -> Path | None:
    """uv ``version`` built for ``arch`` (from its manylinux wheel on the package index),
    cached; None when pip cannot get it."""
    out = _root() / f"{version}-{arch}" / "uv"
    if out.is_file():
        return out
    pip = _pip()
    if pip is None:
        return None
    with tempfile.TemporaryDirectory(prefix="q-kangaroo-smoke-uv-") as tmp:
        proc = subprocess.run(
            [*pip, "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--platform", f"manylinux2014_{arch}", f"uv=={version}", "-d", tmp],
            capture_output=True, check=False)
        wheels = list(Path(tmp).glob("uv-*.whl"))
        if proc.returncode != 0 or not wheels:
            return None
        with zipfile.ZipFile(wheels[0]) as whl:
            member = next((n for n in whl.namelist() if n.endswith(".data/scripts/uv")), None)
            if member is None:
                return None
            out.parent.mkdir(parents=True, exist_ok=True)
            partial = out.with_name(f".uv.{os.getpid()}")
            partial.write_bytes(whl.read(member))
            partial.chmod(0o755)
            partial.replace(out)
    return out
