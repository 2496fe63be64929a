"""Host cells: a fresh venv on the Windows or macOS machine the harness runs on (CI runners
where neither the Linux sandbox nor Linux containers exist).

Nothing can hide the system's libraries there, so the cell's environment is built from an
allowlist, PATH loses every directory that holds a bundled library or belongs to a package
manager (MSYS2/MinGW, Homebrew, MacPorts, conda), and the probe must then show that the
library cannot be loaded (else the cell is INVALID).  A host cell runs only on its own
system: anywhere else it is ERROR, never skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from harness.cells import Cell
from harness.environments.base import ProbeSpec, Resources, Setup
from harness.environments.process import LocalProcessEnvironment, finder
from harness.errors import InfrastructureError
from harness.interpreters import Interpreter
from harness.kinds.base import entry_of
from harness.kinds.host import HostEntry, system
from harness.probe_native import library_dirs_on_path, native_platform, under_known_prefix

#: the sys.platform of each system a host cell can need
SYSTEM_PLATFORM = {"windows": "win32", "macos": "darwin"}
#: passed through from the harness's environment on Windows (Python and the C runtime need
#: them); everything else is set for the cell or absent
WINDOWS_PASSED = ("SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT", "OS",
                  "PROCESSOR_ARCHITECTURE", "PROCESSOR_ARCHITEW6432", "PROCESSOR_IDENTIFIER",
                  "NUMBER_OF_PROCESSORS")
DARWIN_LANG = "en_US.UTF-8"
#: Windows' CreateProcess takes at most 32767 characters of command line
WINDOWS_COMMAND_LINE = 32767


@dataclass(frozen=True, kw_only=True)
class HostVariables:
    """A host cell's whole environment, and the PATH entries taken out of it."""

    variables: Mapping[str, str]
    removed_path: tuple[str, ...]


def scrub_path(path: str, libraries: Sequence[str], platform: str,
               pathsep: str = os.pathsep) -> tuple[str, tuple[str, ...]]:
    """PATH without the directories that hold a bundled library or belong to a package
    manager; returns (new PATH, removed entries)."""
    entries = [e for e in path.split(pathsep) if e]
    removed = [d for lib in libraries for d in library_dirs_on_path(path, lib, platform,
                                                                     pathsep)]
    removed += [e for e in entries if under_known_prefix(e, platform)]
    dropped = tuple(dict.fromkeys(removed))
    kept = [e for e in dict.fromkeys(entries) if e not in dropped]
    return pathsep.join(kept), dropped


def host_variables(*, platform: str, source: Mapping[str, str], home: str, tmp: str,
                   libraries: Sequence[str], pathsep: str = os.pathsep) -> HostVariables:
    """The cell's environment on Windows or macOS, from an allowlist over ``source`` (the
    harness's own environment): no MINGW_BIN, no DYLD_*/LD_*, no PYTHON*, no proxies."""
    plat = native_platform(platform)
    if plat == "linux":
        raise InfrastructureError("host cells run on Windows or macOS only")
    upper = {k.upper(): v for k, v in source.items()}  # Windows names are case-insensitive
    path, removed = scrub_path(upper.get("PATH", ""), libraries, plat, pathsep)
    if plat == "darwin":
        return HostVariables(variables={"PATH": path, "HOME": home, "TMPDIR": tmp,
                                        "LANG": DARWIN_LANG}, removed_path=removed)
    env = {name: upper[name] for name in WINDOWS_PASSED if name in upper}
    env.update({"PATH": path, "TEMP": tmp, "TMP": tmp, "USERPROFILE": home,
                "APPDATA": os.path.join(home, "AppData", "Roaming"),
                "LOCALAPPDATA": os.path.join(home, "AppData", "Local")})
    return HostVariables(variables=env, removed_path=removed)


def command_line_length(argv: Sequence[str]) -> int:
    """Characters of the command line Windows builds from ``argv`` (quoting included)."""
    return len(subprocess.list2cmdline(list(argv)))


