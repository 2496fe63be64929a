"""Find a host interpreter the way virtualenv does (python-discovery), pyenv's installs too.

python-discovery looks at an explicit path, the running interpreter, PATH (resolving pyenv,
mise and asdf shims), uv-managed Pythons, and on Windows the ``py`` launcher's registry. The
installs under ``pyenv root`` are searched after all of PATH, newest first, even when pyenv
has not selected them. What each candidate is stays cached (as virtualenv does) until its
executable's mtime changes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version
from python_discovery import DiskCache, PythonInfo, get_interpreter

from harness.errors import InfrastructureError
from harness.resources import cache_dir


@dataclass(frozen=True, kw_only=True)
class Interpreter:
    """A verified interpreter: the real executable, its version and its library directory."""

    executable: Path
    version: str
    libdir: str = ""
    stdlib_venv: bool = True  # ``python -m venv`` works (else virtualenv makes the venvs)


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


def _pyenv_bins() -> list[str]:
    """``bin`` of every final-release install under pyenv, newest first."""
    try:  # a location this user cannot read (root's PYENV_ROOT after su) is not there
        root = pyenv_root()
        entries = list((root / "versions").iterdir()) if root is not None else []
    except OSError:
        return []
    found: list[tuple[Version, Path]] = []
    for entry in entries:
        try:
            v = Version(entry.name)
            usable = not v.is_prerelease and (entry / "bin").is_dir()
        except (InvalidVersion, OSError):
            continue
        if usable:
            found.append((v, entry / "bin"))
    return [str(p) for _, p in sorted(found, reverse=True)]


def _search_env() -> dict[str, str]:
    """The environment discovery sees: PATH then pyenv's installs; no PYTHON* variables.

    Version-manager shims are left out: they start a pyenv, slowly, and answer for versions
    it has not selected; the installs behind them are on the list.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    path = [d for d in env.get("PATH", "").split(os.pathsep)
            if d and "shims" not in Path(d).parts]
    env["PATH"] = os.pathsep.join([*path, *_pyenv_bins()])
    return env


def _release(info: PythonInfo) -> bool:
    return info.version_info.releaselevel == "final"


def find(spec: str) -> Interpreter:
    """Resolve '3.12' or '/path/to/python' to a working interpreter of that version."""
    explicit = "/" in spec or "\\" in spec  # a path (Windows' too), not a version
    # what each candidate is, asked once (a subprocess) and kept until its file changes
    info = get_interpreter(spec, env=_search_env(), cache=DiskCache(cache_dir() / "interpreters"),
                           predicate=None if explicit else _release)
    exe = None if info is None else info.system_executable or info.executable  # a venv's base
    if info is None or exe is None:
        if explicit:
            raise InfrastructureError(f"interpreter {spec} does not run; fix the path in the "
                                      "matrix")
        raise InfrastructureError(
            f"no Python {spec} found on PATH, under pyenv or uv; install it (e.g. `pyenv "
            f"install {spec}` or `uv python install {spec}`) or give its path as `python:` "
            "in the matrix")
    major, minor, micro = info.version_info[:3]
    libdir = info.sysconfig_vars.get("LIBDIR")
    return Interpreter(executable=Path(exe), version=f"{major}.{minor}.{micro}",
                       libdir=str(libdir) if libdir else "")
