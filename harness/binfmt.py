"""binfmt_misc: the kernel runs another architecture's programs through qemu-user-static.

Foreign container cells and foreign image builds need a handler ``qemu-<arch>`` that is
enabled and has the F flag (the kernel opens qemu when the handler is registered, so it works
inside containers that do not contain qemu). As root the harness mounts binfmt_misc, installs
qemu-user-static (Debian) and registers the handler from the rule that package ships; otherwise
it says in one line what to run.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from harness import emulation
from harness.arches import Arch
from harness.errors import InfrastructureError

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
RULES_DIR = Path("/usr/lib/binfmt.d")  # qemu-user-static's systemd-binfmt rules
_LOCK = threading.Lock()


class BinfmtError(InfrastructureError):
    """Foreign programs cannot run here; the message says why and what to run."""


def _hint(arch: Arch) -> str:
    return (f"as root run `update-binfmts --enable qemu-{arch.qemu}` (Debian's qemu-user-static "
            f"and binfmt-support) or `docker run --privileged --rm tonistiigi/binfmt --install "
            f"{arch.platform.split('/', 1)[1]}`")


def _is_root() -> bool:
    return os.geteuid() == 0


def _rule(arch: Arch) -> str:
    """The registration line qemu-user-static ships for ``arch``; installs it if root."""
    path = RULES_DIR / f"qemu-{arch.qemu}.conf"
    if not path.is_file():
        emulation.install_qemu(path.is_file)
    if not path.is_file():
        how = ("apt-get install qemu-user-static failed" if emulation.can_install_qemu()
               else "install qemu-user-static (as root)")
        raise BinfmtError(f"cannot run {arch.name} programs: qemu-user-static is missing "
                          f"(no {path}); {how}")
    line = next((ln for ln in path.read_text().splitlines() if ln.startswith(":")), "")
    if not line:
        raise BinfmtError(f"cannot run {arch.name} programs: {path} holds no binfmt rule; "
                          "reinstall qemu-user-static")
    return line


def _fields(entry: Path) -> tuple[bool, str, str]:
    """(enabled, interpreter, flags) of a registered handler."""
    lines = entry.read_text().splitlines()
    values = dict(ln.split(None, 1) for ln in lines[1:] if " " in ln)
    return lines[:1] == ["enabled"], values.get("interpreter", ""), values.get("flags:", "")


def _mount() -> None:
    if (BINFMT_DIR / "register").exists():
        return
    if not _is_root():
        raise BinfmtError(f"binfmt_misc is not mounted at {BINFMT_DIR}: as root run "
                          f"`mount -t binfmt_misc binfmt_misc {BINFMT_DIR}`, then register qemu")
    proc = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_DIR)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not (BINFMT_DIR / "register").exists():
        raise BinfmtError(f"cannot mount binfmt_misc at {BINFMT_DIR} "
                          f"({proc.stderr.strip() or 'no register file'}); the kernel needs "
                          "CONFIG_BINFMT_MISC")


def status(arch: Arch) -> str | None:
    """None when ``arch``'s programs run here (also in containers), else why not."""
    entry = BINFMT_DIR / f"qemu-{arch.qemu}"
    if not (BINFMT_DIR / "register").exists():
        return f"binfmt_misc is not mounted at {BINFMT_DIR}"
    if not entry.exists():
        return f"no binfmt_misc handler qemu-{arch.qemu} is registered"
    enabled, interpreter, flags = _fields(entry)
    if not enabled:
        return f"the binfmt_misc handler qemu-{arch.qemu} is disabled"
    if "F" not in flags:
        return (f"the binfmt_misc handler qemu-{arch.qemu} lacks the F flag (containers "
                f"cannot reach its interpreter {interpreter})")
    return None


def ensure(arch: Arch, *, log: Callable[[str], None] = lambda _: None) -> None:
    """Make ``arch``'s programs run here, or raise BinfmtError saying in one line how."""
    with _LOCK:
        why = status(arch)
        if why is None:
            return
        if not _is_root():
            raise BinfmtError(f"cannot run {arch.name} programs: {why}; {_hint(arch)}")
        _mount()
        entry = BINFMT_DIR / f"qemu-{arch.qemu}"
        rule = _rule(arch)
        try:
            if entry.exists():  # disabled or without F: replaced by qemu-user-static's rule
                entry.write_text("-1")
            (BINFMT_DIR / "register").write_text(rule)
        except OSError as exc:
            raise BinfmtError(f"cannot register the binfmt_misc handler qemu-{arch.qemu} "
                              f"({exc.strerror}); {_hint(arch)}") from exc
        why = status(arch)
        if why is not None:
            raise BinfmtError(f"cannot run {arch.name} programs: {why}; {_hint(arch)}")
        log(f"registered the binfmt_misc handler qemu-{arch.qemu} (qemu-user-static)")
