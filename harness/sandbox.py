"""Isolate every venv cell from the host without changing the host (Linux).

Two stages.  The *root stage* is a new mount namespace (inside a user namespace when not
root) in which every directory the loader searches (glibc-hwcaps and legacy per-platform
subdirectories included) that holds a ``lib<name>*`` file gets a read-only overlay whose top
layer holds whiteouts for those files, a linker cache built without them is bind-mounted over
/etc/ld.so.cache, and an empty file over /etc/ld.so.preload.  As root it also makes what the
cell needs reachable by an unprivileged uid (a directory only root may enter, such as pyenv's
/root, is covered by an empty tmpfs into which just the needed paths are bound again).

The *jail* is bubblewrap (``bwrap``), started as an unprivileged uid (root: 65534 through
``setpriv``; otherwise the user itself): new user, PID, network, IPC, UTS and cgroup
namespaces, no capabilities, no further user namespaces, a fresh /proc, the host read-only,
an empty /tmp, /var/tmp, /run (and, for a user, an empty home), and only the cell's own
directory writable.  Nothing changes outside.  The probe's sterility check then proves, from
inside, that nothing can load the hidden library.  A host that cannot do all of this gets no
sandbox at all: its venv cells are ERROR, never run with less.
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

# Positional args: MOUNT LDCONFIG EMPTY CACHE|- {LAYER DIR}... -- {COVER KEEP... ;}... --
#                  (--build-cache FILE | ARGV...)
# A COVER directory gets an empty tmpfs; its KEEP paths (opened first) are bound back into it.
_SCRIPT = r"""
set -eu
umask 022
mnt="$1"; ldc="$2"; empty="$3"; cache="$4"; shift 4
while [ "$1" != "--" ]; do
  "$mnt" -t overlay overlay -o "lowerdir=$1:$2" "$2"
  shift 2
done
shift
if [ -e /etc/ld.so.preload ]; then "$mnt" --bind "$empty" /etc/ld.so.preload; fi
if [ "$1" = "--build-cache" ]; then exec "$ldc" -X -C "$2"; fi
if [ "$cache" != "-" ]; then "$mnt" --bind "$cache" /etc/ld.so.cache; fi
while [ "$1" != "--" ]; do
  cover="$1"; shift; n=3
  for p in "$@"; do [ "$p" = ";" ] && break; eval "exec $n<\"\$p\""; n=$((n+1)); done
  "$mnt" -t tmpfs -o mode=0755,size=1m,nosuid,nodev q-kangaroo-cover "$cover"
  n=3
  while [ "$1" != ";" ]; do
    if [ -d "/proc/self/fd/$n" ]; then mkdir -p "$1"; else mkdir -p "${1%/*}"; : > "$1"; fi
    "$mnt" --no-canonicalize --bind "/proc/self/fd/$n" "$1"
    eval "exec $n<&-"; n=$((n+1)); shift
  done
  shift
