"""Errors that end a run before or around the cells, each with its exit code."""

from __future__ import annotations

import os
from typing import TextIO

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_CLOSED_PIPE = 141  # the reader of stdout went away (`--list | head`): 128 + SIGPIPE


class HarnessError(Exception):
    """A one-line problem with the input or the host; the message says what to do."""

    exit_code = EXIT_INPUT


class InputError(HarnessError):
    """Bad matrix, wheel path or command line."""


class InfrastructureError(HarnessError):
    """The host cannot run what was asked (no engine, no interpreter, no namespace)."""


def closed_pipe(stream: TextIO) -> int:
    """The reader of ``stream`` went away (``| head``): point its descriptor at /dev/null, so
    that no later write or the interpreter's final flush fails, and give the exit code."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_CLOSED_PIPE