class HostEnvironment(LocalProcessEnvironment):
    """One host cell: a fresh venv from this machine's interpreter, allowlisted environment,
    PATH scrubbed, own process group (killed on timeout/abort), temp dir removed on close."""

    def __init__(self, *, python: Path, run_root: Path, uv: str, cell_id: str,
                 libraries: Sequence[str], stdlib_venv: bool = True,
                 source_env: Mapping[str, str] | None = None,
                 platform: str = sys.platform) -> None:
        super().__init__(python=python, run_root=run_root, uv=uv, cell_id=cell_id,
                         stdlib_venv=stdlib_venv, platform=platform)
        self.libraries = tuple(libraries)
        self.source_env = dict(os.environ if source_env is None else source_env)
        self.removed_path: tuple[str, ...] = ()

    def variables(self, home: str, tmp: str) -> dict[str, str]:
        """Allowlisted; PATH scrubbed (what was removed is kept in ``removed_path``)."""
        built = host_variables(platform=self.platform, source=self.source_env, home=home,
                               tmp=tmp, libraries=self.libraries)
        self.removed_path = built.removed_path
        return dict(built.variables)

    def command(self, spec: ProbeSpec, venv_made_by: str) -> list[str]:
        """The probe; packed on Windows, whose command line is too short for it in plain."""
        if native_platform(self.platform) != "win32":
            return super().command(spec, venv_made_by)
        argv = spec.argv(str(self.python), packed=True, **self.where(spec, venv_made_by))
        if command_line_length(argv) > WINDOWS_COMMAND_LINE:
            raise InfrastructureError(f"the probe's command line is {command_line_length(argv)}"
                                      f" characters, more than Windows' {WINDOWS_COMMAND_LINE}"
                                      ": shorten the matrix's reference module or checks")
        return argv


def wrong_machine(cell: Cell, platform: str = sys.platform) -> str | None:
    """Why a host cell cannot run on this machine, or None.  The cell is then ERROR."""
    wanted = SYSTEM_PLATFORM.get(system(cell))
    if wanted == native_platform(platform):
        return None
    return (f"cell {cell.id} runs only on {system(cell)} (a {system(cell)} CI runner, see "
            f"--list --format json) but this machine is {platform}: run it there, or leave it "
            "out with --select")


@dataclass(frozen=True, kw_only=True)
class HostResources(Resources):
    """What the host cells of a run share: this machine's interpreters, the host's uv."""

    root: Path
    uv: str
    libraries: tuple[str, ...]
    interpreters: Mapping[str, Interpreter | str] = field(default_factory=dict)
    platform: str = sys.platform

    def environment(self, cell: Cell) -> HostEnvironment:
        """A fresh host cell; InfrastructureError (ERROR) on the wrong machine or without
        its interpreter."""
        problem = wrong_machine(cell, self.platform)
        if problem:
            raise InfrastructureError(problem)
        interp = self.interpreters[entry_of(cell, HostEntry).python]
        if isinstance(interp, str):
            raise InfrastructureError(interp)
        return HostEnvironment(python=interp.executable, run_root=self.root, uv=self.uv,
                               cell_id=cell.id, libraries=self.libraries,
                               stdlib_venv=interp.stdlib_venv, platform=self.platform)


def prepare(setup: Setup, cells: Sequence[Cell]) -> HostResources:
    """Find the interpreters of the cells that run on this machine (the others are ERROR)."""
    specs = sorted({entry_of(c, HostEntry).python for c in cells if not wrong_machine(c)})
    with ThreadPoolExecutor(max_workers=len(specs) or 1) as pool:
        found = dict(zip(specs, pool.map(finder(setup.root), specs), strict=True))
    for hit in found.values():
        if isinstance(hit, str):
            setup.log(f"error: {hit}")
    return HostResources(root=setup.root, uv=setup.uv, interpreters=found,
                         libraries=setup.package.bundled_libraries)
