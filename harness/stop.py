"""SIGINT/SIGTERM -> one flag (a threading.Event); nothing is ever raised from a handler.

Installed once, first thing in the process.  The Python-level handler only records the
first signal's number; the C-level wakeup fd wakes a watcher thread that sets the event, so
the flag is set at once even while the main thread sits in a blocking call, and no lock is
ever taken inside a handler.  Every long wait polls the event; later signals are no-ops
(``nox`` forwards what the process group already got: duplicates are normal).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(Exception):
    """Raised in a worker thread (never in a handler) to unwind work after a stop signal."""


class StopSignals:
    """The run's stop flag and the handlers that set it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: int | None = None  # number of the first stop signal
        self._old: dict[int, object] = {}
        self._old_fd = -1
        self._pipe: tuple[int, int] | None = None

    @property
    def name(self) -> str:
        """SIGINT / SIGTERM, for messages."""
        return signal.Signals(self.received).name if self.received else "stop request"

    def install(self) -> StopSignals:
        """Take over SIGINT and SIGTERM (main thread only); returns self."""
        read, write = os.pipe()
        os.set_blocking(write, False)
        self._pipe = (read, write)
        self._old_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        for s in STOP_SIGNALS:
            self._old[s] = signal.signal(s, self._on_signal)
        threading.Thread(target=self._watch, args=(read,), name="stop-signals",
                         daemon=True).start()
        return self

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """Record the first signal; never raise, never lock (the wakeup fd does the rest)."""
        if self.received is None:
            self.received = signum

    def _watch(self, fd: int) -> None:
        """Set the event on each stop signal's wakeup byte; the read end is ours to close."""
        try:
            while data := os.read(fd, 64):
                if any(b in STOP_SIGNALS for b in data):
                    self.event.set()
        finally:
            os.close(fd)

    def uninstall(self) -> None:
        """Give the handlers back (in-process callers such as tests)."""
        for s, handler in self._old.items():
            signal.signal(s, handler)  # type: ignore[arg-type]
        self._old.clear()
        if self._pipe is not None:
            signal.set_wakeup_fd(self._old_fd)
            with contextlib.suppress(OSError):
                os.close(self._pipe[1])  # EOF: the watcher ends and closes the read end
            self._pipe = None
