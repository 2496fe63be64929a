"""Errors that end a run before or around the cells, each with its exit code."""

from __future__ import annotations

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
