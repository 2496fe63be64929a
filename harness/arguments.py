"""The command line's grammar, light enough for front doors (noxfile) to import."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from harness import config
from harness.errors import InputError, closed_pipe
from harness.resources import default_matrix

DEFAULT_MATRIX = default_matrix()  # when no --matrix, ./matrix.yaml or pyproject table


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


def color_choice(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """--color (or its variable) before the full parse: the console exists from the start
    (a bad value is reported by the full parse)."""
    p = output_options()
    try:
        config.apply_environment(p, environ)
        return str(p.parse_known_args(list(argv))[0].color)
    except (InputError, SystemExit):
        return "auto"


def verbosity(args: argparse.Namespace) -> int:
    """-v minus -q."""
    return int(args.verbose) - int(args.quiet)


def program_name() -> str:
    """How the user called us: the console script, or ``python -m harness``."""
    called = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return config.TOOL if called.startswith(config.TOOL) else "python -m harness"


def tool_version() -> str:
    """The harness's own version (the installed distribution's)."""
    try:
        return metadata.version(config.TOOL)
    except metadata.PackageNotFoundError:
        return "unknown (not installed: pip install .)"


def check_old_spellings(argv: Sequence[str]) -> None:
    """``--version V`` once meant the release set's version: say what it is now."""
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--version=") else (
            argv[i + 1] if arg == "--version" and i + 1 < len(argv)
            and not argv[i + 1].startswith("-") else None)
        if value is None:
            continue
        if re.fullmatch(r"v?\d[\w.+!-]*", value):
            raise InputError(f"--version {value}: --version prints {config.TOOL}'s own version "
                             f"now; for the release set's version write --release-version "
                             f"{value}")
        raise InputError(f"--version {value}: --version takes no value (it prints "
                         f"{config.TOOL}'s version); drop it, or write --release-version V")


def answer_early(argv: Sequence[str]) -> None:
    """--help, --version, --print-completion: answered (and exit) before the heavy imports."""
    wanted = {"-h", "--help", "--version", "--print-completion"}
    if argv[:1] == ["merge"] or not wanted & {a.split("=", 1)[0] for a in argv}:
        return
    try:
        check_old_spellings(argv)
    except InputError:
        return  # the run says it, as one line
    try:  # exits after printing what was asked; a mistake elsewhere: the run says it
        with contextlib.redirect_stderr(io.StringIO()):
            parser(exit_on_error=False).parse_known_args(list(argv))
    except argparse.ArgumentError:
        return
    except BrokenPipeError:  # `--print-completion bash | head`
        sys.exit(closed_pipe(sys.stdout))
    except SystemExit as exc:
        if exc.code not in (0, None):
            return
        raise


def _completion(p: argparse.ArgumentParser) -> dict[str, Any]:
    """--print-completion SHELL (shtab); its completers for files and directories.  Without
    shtab (a front door such as the noxfile imports this module) there is no such option."""
    try:
        import shtab
    except ImportError:
        return {}
    shtab.add_argument_to(p, ["--print-completion"],
                          help="print the completion script for this shell and exit")
    return {"file": shtab.FILE, "directory": shtab.DIRECTORY}


def parser(*, exit_on_error: bool = True) -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(
        parents=[output_options()],
        prog=program_name(),
        exit_on_error=exit_on_error,
        usage="%(prog)s [options] DIST [DIST ...]\n"
              "       %(prog)s merge REPORT_DIR [REPORT_DIR ...] [--report-dir OUT]",
        description="Prove a wheel installs and works on clean machines: fresh venvs and "
                    "containers per matrix.yaml, GMP made unreachable, honest verdicts. "
                    "Commands: merge — join the reports of --shard runs into one report and "
                    "exit code (python -m harness merge --help).",
        epilog="Exit codes: 0 all PASS; 1 any FAIL (or INVALID/TIMEOUT without ERROR); 2 bad "
               "input, or any ERROR without a FAIL; 130 interrupted. With --prepublish: 0 go, "
               "1 no-go, 2 bad input or nothing but unjudged checks. 141: the reader of the "
               f"output went away. Every option can also be set as {config.ENV_PREFIX}<OPTION> "
               "(shown as [env ...]); the command line wins.")
    completion = _completion(p)
    p.add_argument("dist", nargs="*", type=Path, metavar="DIST",
                   help="what to test: a wheel, or a release set (a dist/ directory, or "
                        "wheel and sdist files); each cell installs the wheel pip would pick"
                   ).complete = completion.get("file")  # type: ignore[attr-defined]
    p.add_argument("--version", action="version", version=f"%(prog)s {tool_version()}",
                   help="print the harness's version and exit")
    p.add_argument("--release-version", dest="release_version", default=None, metavar="V",
                   help="the release set's version to test (default: the newest final "
                        "release in DIST)")
    p.add_argument("--pre", action="store_true",
                   help="let pre- and dev-releases be the newest version")
    p.add_argument("--matrix", type=Path, default=None, metavar="FILE",
                   help=f"the matrix (default: ./{config.MATRIX_FILE}, else "
                        f"[tool.{config.TOOL}] in ./pyproject.toml, else the bundled "
                        "q_kangaroo matrix; the run says which)"
                   ).complete = completion.get("file")  # type: ignore[attr-defined]
    p.add_argument("--select", "-k", action="append", default=[], metavar="PATTERN",
                   help="only cells whose id or alias matches (fnmatch; repeatable; a,b)")
    p.add_argument("--jobs", "-j", type=int, default=None,
                   help="cells at once (default: matrix defaults.jobs, else CPU count)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per cell (override)")
    p.add_argument("--report-dir", type=Path, default=Path("reports"),
                   help="where smoke.json and smoke.junit.xml go (default: reports/)"
                   ).complete = completion.get("directory")  # type: ignore[attr-defined]
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
                        "balanced by kind); `merge` joins the reports")
    config.document_environment(p)
    return p


def _peek(argv: Sequence[str]) -> argparse.Namespace | None:
    """What these arguments ask for, without acting (None: --help, --version, a completion
    script, or a mistake the real run will report)."""
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            return parser().parse_known_args(list(argv))[0]
    except SystemExit:
        return None


def needs_default_wheel(argv: Sequence[str]) -> bool:
    """Whether these harness arguments lack a wheel where a run needs one (for front doors
    such as nox, which add a default one).  Options may come before or after the wheel:
    argparse decides; arguments it rejects count as complete (the harness says why)."""
    a = _peek(argv)
    return a is not None and not a.dist and not a.list


def runs_cells(argv: Sequence[str]) -> bool:
    """Whether these arguments run cells (not --help, --version, --list, a completion
    script): front doors start an engine only then."""
    a = _peek(argv)
    return a is not None and not a.list