done
shift
unset PWD OLDPWD  # the shell's own; the cell's environment is exactly what the harness gave
exec "$@"
"""

_TOOL_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"
CELL_UID = 65534  # root's cells run as this uid (nobody), in a user namespace of their own
_MAX_KEEP = 7  # file descriptors 3..9 of the root stage's shell
_EMPTIED = ("/tmp", "/var/tmp", "/run")  # an empty tmpfs in every cell


class SandboxUnavailable(Exception):
    """This host cannot isolate a process (says why)."""


def _reachable(path: str, uid: int | None) -> bool:
    """Whether ``uid`` (None: this process) may enter/read ``path`` by its mode bits alone."""
    if uid is None:
        return os.access(path, os.R_OK)
    try:
        st = os.stat(path)
    except OSError:
        return False
    need = stat.S_IXOTH | (stat.S_IROTH if not stat.S_ISDIR(st.st_mode) else 0)
    return st.st_uid == uid or st.st_mode & need == need


def _covers(paths: Iterable[str], uid: int) -> dict[str, list[str]]:
    """For each path ``uid`` cannot reach: its topmost unreachable ancestor -> the paths to
    bind back into the tmpfs covering it (outermost first, nested ones left out)."""
    groups: dict[str, list[str]] = {}
    for path in sorted(set(paths)):
        parts = Path(path).parts
        for i in range(2, len(parts)):
            ancestor = os.path.join(*parts[:i])
            if not _reachable(ancestor, uid):
                keep = groups.setdefault(ancestor, [])
                if not any(path.startswith(k + "/") for k in keep):
                    keep.append(path)
                break
    for cover, keep in groups.items():
        if len(keep) > _MAX_KEEP:
            raise SandboxUnavailable(f"more than {_MAX_KEEP} paths to expose under {cover}")
    return groups


def interpreter_prefix(executable: str) -> str:
    """The installation an interpreter runs from (``bin/..`` of its real executable)."""
    return str(Path(os.path.realpath(executable)).parent.parent)


@dataclass(frozen=True, kw_only=True)
class Sandbox:
    """How to start a process isolated from the host, unable to see the hidden libraries."""

    launcher: tuple[str, ...]  # the root stage up to its cover list, resolved once per run
    jail: tuple[str, ...]      # the unprivileged bwrap command up to its binds
    uid: int | None            # the uid outside that the cell runs as (None: this user)
    hidden: tuple[str, ...]    # the files made unreachable (may be empty)

    def wrap(self, argv: Sequence[str], *, readable: Iterable[str] = (),
             writable: Iterable[str] = ()) -> list[str]:
        """The command line that runs ``argv`` inside the sandbox; ``readable`` and
        ``writable`` (plus the prefix of ``argv[0]``'s interpreter) are what it may use."""
        ro = [os.path.realpath(p) for p in [interpreter_prefix(argv[0]), *readable]
              if os.path.exists(p) and os.path.realpath(p) != "/"]
        rw = [os.path.realpath(p) for p in writable]
        covers = _covers([*ro, *rw], self.uid) if self.uid is not None else {}
        tail = [a for cover, keep in sorted(covers.items()) for a in (cover, *keep, ";")]
        binds = [a for p in ro for a in ("--ro-bind", p, p)]
        binds += [a for p in rw for a in ("--bind", p, p)]
        # bwrap sets PWD: the cell's environment is exactly what the harness gave
        return [*self.launcher, *tail, "--", *self.jail, *binds, "--", _tool("env"), "-u",
                "PWD", "--", *argv]


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


def _root_stage(as_root: bool) -> list[str]:
    """Kill-on-parent-death, then a new mount namespace (in a user namespace when not root)."""
    user = [] if as_root else ["--user", "--map-root-user"]
    return [_tool("setpriv"), "--pdeathsig", "KILL", "--", _tool("unshare"), *user, "--mount",
            "--propagation", "private", "--", "/bin/sh", "-c", _SCRIPT, "sandbox"]


def _jail(as_root: bool) -> list[str]:
    """bwrap as an unprivileged uid: no capabilities, no network, a fresh /proc, the host
    read-only; as root, first become CELL_UID (bwrap alone would stay uid 0 outside)."""
    bwrap = shutil.which("bwrap", path=_TOOL_PATH)
    if bwrap is None:
        raise SandboxUnavailable("`bwrap` not found: install bubblewrap (apt-get install "
                                 "bubblewrap)")
    drop = ([_tool("setpriv"), f"--reuid={CELL_UID}", f"--regid={CELL_UID}", "--clear-groups",
             "--inh-caps=-all", "--no-new-privs", "--pdeathsig", "KILL", "--"]
            if as_root else [])
    home = os.path.realpath(os.path.expanduser("~"))
    empty = [*_EMPTIED, *([home] if not as_root and home != "/" and os.path.isdir(home) else [])]
    return [*drop, bwrap, "--unshare-all", "--unshare-user", "--disable-userns",
            "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--as-pid-1",
            "--uid", str(CELL_UID), "--gid", str(CELL_UID),
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            *[a for d in empty for a in ("--tmpfs", d)]]


def _check(argv: list[str], is_root: bool) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False,
                          env={"PATH": _TOOL_PATH})
    if proc.returncode != 0:
        how = (f"as root: a mount namespace, then uid {CELL_UID} in a user namespace"
               if is_root else "an unprivileged user namespace")
        raise SandboxUnavailable(
            f"the sandbox ({how}; new mount, PID and network namespaces, no capabilities) "
            f"failed: {(proc.stderr or proc.stdout).strip()[-300:] or f'exit {proc.returncode}'}")


def prepare(root: Path, libraries: Sequence[str], extra_dirs: Iterable[str] = ()) -> Sandbox:
    """Build the run's sandbox once, and prove it starts a process.

    Raises SandboxUnavailable when the host cannot do all of it (says why): root that may
    not mount or change uid gets no weaker sandbox.
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
    as_root = os.geteuid() == 0
    head = [*_root_stage(as_root), *tail]
    try:
        if found:
            _check([*head, "--build-cache", str(cache)], as_root)
            if not cache.exists():
                raise SandboxUnavailable(f"ldconfig wrote no linker cache at {cache}")
            cache.chmod(0o644)
        box = Sandbox(launcher=tuple(head), jail=tuple(_jail(as_root)),
                      uid=CELL_UID if as_root else None, hidden=hidden)
        _check(box.wrap(["/bin/true"]), as_root)
    except SandboxUnavailable as exc:
        raise SandboxUnavailable(
            f"{exc}" + ("; as root, venv cells need the rights to mount and to switch to "
                        f"uid {CELL_UID} (CAP_SYS_ADMIN, CAP_SETUID)" if as_root else "")
        ) from exc
    return box
