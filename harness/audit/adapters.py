"""The one place the harness uses a dependency's undocumented Python interface.

check-wheel-contents documents only its command line, whose output is prose; its checker
classes are what that command line runs. Everything else the audit uses is public: auditwheel's
versioned ``show --json``, abi3audit's ``--report`` JSON, packaging, readme_renderer,
pyelftools. tests/unit/test_audit_units.py runs this adapter on a real wheel and fails loudly
when the classes change; pyproject.toml bounds the version from above.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class ContentsFailure:
    """One failed check of check-wheel-contents."""

    check: str  # its code, e.g. "W009"
    message: str
    paths: tuple[str, ...]


def wheel_contents_failures(path: Path) -> list[ContentsFailure]:
    """check-wheel-contents' default checks on one wheel (its exceptions propagate)."""
    from check_wheel_contents.checker import WheelChecker
    from check_wheel_contents.contents import WheelContents

    checker = WheelChecker()
    checker.configure_options()
    return [ContentsFailure(check=f.check.name, message=str(f.check.value),
                            paths=tuple(str(a) for a in f.args))
            for f in checker.check_contents(WheelContents.from_wheel(path))]
