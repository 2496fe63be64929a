# /// script
# dependencies = [
#   "nox>=2025.5.1", "pyyaml>=6", "jsonschema>=4", "tomli>=2; python_version < '3.11'",
# ]
# ///
"""Sessions: smoke (whole matrix), prepublish (the go / no-go gate), cell(<id>) (one cell),
images, tests, lint, bench.

``nox -s smoke``               test the `good` fixture wheel (built on demand)
``nox -s smoke -- [OPTIONS] PATH [OPTIONS]``  a wheel / a directory of wheels, any harness
                               options before or after it; relative paths are from where
                               nox was run
``nox -s prepublish -- DIST [OPTIONS]``  audit + the whole matrix on the same files +
                               cross-check: one go / no-go (0 go, 1 no-go, 2 bad input)
``nox -s "cell(venv-py3.12)"`` one cell;  ``nox -l`` lists them all

smoke, prepublish, cell(<id>) and images share one venv (.nox/runtime: the harness and its
runtime dependencies only); fixtures, tests, lint and bench have their own (dependency groups).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from harness import arguments as _arguments  # noqa: E402
from harness import cells as _cells  # noqa: E402
from harness import config as _config  # noqa: E402
from harness import matrix as _matrix  # noqa: E402

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["smoke"]

FIXTURE_BUILD = ROOT / "tests" / "fixture_wheels" / "build.py"
ENSURE_ENGINE = ROOT / "tools" / "ensure-docker-engine"
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
CELL_IDS = [c.id for c in _cells.expand(_matrix.load(ROOT / "matrix.yaml"))]


def _env(session: nox.Session, name: str, *, harness: bool, groups: tuple[str, ...] = ()
         ) -> Path:
    """A venv of ours, ``.nox/<name>``, shared by the sessions that use it: the harness with
    its runtime dependencies only and/or dependency groups; made again only when
    pyproject.toml changes.  Returns its python."""
    location = ROOT / ".nox" / name
    python = location / "bin" / "python"
    stamp = location / ".installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if python.exists() and stamp.is_file() and stamp.read_text() == wanted:
        return python
    requirements = [*(["-e", str(ROOT)] if harness else []),
                    *nox.project.dependency_groups(PYPROJECT, *groups)]
    uv = shutil.which("uv")
    if uv:
        session.run(uv, "venv", "-q", "--allow-existing", "-p", sys.executable, str(location),
                    external=True)
        session.run(uv, "pip", "install", "-q", "--python", str(python), *requirements,
                    external=True)
    else:  # nox depends on virtualenv
        session.run(sys.executable, "-m", "virtualenv", "-q", str(location), external=True)
        session.run(str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *requirements, external=True)
    stamp.write_text(wanted)
    return python


def _runtime(session: nox.Session) -> Path:
    """The venv smoke, prepublish, cell(<id>) and images share: the harness and its runtime
    dependencies, nothing else."""
    return _env(session, "runtime", harness=True)


def _install(session: nox.Session, *groups: str) -> None:
    """Into a nox-managed session venv (tests, lint): the harness (editable) and the given
    dependency groups; again only when pyproject.toml changes."""
    stamp = Path(str(session.virtualenv.location)) / ".harness-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == wanted:
        session.log("harness already installed (pyproject.toml unchanged)")
        return
    session.install("-e", str(ROOT), *nox.project.dependency_groups(PYPROJECT, *groups))
    stamp.write_text(wanted)


def _fixture_wheel(session: nox.Session, variant: str = "good") -> str:
    """Build (or reuse) a fixture wheel with the fixtures venv's tools; return its path."""
    session.log(f"fixture wheel {variant!r}: built once (~20 s), then cached by content")
    python = _env(session, "fixtures", harness=False, groups=("fixtures",))
    out = session.run(str(python), str(FIXTURE_BUILD), variant, silent=True, external=True)
    assert isinstance(out, str)
    return out.strip().splitlines()[-1].split("\t", 1)[1]


def _ensure_engine(session: nox.Session) -> None:
    """Start a local Docker engine if none answers (root on Debian: installs it)."""
    session.run("bash", str(ENSURE_ENGINE), external=True, success_codes=[0, 2])


def _smoke(session: nox.Session, extra: list[str]) -> None:
    python = _runtime(session)
    args = [*extra, *session.posargs]  # the harness's argparse reads them, in any order
    if _arguments.runs_cells(args):  # not fatal: without an engine, container cells: ERROR
        _ensure_engine(session)
    if _arguments.needs_default_wheel(args):
        # a first run: the images build (in the engine) while the fixture wheel does (cargo)
        with _images_meanwhile(session, python, args):
            args.append(_fixture_wheel(session))
    _harness(session, python, *args)


