"""The command line's grammar, light enough for front doors (noxfile) to import."""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Sequence
from pathlib import Path

from harness.resources import default_matrix

DEFAULT_MATRIX = default_matrix()


def output_options() -> argparse.ArgumentParser:
    """--color, -v, -q: shared by every command (a parent parser)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the output (auto: on a terminal, or as PY_COLORS, NO_COLOR, "
                        "FORCE_COLOR say, as in pytest)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="more detail: every check of every cell, failed cells' stderr")
    p.add_argument("-q", "--quiet", action="count", default=0,
                   help="less: no line per cell, only cells that did not pass (-qq: only "
                        "the last line)")
    return p


def verbosity(args: argparse.Namespace) -> int:
    """-v minus -q."""
    return int(args.verbose) - int(args.quiet)


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        parents=[output_options()],
        prog="python -m harness",
        usage="%(prog)s [options] DIST [DIST ...]\n"
              "       %(prog)s merge REPORT_DIR [REPORT_DIR ...] [--report-dir OUT]",
        description="Prove a wheel installs and works on clean machines: fresh venvs and "
                    "containers per matrix.yaml, GMP made unreachable, honest verdicts. "
                    "Commands: merge — join the reports of --shard runs into one report and "
                    "exit code (python -m harness merge --help).",
        epilog="Exit codes: 0 all PASS; 1 any FAIL (or INVALID/TIMEOUT without ERROR); 2 bad "
               "input, or any ERROR without a FAIL; 130 interrupted. With --prepublish: 0 go, "
               "1 no-go, 2 bad input or nothing but unjudged checks.")
    p.add_argument("dist", nargs="*", type=Path, metavar="DIST",
                   help="what to test: a wheel, or a release set (a dist/ directory, or "
                        "wheel and sdist files); each cell installs the wheel pip would pick")
    p.add_argument("--version", dest="release_version", default=None, metavar="V",
                   help="the release set's version (default: the newest final release)")
    p.add_argument("--pre", action="store_true",
                   help="let pre- and dev-releases be the newest version")
    p.add_argument("--matrix", type=Path, default=DEFAULT_MATRIX, help="matrix file")
    p.add_argument("--select", "-k", action="append", default=[], metavar="PATTERN",
                   help="only cells whose id or alias matches (fnmatch; repeatable; a,b)")
    p.add_argument("--jobs", "-j", type=int, default=None,
                   help="cells at once (default: matrix defaults.jobs, else CPU count)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per cell (override)")
    p.add_argument("--report-dir", type=Path, default=Path("reports"),
                   help="where smoke.json and smoke.junit.xml go (default: reports/)")
    p.add_argument("--keep-failed", action="store_true",
                   help="keep failed cells' containers and print how to enter them")
    p.add_argument("--no-build-images", action="store_true",
                   help="do not build missing images (their cells are ERROR)")
    p.add_argument("--list", action="store_true", help="list the cells and exit")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="--list as text, or as a JSON array for a CI job matrix (fromJSON)")
    p.add_argument("--prepublish", action="store_true",
                   help="the pre-publish gate: also audit every file of the release (run "
                        "beside the cells), set the cells against the audit, and end in one "
                        "go / no-go naming every blocker with its fix; exit 0 go, 1 no-go, "
                        "2 bad input (policy: matrix.yaml `release`)")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="run slice I of N of the selected cells (deterministic, disjoint, "
                        "balanced by kind); `python -m harness merge` joins the reports")
    return p


def needs_default_wheel(argv: Sequence[str]) -> bool:
    """Whether these harness arguments lack a wheel where a run needs one (for front doors
    such as nox, which add a default one).  Options may come before or after the wheel:
    argparse decides; arguments it rejects count as complete (the harness says why)."""
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            a, _ = parser().parse_known_args(list(argv))
    except SystemExit:  # --help, or a mistake the real run will report
        return False
    return not a.dist and not a.list
