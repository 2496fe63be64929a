"""Isolate every venv cell from the host without changing the host (Linux).

Each cell runs in new mount, network and PID namespaces (inside a user namespace when not
root), whether or not there is anything to hide: no network, and every process the package
starts dies with the cell.  Inside, every directory the loader searches (glibc-hwcaps and
legacy per-platform subdirectories included) that holds a ``lib<name>*`` file gets a
read-only overlay whose top layer holds whiteouts for those files, a linker cache built
without them is bind-mounted over /etc/ld.so.cache, and an empty file over
/etc/ld.so.preload.  Nothing changes outside the namespace.  The probe's sterility check
then proves, from inside, that nothing can load the library.  A host that refuses the
namespaces gets no sandbox at all: its venv cells are ERROR, never run unisolated.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.probe import library_dirs
from harness.probe_native import is_library

# Positional args: MOUNT LDCONFIG EMPTY CACHE|- {LAYER DIR}... -- (--build-cache FILE | ARGV...)
_SCRIPT = r"""
set -eu
mnt="$1"; ldc="$2"; empty="$3"; cache="$4"; shift 4
while [ "$1" != "--" ]; do
  "$mnt" -t overlay overlay -o "lowerdir=$1:$2" "$2"
  shift 2
done
shift
if [ -e /etc/ld.so.preload ]; then "$mnt" --bind "$empty" /etc/ld.so.preload; fi
if [ "$1" = "--build-cache" ]; then exec "$ldc" -X -C "$2"; fi
if [ "$cache" != "-" ]; then "$mnt" --bind "$cache" /etc/ld.so.cache; fi
unset PWD OLDPWD  # the shell's own; the cell's environment is exactly what the harness gave
exec "$@"
"""

_TOOL_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"


class SandboxUnavailable(Exception):
    """This host cannot isolate a process (says why)."""


@dataclass(frozen=True, kw_only=True)
class Sandbox:
    """How to start a process in its own namespaces, unable to see the hidden libraries."""

    launcher: tuple[str, ...]  # namespaces + mounts, resolved once per run
    hidden: tuple[str, ...]    # the files made unreachable (may be empty)

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """The command line that runs ``argv`` inside the sandbox."""
        return [*self.launcher, *argv]


def _tool(name: str) -> str:
    path = shutil.which(name, path=_TOOL_PATH)
    if path is None:
        raise SandboxUnavailable(f"`{name}` not found (util-linux / libc-bin)")
    return path


def _ldconfig_dirs(libraries: Iterable[str]) -> set[str]:
    """Directories the host's linker cache names for these libraries."""
    try:
        out = subprocess.run([_tool("ldconfig"), "-p"], capture_output=True, text=True,
                             check=False).stdout
    except (OSError, SandboxUnavailable):
        return set()
    dirs = set()
    for line in out.splitlines():
        name = line.split("=>")[0].split()
        if "=>" in line and name and any(is_library(name[0], lib) for lib in libraries):
            dirs.add(os.path.dirname(os.path.realpath(line.split("=>")[1].strip())))
    return dirs


def library_files(libraries: Iterable[str], extra_dirs: Iterable[str] = ()) -> dict[str, list[str]]:
    """Every ``lib<name>*`` file in the loader's search path, by real directory."""
    libs = list(libraries)
    dirs = {os.path.realpath(d) for d in [*library_dirs(), *extra_dirs]
            if os.path.isdir(d)} | _ldconfig_dirs(libs)
    found: dict[str, list[str]] = {}
    for d in sorted(dirs):
        names = sorted(f for f in os.listdir(d)
                       if any(is_library(f, lib) for lib in libs))
        if names:
            found[d] = names
    return found


def _overlay_targets(found: dict[str, list[str]]) -> dict[str, list[str]]:
    """Whiteout paths per mount point; a subdirectory (glibc-hwcaps/...) joins its parent's
    overlay, so overlays never stack on each other."""
    targets: dict[str, list[str]] = {}
    for directory in sorted(found):
        parent = next((t for t in targets if directory.startswith(t + "/")), None)
        prefix = os.path.relpath(directory, parent) if parent else ""
        targets.setdefault(parent or directory, []).extend(
            os.path.join(prefix, name) for name in found[directory])
    return targets


def _whiteouts(root: Path, found: dict[str, list[str]]) -> list[str]:
    """Make one whiteout layer per mount point; return LAYER DIR pairs, flattened."""
    pairs: list[str] = []
    for i, (directory, names) in enumerate(sorted(_overlay_targets(found).items())):
        layer = root / f"whiteouts-{i}"
        for name in names:
            (layer / name).parent.mkdir(parents=True, exist_ok=True)
            if not (layer / name).exists():
                os.mknod(layer / name, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        pairs += [str(layer), directory]
    return pairs


def _namespaces(root: bool) -> list[str]:
    """Kill-on-parent-death, then new namespaces; a user namespace when not root."""
    user = [] if root else ["--user", "--map-root-user"]
    return [_tool("setpriv"), "--pdeathsig", "KILL", "--", _tool("unshare"), *user, "--mount",
            "--propagation", "private", "--net", "--pid", "--fork", "--kill-child",
            "--", "/bin/sh", "-c", _SCRIPT, "sandbox"]


def _check(argv: list[str], is_root: bool) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                          env={"PATH": _TOOL_PATH})
    if proc.returncode != 0:
        how = "" if is_root else " (unprivileged user namespace)"
        raise SandboxUnavailable(
            f"new mount, network and PID namespaces{how} failed: "
            f"{(proc.stderr or proc.stdout).strip()[-300:] or f'exit {proc.returncode}'}")


def prepare(root: Path, libraries: Sequence[str], extra_dirs: Iterable[str] = ()) -> Sandbox:
    """Build the run's sandbox once, and prove it starts a process.

    Root without the capability to mount (e.g. in a container) falls back to a user
    namespace.  Raises SandboxUnavailable when the host cannot do it (says why).
    """
    found = library_files(libraries, extra_dirs)
    try:
        root.mkdir(parents=True, exist_ok=True)
        empty = root / "empty"
        empty.touch(mode=0o644)
        layers = _whiteouts(root, found)
    except OSError as exc:
        raise SandboxUnavailable(f"cannot create the sandbox files in {root}: {exc}") from exc
    cache = root / "ld.so.cache"
    if found and not os.path.exists("/etc/ld.so.cache"):
        raise SandboxUnavailable("/etc/ld.so.cache missing; cannot replace the linker cache")
    tail = [_tool("mount"), _tool("ldconfig"), str(empty), str(cache) if found else "-",
            *layers, "--"]
    hidden = tuple(os.path.join(d, n) for d, names in found.items() for n in names)
    failures = []
    for as_root in (True, False) if os.geteuid() == 0 else (False,):
        head = [*_namespaces(as_root), *tail]
        try:
            if found:
                _check([*head, "--build-cache", str(cache)], as_root)
                if not cache.exists():
                    raise SandboxUnavailable(f"ldconfig wrote no linker cache at {cache}")
                cache.chmod(0o644)
            else:
                _check([*head, "/bin/true"], as_root)
        except SandboxUnavailable as exc:
            failures.append(str(exc))
            continue
        return Sandbox(launcher=tuple(head), hidden=hidden)
    raise SandboxUnavailable("; ".join(failures))
