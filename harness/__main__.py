"""``python -m harness``: stop handlers first (before the heavy imports), then the CLI."""

from harness import timing  # noqa: F401  (first: its clock starts the profile)
from harness.stop import StopSignals

_stop = StopSignals().install()

from harness.cli import entry  # noqa: E402

entry(_stop)
