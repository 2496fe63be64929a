"""Which declared libraries an interpreter itself needs (host side, before any cell runs).

A library that the cell's Python or its standard library's extensions load (the system's
liblzma for ``_lzma``, libfreetype through ``_tkinter``'s libtk) must stay loadable for
them: hiding it breaks the interpreter, not the wheel.  Such a library is kept visible, and
the probe's provenance proves, file by file, that the package resolves its own copy.  The
answer comes from the probe itself (mode ``needs``), run by that interpreter.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness import probe
from harness.environments.base import PROBE_SOURCE, parse_events


@dataclass(frozen=True, kw_only=True)
class Needs:
    """Declared libraries split into those cells hide and those interpreters need."""

    hidden: tuple[str, ...]
    kept: Mapping[str, Mapping[str, tuple[str, ...]]]  # library -> interpreter -> its files

    def notes(self, kind: str) -> list[str]:
        """One line per kept library, said before any cell runs."""
        return [f"note: lib{lib} stays visible in {kind} cells: the interpreter needs it ("
                + "; ".join(f"{py}: {', '.join(files)}" for py, files in by.items())
                + "); each file of the package is proven to resolve the wheel's own copy"
                for lib, by in self.kept.items()]


def interpreter_needs(python: Path, libraries: Sequence[str],
                      timeout: float = 60) -> dict[str, list[str]]:
    """library -> the files this interpreter (or its stdlib extensions) resolves it to;
    an interpreter that cannot answer needs nothing (everything is hidden, as before)."""
    spec = json.dumps({"mode": "needs", "libraries": list(libraries)})
    try:
        out = subprocess.run([str(python), "-I", "-S", "-c", probe.BOOTSTRAP, PROBE_SOURCE,
                              spec], capture_output=True, text=True, timeout=timeout,
                             env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    event = next((e for e in parse_events(out) if e.get("event") == "needs"), {})
    return {str(k): [str(p) for p in v] for k, v in (event.get("needs") or {}).items() if v}


def split(libraries: Sequence[str], pythons: Iterable[Path]) -> Needs:
    """Hide what no interpreter of the run needs; keep the rest (with who needs it)."""
    kept: dict[str, dict[str, tuple[str, ...]]] = {}
    pythons = list(pythons)
    with ThreadPoolExecutor(max_workers=len(pythons) or 1) as pool:
        answers = pool.map(lambda p: interpreter_needs(p, libraries), pythons)
        for python, found in zip(pythons, answers, strict=True):
            for lib, files in found.items():
                kept.setdefault(lib, {})[str(python)] = tuple(files)
    return Needs(hidden=tuple(lib for lib in libraries if lib not in kept), kept=kept)
