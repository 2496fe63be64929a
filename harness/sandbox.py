"""Make native libraries unreachable for venv cells without changing the host (Linux).

Each cell runs in new mount, network and PID namespaces (inside a user namespace when not
root).  There, every directory holding a ``lib<name>*`` file gets a read-only overlay
whose top layer holds whiteouts for those files, and a linker cache built without them is
bind-mounted over /etc/ld.so.cache.  Nothing changes outside the namespace.  The probe's
sterility check then proves, from inside, that nothing can load the library.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.probe import is_library, library_dirs

# Positional args: MOUNT LDCONFIG {LOWER DIR}... -- (--build-cache FILE | CACHE ARGV...)
_SCRIPT = r"""
set -eu
mnt="$1"; ldc="$2"; shift 2
while [ "$1" != "--" ]; do
  "$mnt" -t overlay overlay -o "lowerdir=$1:$2" "$2"
  shift 2
done
shift
if [ "$1" = "--build-cache" ]; then exec "$ldc" -X -C "$2"; fi
"$mnt" --bind "$1" /etc/ld.so.cache
shift
unset PWD OLDPWD  # the shell's own; the cell's environment is exactly what the harness gave
exec "$@"
"""


class SandboxUnavailable(Exception):
    """This host cannot hide libraries from a process (says why)."""


@dataclass(frozen=True, kw_only=True)
class Sandbox:
    """How to start a process that cannot see the hidden libraries."""

    launcher: tuple[str, ...]  # namespaces + overlay mounts, resolved once per run
    overlays: tuple[tuple[str, str], ...]
    ld_cache: str
    hidden: tuple[str, ...]
    mode: str

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """The command line that runs ``argv`` inside the sandbox."""
        return [*self.launcher, self.ld_cache, *argv]


def _tool(name: str) -> str:
    path = shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise SandboxUnavailable(f"`{name}` not found (util-linux / libc-bin)")
    return path


def _mount_args(overlays: Iterable[tuple[str, str]]) -> list[str]:
    args = [_tool("mount"), _tool("ldconfig")]
    for lower, directory in overlays:
        args += [lower, directory]
    return [*args, "--"]


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


def _prefix(root: bool) -> list[str]:
    """Kill-on-parent-death, then new namespaces; a user namespace when not root."""
    user = [] if root else ["--user", "--map-root-user"]
    return [_tool("setpriv"), "--pdeathsig", "KILL", "--", _tool("unshare"), *user, "--mount",
            "--propagation", "private", "--net", "--pid", "--fork", "--kill-child",
            "--", "/bin/sh", "-c", _SCRIPT, "sandbox"]


def _whiteouts(root: Path, found: dict[str, list[str]]) -> list[tuple[str, str]]:
    overlays = []
    for i, (directory, names) in enumerate(sorted(found.items())):
        layer = root / f"whiteouts-{i}"
        layer.mkdir(parents=True, exist_ok=True)
        for name in names:
            if not (layer / name).exists():
                os.mknod(layer / name, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        overlays.append((str(layer), directory))
    return overlays


def prepare(root: Path, libraries: Sequence[str], extra_dirs: Iterable[str] = ()) -> Sandbox | None:
    """Build the run's sandbox once; None when there is nothing to hide.

    Raises SandboxUnavailable when the host cannot do it (no namespaces, old kernel).
    """
    found = library_files(libraries, extra_dirs)
    if not found:
        return None
    if not os.path.exists("/etc/ld.so.cache"):
        raise SandboxUnavailable("/etc/ld.so.cache missing; cannot replace the linker cache")
    is_root = os.geteuid() == 0
    try:
        overlays = _whiteouts(root, found)
    except OSError as exc:
        raise SandboxUnavailable(f"cannot create whiteout files in {root}: {exc}") from exc
    launcher = (*_prefix(is_root), *_mount_args(overlays))
    cache = root / "ld.so.cache"
    build = [*launcher, "--build-cache", str(cache)]
    proc = subprocess.run(build, capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    if proc.returncode != 0 or not cache.exists():
        how = "mount namespace" if is_root else "unprivileged user namespace"
        raise SandboxUnavailable(f"{how} with overlay failed: "
                                 f"{(proc.stderr or proc.stdout).strip()[-300:]}")
    cache.chmod(0o644)
    hidden = tuple(os.path.join(d, n) for d, names in found.items() for n in names)
    return Sandbox(launcher=launcher, overlays=tuple(overlays), ld_cache=str(cache),
                   hidden=hidden, mode="root mount namespace" if is_root else "user namespace")