@contextlib.contextmanager
def _images_meanwhile(session: nox.Session, python: Path, args: list[str]) -> Iterator[None]:
    """Build the run's missing clean images in the background for the ``with`` block (the
    harness checks them again and says what failed)."""
    opts = _arguments.parser().parse_known_args(args)[0]
    here = Path(session.invoked_from)  # where the harness runs: the matrix it will find
    try:
        found = _config.find_matrix(here / opts.matrix if opts.matrix else None, cwd=here)
        chosen = _cells.select(_cells.expand(_matrix.load_found(found)), opts.select)
    except Exception:  # a bad matrix or selection: the harness will say so
        yield
        return
    from harness.imaging import load_recipes
    from harness.kinds.base import entry_of
    from harness.kinds.container import ContainerEntry

    recipes = load_recipes()
    names = sorted({image for c in chosen if c.kind == "container"
                    if (image := entry_of(c, ContainerEntry).image) in recipes})
    if not names:
        yield
        return
    session.log(f"building images {', '.join(names)} meanwhile (python -m harness.imaging)")
    with subprocess.Popen([str(python), "-m", "harness.imaging", *names],
                          stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT) as proc:
        try:
            yield
        finally:
            proc.wait()


def _harness(session: nox.Session, python: Path, *args: str) -> None:
    """Run the harness from where nox was invoked (relative paths mean what the user meant)
    and keep its exit code (nox would turn every failure into 1)."""
    cmd = [str(python), "-m", "harness", *args]
    session.log(" ".join(cmd))
    proc = subprocess.Popen(cmd, cwd=session.invoked_from)
    # Ctrl-C / SIGTERM: forwarded (a signal to nox alone must reach the harness); when the
    # whole process group got it, the harness sees it twice: later ones are no-ops there
    forward = {s: signal.signal(s, lambda sig, _: proc.send_signal(sig))
               for s in (signal.SIGINT, signal.SIGTERM)}
    code = proc.wait()
    # Interrupted: the rest of the signal storm (a group SIGTERM after the SIGINT) must not
    # turn the harness's 130 into nox's death by signal on the way out.
    for s, handler in forward.items():
        signal.signal(s, signal.SIG_IGN if code == 130 else handler)
    if code:
        session.log(f"harness exit code {code} (1 FAIL/INVALID/TIMEOUT, 2 input/infra, "
                    "130 interrupted)")
        sys.exit(code)


@nox.session(venv_backend="none")
def smoke(session: nox.Session) -> None:
    """Run the whole matrix on a wheel (default: the `good` fixture wheel)."""
    _smoke(session, [])


@nox.session(venv_backend="none")
def prepublish(session: nox.Session) -> None:
    """May exactly these files be published? Audit + the whole matrix + cross-check."""
    if _arguments.needs_default_wheel(session.posargs):
        session.log("error: no release given; pass its files or directory: "
                    "nox -s prepublish -- dist/ [harness options]")
        sys.exit(2)
    _smoke(session, ["--prepublish"])


@nox.session(venv_backend="none")
@nox.parametrize("cell", CELL_IDS, ids=CELL_IDS)
def cell(session: nox.Session, cell: str) -> None:
    """Run one cell of the matrix."""
    _smoke(session, ["--select", cell])


@nox.session(venv_backend="none")
def images(session: nox.Session) -> None:
    """Build the clean images that are missing or outdated (no-op when current)."""
    python = _runtime(session)
    _ensure_engine(session)
    session.run(str(python), "-m", "harness.imaging", *session.posargs, external=True)


@nox.session(venv_backend="none")
def fixtures(session: nox.Session) -> None:
    """Build the fixture wheels (good + one per failure mode); prints their paths."""
    python = _env(session, "fixtures", harness=False, groups=("fixtures",))
    session.run(str(python), str(FIXTURE_BUILD), *session.posargs, external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite: unit tests plus real venv and container cells (two test processes:
    the cells mostly wait on the engine and on process start; tests sharing one harness run
    stay in one process, ``--dist loadgroup``)."""
    _install(session, "test")
    _ensure_engine(session)
    session.run("pytest", *(session.posargs or ["-q", "-n", "2", "--dist", "loadgroup"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, mypy, and the committed JSON schema is the generated one."""
    _install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("mypy", "harness")
    session.run("python", "-m", "harness.schema", "--check")


@nox.session
def bench(session: nox.Session) -> None:
    """Harness vs. a naive baseline on the default matrix; prints ratios (its own venv: it
    builds the fixture wheel with the fixture tools)."""
    _install(session, "fixtures")
    _ensure_engine(session)
    session.run("python", str(ROOT / "bench" / "bench.py"), *session.posargs)
