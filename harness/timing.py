"""Phase timing for ``nox -s bench -- --profile``: off by default, a no-op when off.

``Q_KANGAROO_PROFILE=FILE`` turns it on: ``mark(label)`` notes when a phase *ended*
(wall clock, per thread; a phase lasts from the thread's previous mark), ``begin(cell)`` starts
a cell's sequence on its worker thread, ``probe(cell, events)`` adds the probe's own marks
(``timing`` events, same clock: a container shares the host's kernel), and ``write()`` saves
everything as JSON.  Only bench/bench.py reads it; nothing here judges anything.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

ENV = "Q_KANGAROO_PROFILE"

#: (thread, cell or "", label, wall time); None when profiling is off
_marks: list[tuple[str, str, str, float]] | None = [] if os.environ.get(ENV) else None
_cells: dict[str, str] = {}  # thread name -> the cell it runs now
STARTED = time.time()  # this module is imported first (harness/__main__.py)


def enabled() -> bool:
    """Whether this run is profiled."""
    return _marks is not None


def mark(label: str) -> None:
    """The phase ``label`` of the calling thread ended now."""
    if _marks is not None:
        name = threading.current_thread().name
        _marks.append((name, _cells.get(name, ""), label, time.time()))


def begin(cell: str) -> None:
    """The calling thread starts ``cell``: its later marks are that cell's."""
    if _marks is not None:
        _cells[threading.current_thread().name] = cell
        mark("begin")


def probe(cell: str, events: Iterable[Mapping[str, Any]]) -> None:
    """The probe's own marks for ``cell`` (its ``timing`` events)."""
    if _marks is None:
        return
    for ev in events:
        if ev.get("event") == "timing":
            for label, at in ev.get("marks", []):
                _marks.append((f"probe:{ev.get('mode')}", cell, str(label), float(at)))


def write() -> None:
    """Save the marks to the file named by the environment variable (when profiling)."""
    path = os.environ.get(ENV)
    if _marks is None or not path:
        return
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"started": STARTED, "marks": sorted(_marks, key=lambda m: m[3])}, fh)
