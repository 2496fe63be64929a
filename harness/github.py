"""GitHub Actions workflow commands: collapsible groups and error annotations in the log.

https://docs.github.com/actions/reference/workflows-and-actions/workflow-commands
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def active(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs in a GitHub Actions job."""
    return (os.environ if environ is None else environ).get("GITHUB_ACTIONS") == "true"


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def group(title: str) -> str:
    """The line that opens a collapsed group (closed by ``END_GROUP``)."""
    return f"::group::{_data(title)}"


END_GROUP = "::endgroup::"


def error(message: str, *, title: str = "") -> str:
    """An error annotation: shown on the run's summary page and in the log."""
    return _annotation("error", message, title)


def warning(message: str, *, title: str = "") -> str:
    """A warning annotation."""
    return _annotation("warning", message, title)


def _annotation(level: str, message: str, title: str) -> str:
    props = f" title={_property(title)}" if title else ""
    return f"::{level}{props}::{_data(message)}"
