"""The one environment abstraction: run the probe somewhere fresh, hand back a ProbeRun."""

from __future__ import annotations

import ast
import base64
import json
import threading
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from typing_extensions import Unpack

from harness import emulation, probe, probe_native, timing
from harness.cells import Cell
from harness.matrix import Package
from harness.verdict import ProbeRun
from harness.wheel import Release


def _lines_without(source: str, drop: Callable[[ast.stmt], bool]) -> list[str]:
    """The source's lines minus those of the top-level statements ``drop`` picks."""
    lines = source.splitlines(keepends=True)
    for node in reversed(ast.parse(source).body):
        if drop(node):
            del lines[node.lineno - 1:node.end_lineno]
    return lines


def _imports_from(module: str) -> Callable[[ast.stmt], bool]:
    return lambda node: isinstance(node, ast.ImportFrom) and node.module == module


def probe_source() -> str:
    """The one program every cell runs (venv, container, host): probe.py with
    probe_native.py spliced in place of its ``from harness.probe_native import ...``
    (probe_native's own ``from __future__`` line dropped: probe.py's comes first)."""
    native = "".join(_lines_without(Path(probe_native.__file__).read_text(encoding="utf-8"),
                                    _imports_from("__future__")))
    own = Path(probe.__file__).read_text(encoding="utf-8")
    lines = own.splitlines(keepends=True)
    splice = [n for n in ast.parse(own).body if _imports_from("harness.probe_native")(n)]
    if len(splice) != 1:
        raise RuntimeError("probe.py must import from harness.probe_native exactly once")
    node = splice[0]
    return "".join([*lines[:node.lineno - 1], native, *lines[node.end_lineno:]])


def pack(source: str) -> str:
    """The source compressed into the ``zlib:`` form probe.BOOTSTRAP also runs (short
    enough for Windows' 32767-character command line)."""
    return "zlib:" + base64.b64encode(zlib.compress(source.encode("utf-8"), 9)).decode("ascii")


PROBE_SOURCE = probe_source()
CELL_PATH = "/usr/local/bin:/usr/bin:/bin"


def cell_variables(home: str, tmp: str) -> dict[str, str]:
    """A cell's whole environment, built from nothing: no host variable reaches it."""
    return {"PATH": CELL_PATH, "HOME": home, "TMPDIR": tmp, "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8"}


@dataclass(frozen=True, kw_only=True)
class Emulator:
    """A cell's package process under qemu-user: the CPU, and qemu's path as the cell sees
    it."""

    cpu: emulation.Cpu
    qemu: str

    def to_probe(self) -> dict[str, object]:
        """The probe's ``emulator``: the command prefix and what it stands for."""
        return {"argv": self.cpu.argv(self.qemu), **self.cpu.to_probe(),
                "budget_factor": emulation.BUDGET_FACTOR}


class Where(TypedDict, total=False):
    """Where things are for the probe, as the cell sees them (``ProbeSpec.to_json``)."""

    wheel_dir: str
    uv: str
    workdir: str
    linger: int
    venv_made_by: str
    dependencies: str
    emulator: Emulator | None


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
                venv_made_by: str = "", dependencies: str = "",
                emulator: Emulator | None = None) -> str:
        """The probe's command-line argument for one cell (``venv_made_by``: made already;
        ``wheel_dir``, ``dependencies``: the staged set and wheelhouse as the cell sees them;
        ``emulator``: the package's process runs under it, its step budgets scaled)."""
        pkg = self.package
        files = self.release.files
        return json.dumps({
            "mode": "cell", "uv": uv, "workdir": workdir, "linger": linger,
            **({"profile": True} if timing.enabled() else {}),
            "venv_made_by": venv_made_by,
            "emulator": emulator.to_probe() if emulator else None,
            "release": {"dir": wheel_dir, "dependencies": dependencies,
                        "requirement": f"{files.distribution}=={files.version}",
                        "files": {w.filename: {"extensions": w.extension_modules()}
                                  for w in self.release.wheels}},
            "package": {
                "distribution": pkg.distribution, "import_name": pkg.import_name,
                "version_from": list(pkg.version_from), "libraries": list(pkg.bundled_libraries),
                "forbidden_env": list(pkg.absent_env),
                "extensions": [],  # the installed file's, once the probe knows which
                "skip_extensions": list(pkg.skip_extensions),
                "checks": [c.to_probe() for c in pkg.checks],
                "budgets": (pkg.scaled(emulation.BUDGET_FACTOR) if emulator
                            else pkg).step_budgets(),
                "reference": pkg.reference.to_probe() if pkg.reference else None,
            },
        })

    def argv(self, python: str, *, packed: bool = False, **where: Unpack[Where]) -> list[str]:
        """``python -I -c BOOTSTRAP SOURCE SPEC``: nothing needed on the target's disk
        (``packed``: the source compressed, for Windows)."""
        # -S: the base interpreter's own site-packages (and .pth files) play no part
        source = pack(PROBE_SOURCE) if packed else PROBE_SOURCE
        return [python, "-I", "-S", "-c", probe.BOOTSTRAP, source,
                self.to_json(**where)]


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
    what was left up for debugging; ``emulation`` qualifies a TIMEOUT.
    """

    note: str | None = None
    kept: str | None = None
    emulation: str | None = None  # what emulates the cell (said when it times out)
    emulated: str | None = None  # floor cells: the CPU the package's process runs on

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
