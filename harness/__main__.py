"""``python -m harness`` and the ``q-kangaroo-smoke`` script: stop handlers first, --help,
--version and --print-completion answered before the heavy imports, then the CLI."""

import sys

from harness import timing  # noqa: F401  (first: its clock starts the profile)
from harness.stop import StopSignals


def main() -> None:
    """The program."""
    stop = StopSignals().install()
    from harness.arguments import answer_early

    answer_early(sys.argv[1:])
    from harness.cli import entry

    entry(stop)


if __name__ == "__main__":
    main()
