"""Venv cells: a fresh venv from a host interpreter, in a sandbox that hides native libs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness import emulation, needs, sandbox, timing
from harness.cells import Cell
from harness.environments.base import (
    Emulator,
    ProbeSpec,
    Resources,
    Setup,
    Where,
    cell_variables,
)
from harness.environments.process import LocalProcessEnvironment, finder, hand_over
from harness.errors import InfrastructureError
from harness.interpreters import Interpreter
from harness.kinds.base import entry_of
from harness.kinds.venv import VenvEntry
from harness.sandbox import Sandbox


class VenvEnvironment(LocalProcessEnvironment):
    """One cell on the host: own temp dir, allowlisted env, always its own namespaces."""

    def __init__(self, *, python: Path, run_root: Path, sandbox: Sandbox, uv: str,
                 cell_id: str, stdlib_venv: bool = True, emulator: Emulator | None = None
                 ) -> None:
        super().__init__(python=python, run_root=run_root, uv=uv, cell_id=cell_id,
                         stdlib_venv=stdlib_venv)
        self.sandbox = sandbox
        self.emulator = emulator  # floor cells: the package's process runs under qemu-user
        self.emulated = emulator.cpu.label if emulator else None
        self.emulation = emulation.says(emulator.cpu) if emulator else None

    def where(self, spec: ProbeSpec, venv_made_by: str) -> Where:
        """The host's paths, and the emulator (the host's static qemu) for a floor cell."""
        return {**super().where(spec, venv_made_by), "emulator": self.emulator}

    def variables(self, home: str, tmp: str) -> dict[str, str]:
        """Built from nothing: no host variable reaches the cell."""
        return cell_variables(home, tmp)

    def command(self, spec: ProbeSpec, venv_made_by: str) -> list[str]:
        """The probe, inside the run's sandbox: it may read the interpreter, the staged
        wheels and the host's uv, and write only its own cell directory (handed over to
        the sandbox's uid)."""
        if self.sandbox.uid is not None:
            hand_over(self.workdir, self.sandbox.uid)
        readable = [str(spec.wheel_dir), self.uv,
                    *([str(spec.dependencies)] if spec.dependencies else [])]
        return self.sandbox.wrap(super().command(spec, venv_made_by), readable=readable,
                                 writable=[str(self.workdir)])


@dataclass(frozen=True, kw_only=True)
class VenvResources(Resources):
    """What the venv cells of a run share: interpreters, the sandbox, the host's uv."""

    root: Path
    uv: str
    interpreters: Mapping[str, Interpreter | str]  # matrix spec -> found, or why not
    sandbox: Sandbox | str  # or why venv cells cannot be isolated on this host

    def environment(self, cell: Cell) -> VenvEnvironment:
        """A fresh venv cell from the interpreter its matrix entry names (never unisolated)."""
        interp = self.interpreters[entry_of(cell, VenvEntry).python]
        for problem in (interp, self.sandbox):
            if isinstance(problem, str):
                raise InfrastructureError(problem)
        assert isinstance(interp, Interpreter) and isinstance(self.sandbox, Sandbox)
        cpu = entry_of(cell, VenvEntry).cpu
        return VenvEnvironment(python=interp.executable, run_root=self.root,
                               sandbox=self.sandbox, uv=self.uv, cell_id=cell.id,
                               stdlib_venv=interp.stdlib_venv, emulator=Emulator(
                                   cpu=emulation.resolve(cpu),
                                   qemu=str(emulation.qemu_binary())) if cpu else None)


def prepare(setup: Setup, cells: Sequence[Cell]) -> VenvResources:
    """Find each interpreter; build the run's sandbox that hides the bundled libraries but
    those an interpreter of the run needs itself (harness.needs)."""
    specs = sorted({entry_of(c, VenvEntry).python for c in cells})
    with ThreadPoolExecutor(max_workers=len(specs) or 1) as pool:
        found = dict(zip(specs, pool.map(finder(setup.root), specs), strict=True))
    timing.mark("venv: interpreters")
    interps = [i for i in found.values() if isinstance(i, Interpreter)]
    libdirs = [i.libdir for i in interps if i.libdir]
    split = needs.split(setup.package.bundled_libraries, [i.executable for i in interps])
    for line in split.notes("venv"):
        setup.log(line)
    timing.mark("venv: interpreter needs")
    try:
        box = sandbox.prepare(setup.root / "sandbox", list(split.hidden), libdirs)
        timing.mark("venv: sandbox")
    except sandbox.SandboxUnavailable as exc:  # never run a venv cell unisolated
        why = (f"cannot isolate venv cells: {exc}; run as root with the rights to mount and "
               "change uid, or as a user with unprivileged user namespaces allowed (sysctl "
               "user.max_user_namespaces, kernel.apparmor_restrict_unprivileged_userns=0), "
               "or use container cells")
        setup.log(f"error: {why}")
        return VenvResources(root=setup.root, uv=setup.uv, interpreters=found, sandbox=why)
    return VenvResources(root=setup.root, uv=setup.uv, interpreters=found, sandbox=box)
