"""Find a host interpreter the way users expect: explicit path, PATH, then pyenv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from harness.errors import InfrastructureError

_QUERY = ("import json,sys,sysconfig;print(json.dumps([sys.executable,'%d.%d.%d'"
          "%sys.version_info[:3],sysconfig.get_config_var('LIBDIR') or '']))")


@dataclass(frozen=True, kw_only=True)
class Interpreter:
    """A verified interpreter: the real executable and its version."""

    executable: Path
    version: str
    found_by: str
    libdir: str = ""


def _query(candidate: str, found_by: str) -> Interpreter | None:
    try:
        out = subprocess.run([candidate, "-I", "-c", _QUERY], capture_output=True, text=True,
                             timeout=30, env={"PATH": os.defpath})
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    exe, version, libdir = json.loads(out.stdout)
    return Interpreter(executable=Path(exe), version=version, found_by=found_by, libdir=libdir)


def pyenv_root() -> Path | None:
    """PYENV_ROOT, else `pyenv root`, else ~/.pyenv if it exists."""
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    if shutil.which("pyenv"):
        out = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    home = Path.home() / ".pyenv"
    return home if home.is_dir() else None


def _pyenv_candidates(want: str) -> list[Path]:
    root = pyenv_root()
    if root is None or not (root / "versions").is_dir():
        return []
    found: list[tuple[Version, Path]] = []
    for entry in (root / "versions").iterdir():
        try:
            v = Version(entry.name)
        except InvalidVersion:
            continue
        if f"{v.major}.{v.minor}" == want and not v.is_prerelease:
            found.append((v, entry / "bin" / f"python{want}"))
    return [p for _, p in sorted(found, reverse=True) if p.exists()]


def find(spec: str) -> Interpreter:
    """Resolve '3.12' or '/path/to/python' to a working interpreter of that version."""
    if "/" in spec:
        hit = _query(spec, "explicit path")
        if hit is None:
            raise InfrastructureError(f"interpreter {spec} does not run; fix the path in the "
                                      "matrix")
        return hit
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory) / f"python{spec}"
        if "shims" in candidate.parts or not os.access(candidate, os.X_OK):
            continue  # pyenv's shims answer for versions that are not selected: skip them
        hit = _query(str(candidate), "PATH")
        if hit and hit.version.startswith(spec + "."):
            return hit
    for candidate in _pyenv_candidates(spec):
        hit = _query(str(candidate), "pyenv")
        if hit and hit.version.startswith(spec + "."):
            return hit
    raise InfrastructureError(
        f"no Python {spec} found on PATH or under pyenv; install it (e.g. `pyenv install "
        f"{spec}`) or give its path as `python:` in the matrix")
