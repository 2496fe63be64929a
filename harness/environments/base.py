"""The one environment abstraction: run the probe somewhere fresh, hand back a ProbeRun."""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import probe
from harness.cells import Cell
from harness.matrix import Package
from harness.verdict import ProbeRun
from harness.wheel import Release

PROBE_SOURCE = Path(probe.__file__).read_text(encoding="utf-8")
CELL_PATH = "/usr/local/bin:/usr/bin:/bin"


def cell_variables(home: str, tmp: str) -> dict[str, str]:
    """A cell's whole environment, built from nothing: no host variable reaches it."""
    return {"PATH": CELL_PATH, "HOME": home, "TMPDIR": tmp, "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8"}


@dataclass(frozen=True, kw_only=True)
class ProbeSpec:
    """What the probe needs: the package declaration, the release set (its wheels staged in
    one directory) and where things are in the cell."""

    package: Package
    release: Release
    dependencies: Path | None = None  # the host's staged dependency wheelhouse, if any

    @property
    def wheel_dir(self) -> Path:
        """The host directory holding the staged wheels (all of the set, nothing else)."""
        return self.release.wheels[0].path.parent

    def to_json(self, *, wheel_dir: str, uv: str, workdir: str, linger: int = 0,
                venv_made_by: str = "", dependencies: str = "") -> str:
        """The probe's command-line argument for one cell (``venv_made_by``: made already;
        ``wheel_dir``, ``dependencies``: the staged set and wheelhouse as the cell sees them)."""
        pkg = self.package
        files = self.release.files
        return json.dumps({
            "mode": "cell", "uv": uv, "workdir": workdir, "linger": linger,
            "venv_made_by": venv_made_by,
            "release": {"dir": wheel_dir, "dependencies": dependencies,
                        "requirement": f"{files.distribution}=={files.version}",
                        "files": {w.filename: {"extensions": w.extension_modules()}
                                  for w in self.release.wheels}},
            "package": {
                "distribution": pkg.distribution, "import_name": pkg.import_name,
                "version_from": list(pkg.version_from), "libraries": list(pkg.bundled_libraries),
                "forbidden_env": list(pkg.absent_env),
                "extensions": [],  # the installed file's, once the probe knows which
                "checks": [c.to_probe() for c in pkg.checks],
                "budgets": pkg.step_budgets(),
                "reference": pkg.reference.to_probe() if pkg.reference else None,
            },
        })

    def argv(self, python: str, **where: str | int) -> list[str]:
        """``python -I -c BOOTSTRAP SOURCE SPEC``: nothing needed on the target's disk."""
        # -S: the base interpreter's own site-packages (and .pth files) play no part
        return [python, "-I", "-S", "-c", probe.BOOTSTRAP, PROBE_SOURCE,
                self.to_json(**where)]  # type: ignore[arg-type]


def parse_events(stdout: str) -> tuple[dict[str, Any], ...]:
    """The probe's event lines; everything else is noise."""
    out = []
    for line in stdout.splitlines():
        if line.startswith(probe.MARKER):
            try:
                out.append(json.loads(line[len(probe.MARKER):]))
            except json.JSONDecodeError:
                continue
    return tuple(out)


class CellEnvironment(ABC):
    """A fresh place to run one cell.  Use as a context manager; ``abort`` is thread-safe.

    ``note`` qualifies an INVALID verdict (e.g. why nothing could be hidden); ``kept`` names
    what was left up for debugging.
    """

    note: str | None = None
    kept: str | None = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._aborted = False

    def __enter__(self) -> CellEnvironment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def run(self, spec: ProbeSpec, timeout: float) -> ProbeRun:
        """Run the probe once; never raises for what happens inside the cell."""

    @abstractmethod
    def abort(self) -> None:
        """Stop whatever runs now (Ctrl-C, shutdown)."""

    @abstractmethod
    def close(self) -> None:
        """Remove everything this environment made."""


Log = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class Setup:
    """What preparing one run's cells starts from (the same for every kind of cell)."""

    run_id: str
    root: Path  # the run's private temp dir
    package: Package
    uv: str  # the host's uv, found once before any thread
    log: Log
    keep_failed: bool = False
    build_images: bool = True


class Resources(ABC):
    """What one kind of cell shares in a run, made once by that kind's ``prepare``."""

    @abstractmethod
    def environment(self, cell: Cell) -> CellEnvironment:
        """A fresh environment for ``cell``; InfrastructureError when it cannot have one."""
