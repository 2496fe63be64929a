"""Container cells: a fresh, locked-down container per cell, through the docker SDK."""

from __future__ import annotations

import io
import os
import socket
import tarfile
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.types import Mount, Ulimit

from harness import arches, binfmt, emulation, engine, imaging, probe, timing
from harness.cells import Cell
from harness.environments.base import (
    CellEnvironment,
    Emulator,
    ProbeSpec,
    Resources,
    Setup,
    cell_variables,
    parse_events,
)
from harness.errors import HarnessError, InfrastructureError
from harness.imaging.scrub import ALWAYS_SCRUBBED, ensure_scrubbed
from harness.kinds.base import entry_of
from harness.kinds.container import ContainerEntry, cell_arch
from harness.liveness import pid_alive
from harness.needs import Needs
from harness.verdict import ProbeRun, Verdict, judge

LABEL = "q-kangaroo-smoke"
WHEEL_MOUNT = "/wheel"
SET_DIR, DEPS_DIR = "set", "deps"  # below WHEEL_MOUNT: the release set, the dependencies
QEMU_DIR = "qemu"  # below WHEEL_MOUNT: a floor cell's static qemu-user, copied in
IMAGE_UV = "/usr/local/bin/uv"
MEMORY, PIDS, TMP_SIZE = 2 << 30, 512, 1 << 30  # bytes, per container cell (README: limits)
TMP_MARGIN = 512 << 20  # /tmp beyond twice what the cell's wheels unpack to (venv, caches)
TMP_CEILING = 8 << 30  # the most /tmp (and extra memory) a container cell gets; above: ERROR
CORE_LIMIT = 512 << 20  # bytes of a floor cell's guest core (written to the /tmp tmpfs)
KEEP_SECONDS = 3600  # --keep-failed: how long a kept cell stays up to be entered
OTHER_HOST_GRACE = timedelta(hours=24)  # a shared engine: other hosts' runs may be alive


def run_labels(run_id: str, cell_id: str) -> dict[str, str]:
    """Labels that let a later run find and reap this run's containers."""
    return {f"{LABEL}.run": run_id, f"{LABEL}.pid": str(os.getpid()),
            f"{LABEL}.host": socket.gethostname(), f"{LABEL}.cell": cell_id}


def _orphaned(container: Container) -> bool:
    """Left by a harness that is gone: its pid is dead here, or another host's and stale."""
    labels = container.labels
    if labels.get(f"{LABEL}.keep") and container.status == "running":
        return False  # kept for debugging and still up: someone may be inside
    if labels.get(f"{LABEL}.host") == socket.gethostname():
        return not pid_alive(int(labels.get(f"{LABEL}.pid", "0") or 0))
    created = datetime.fromisoformat(container.attrs["Created"][:19]).replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc) - created > OTHER_HOST_GRACE


LIST_ATTEMPTS = 5  # the engine is shared: other runs remove their containers meanwhile


def _labelled(client: docker.DockerClient) -> list[Container]:
    """Every container of any run of the harness.  The SDK inspects each listed container;
    one another run removes in between is NotFound: list again (best effort: none)."""
    for _ in range(LIST_ATTEMPTS):
        try:
            return list(client.containers.list(all=True, filters={"label": f"{LABEL}.run"}))
        except docker.errors.NotFound:
            continue
    return []


def reap(client: docker.DockerClient) -> list[str]:
    """Remove containers left by runs whose harness process is gone (killed outright)."""
    removed = []
    for c in _labelled(client):
        if not _orphaned(c):
            continue
        try:
            c.remove(force=True, v=True)
            removed.append(c.name)
        except docker.errors.NotFound:
            pass
    return removed


@dataclass
class Handle:
    """A live container; set ``keep`` to leave it for debugging."""

    container: Container
    keep: bool = False


def wheel_archive(files: Mapping[str, Path]) -> bytes:
    """Files as a tar stream of read-only files (``name in the archive -> host path``), for
    ``put_archive``; the directories they sit in are made readable, the emulator under
    QEMU_DIR executable."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for folder in sorted({str(Path(n).parent) for n in files} - {"."}):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o555
            tar.addfile(info)
        for name, path in files.items():
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mode = 0o555 if name.startswith(f"{QEMU_DIR}/") else 0o444
            info.mtime = int(path.stat().st_mtime)
            with path.open("rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()


def unpacked_size(files: Mapping[str, Path]) -> int:
    """What the wheels among ``files`` unpack to, by their zip directories."""
    total = 0
    for path in files.values():
        if path.suffix == ".whl":
            with suppress(OSError, zipfile.BadZipFile), zipfile.ZipFile(path) as zf:
                total += sum(i.file_size for i in zf.infolist())
    return total


def tmp_wanted(files: Mapping[str, Path]) -> int:
    """The /tmp a cell installing ``files`` needs: TMP_SIZE, or twice what its wheels unpack
    to (the installer's cache and the venv) and TMP_MARGIN, when more."""
    return max(TMP_SIZE, 2 * unpacked_size(files) + TMP_MARGIN)


def tmp_size(files: Mapping[str, Path]) -> int:
    """The /tmp tmpfs the cell gets: what it needs, at most TMP_CEILING."""
    return min(TMP_CEILING, tmp_wanted(files))


def memory_limit(files: Mapping[str, Path]) -> int:
    """The cell's memory limit: MEMORY, and what its /tmp grows beyond TMP_SIZE (tmpfs pages
    count against it)."""
    return MEMORY + tmp_size(files) - TMP_SIZE


def _gib(size: int) -> str:
    return f"{size / (1 << 30):.3g} GiB"


def staged_files(spec: ProbeSpec) -> dict[str, Path]:
    """What goes into the /wheel volume: the set's wheels under set/, the dependency
    wheelhouse's wheels under deps/."""
    files = {f"{SET_DIR}/{w.filename}": w.path for w in spec.release.wheels}
    if spec.dependencies is not None:
        files.update({f"{DEPS_DIR}/{p.name}": p for p in sorted(spec.dependencies.glob("*.whl"))})
    return files


@contextmanager
def locked_down(client: docker.DockerClient, *, image: str, command: list[str],
                files: Mapping[str, Path], labels: dict[str, str],
                core_dumps: bool = False) -> Iterator[Handle]:
    """Own one container's whole life: created locked down, removed on any exit.

    The engine may share no filesystem with the harness (a remote ``DOCKER_HOST``, rootless
    or Desktop engines): nothing of the host is mounted. The wheels go in through the API,
    copied into an anonymous volume at /wheel (the root filesystem is read-only, and the
    /tmp tmpfs only exists once the container runs); removing the container removes it.
    The tmpfs is sized for ``files`` (tmp_size) and counts against the memory limit, which
    grows with it.
    """
    container = client.containers.create(
        image, command=command, user="1000:1000", working_dir="/tmp",
        environment=cell_variables("/tmp", "/tmp"), network_mode="none", read_only=True,
        tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={tmp_size(files)},mode=1777"},
        cap_drop=["ALL"], security_opt=["no-new-privileges"], pids_limit=PIDS,
        mem_limit=memory_limit(files),
        mounts=[Mount(target=WHEEL_MOUNT, source=None, type="volume")], labels=labels,
        # a floor cell reads the emulated process's fault from the core qemu writes in /tmp
        ulimits=[Ulimit(name="core", soft=CORE_LIMIT, hard=CORE_LIMIT)] if core_dumps else None,
        detach=True)
    timing.mark("create")
    handle = Handle(container=container)
    try:
        container.put_archive(WHEEL_MOUNT, wheel_archive(files))
        timing.mark("copy-in")
        yield handle
    finally:
        if not handle.keep:
            _remove(container)
            timing.mark("remove")


def engine_failure(exc: Exception) -> str:
    """One readable line for an engine call that failed mid-cell: what happened, what to do
    (the engine's own text goes to the report's details)."""
    then = "see whether the engine runs (`docker info`) and run again"
    if isinstance(exc, requests.exceptions.Timeout):
        return f"the Docker engine did not answer in time (frozen or overloaded); {then}"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return ("the connection to the Docker engine was lost during the cell (the engine "
                f"stopped, restarted or crashed); {then}")
    if isinstance(exc, docker.errors.APIError):
        said = " ".join(str(exc.explanation or "").split())[:200] or "no explanation"
        return (f"the Docker engine refused a request (HTTP {exc.status_code}: {said}); "
                f"{then}")
    return f"a request to the Docker engine failed ({type(exc).__name__}); {then}"


def _remove(container: Container) -> None:
    try:
        container.remove(force=True, v=True)  # v: its anonymous /wheel volume too
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:  # removal already in progress
        if exc.status_code != 409:
            raise


class ContainerEnvironment(CellEnvironment):
    """One cell in a new container of a clean image."""

    def __init__(self, *, client: docker.DockerClient, image: str, python: str,
                 labels: dict[str, str], keep_failed: bool = False,
                 emulated: str | None = None, cpu: emulation.Cpu | None = None,
                 qemu: Path | None = None) -> None:
        super().__init__()
        self.cpu, self.qemu = cpu, qemu  # floor cells: qemu-user is copied into the cell
        self.emulated = cpu.label if cpu else None
        if cpu is not None:
            self.emulation = emulation.says(cpu)
        self.client = client
        self.image = image
        self.python = python
        self.labels = labels
        self.keep_failed = keep_failed
        self._container: Container | None = None
        if emulated is not None:
            factor = arches.budget_factor(emulated)
            self.emulation = (f"{emulated} emulated by qemu-user through binfmt_misc; the "
                              f"cell's time and step budgets x{factor:g}")
        self.factor = arches.budget_factor(emulated) if emulated else 1.0

    def run(self, spec: ProbeSpec, timeout: float) -> ProbeRun:
        """Create, start, wait (bounded), collect output; the container is always removed.
        Under emulation the cell's time and the step budgets are scaled."""
        if self.factor != 1.0:
            spec = replace(spec, package=spec.package.scaled(self.factor))
            timeout *= self.factor
        files = staged_files(spec)
        emulator = None
        if self.cpu is not None and self.qemu is not None:
            files[f"{QEMU_DIR}/{self.qemu.name}"] = self.qemu
            emulator = Emulator(cpu=self.cpu, qemu=f"{WHEEL_MOUNT}/{QEMU_DIR}/{self.qemu.name}")
        argv = spec.argv(self.python, wheel_dir=f"{WHEEL_MOUNT}/{SET_DIR}", uv=IMAGE_UV,
                         workdir="/tmp/cell", linger=KEEP_SECONDS if self.keep_failed else 0,
                         dependencies=f"{WHEEL_MOUNT}/{DEPS_DIR}" if spec.dependencies else "",
                         emulator=emulator)
        labels = {**self.labels, f"{LABEL}.keep": "1"} if self.keep_failed else self.labels
        env = cell_variables("/tmp", "/tmp")
        if tmp_wanted(files) > TMP_CEILING:  # our limit, never the wheel's failure
            return ProbeRun(environment=env, infra_error=(
                f"the wheels of this cell unpack to {_gib(unpacked_size(files))}, more than "
                f"the harness's {_gib(TMP_CEILING)} /tmp limit for a container cell allows "
                "(twice that plus a margin); the harness's limit, not a fault of the wheel: "
                "judge it in a venv cell"))
        start = time.monotonic()
        try:
            with locked_down(self.client, image=self.image, command=argv, files=files,
                             labels=labels, core_dumps=emulator is not None) as handle:
                c = handle.container
                with self._lock:
                    if self._aborted:
                        return ProbeRun(infra_error="interrupted", environment=env)
                    self._container = c
                c.start()
                timing.mark("start")
                wait = self._wait_for_linger if self.keep_failed else self._wait
                timed_out, status = wait(c, timeout)
                timing.mark("wait (the probe runs)")
                out = c.logs(stdout=True, stderr=False).decode("utf-8", "replace")
                err = c.logs(stdout=False, stderr=True, tail=200).decode("utf-8", "replace")
                c.reload()
                timing.mark("logs and state")
                oom = bool(c.attrs.get("State", {}).get("OOMKilled"))
                run = ProbeRun(events=parse_events(out), returncode=status, stderr=err,
                               seconds=time.monotonic() - start, timed_out=timed_out,
                               environment=env, infra_error=f"the cell hit the container's "
                               f"{_gib(memory_limit(files))} memory limit (OOM-killed)"
                               if oom else None)
                handle.keep = self.keep_failed and not self._aborted and not _passed(run, spec)
                self.kept = c.name if handle.keep else None
                return run
        except docker.errors.ImageNotFound:
            return ProbeRun(infra_error=f"image {self.image} not found on the engine: build "
                            "it (`nox -s images` for recipes under images/) or `docker pull` it",
                            environment=env)
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            reason = "interrupted" if self._aborted else engine_failure(exc)
            return ProbeRun(infra_error=reason, environment=env,  # the raw text: run.stderr
                            stderr=f"docker: {type(exc).__name__}: {exc}",
                            seconds=time.monotonic() - start)
        finally:
            with self._lock:
                self._container = None

    @staticmethod
    def _wait(c: Container, timeout: float) -> tuple[bool, int | None]:
        try:
            result: dict[str, Any] = c.wait(timeout=timeout)
            return False, int(result.get("StatusCode", -1))
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError):
            c.kill()
            c.wait(timeout=30)
            return True, None

    @staticmethod
    def _wait_for_linger(c: Container, timeout: float) -> tuple[bool, int | None]:
        """--keep-failed: the probe stays up after its work; wait for its 'linger' event."""
        deadline = time.monotonic() + timeout
        marker = f'{probe.MARKER}{{"event": "linger"'.encode()
        while time.monotonic() < deadline:
            c.reload()
            if c.status not in ("created", "running"):
                return False, int(c.attrs["State"]["ExitCode"])
            if marker in c.logs(stdout=True, stderr=False):
                return False, 0
            time.sleep(0.2)
        c.kill()
        return True, None

    def abort(self) -> None:
        """Kill and remove the running container (thread-safe)."""
        with self._lock:
            self._aborted = True
            c = self._container
        if c is not None:
            with suppress(docker.errors.APIError):
                _remove(c)

    def close(self) -> None:
        """Nothing to do: run() never leaves a container behind unless asked to keep it."""


@dataclass(frozen=True, kw_only=True)
class ContainerResources(Resources):
    """What the container cells of a run share: the engine and the recipes' images."""

    run_id: str
    client: docker.DockerClient | None
    error: str | None = None  # why no container cell can run (engine, image build)
    recipes: Mapping[str, imaging.Recipe]  # recipe name -> its image tag and Python
    keep_failed: bool = False
    arch_errors: Mapping[str, str] = field(default_factory=dict)  # why no cell of that arch
    scrubbed: Mapping[str, str] = field(default_factory=dict)  # recipe image -> that image
    #                                                          # without the declared libraries

    def environment(self, cell: Cell) -> ContainerEnvironment:
        """A fresh container cell of the recipe's image, or of any image reference."""
        if self.client is None or self.error is not None:
            raise InfrastructureError(self.error or "no Docker engine")
        entry = entry_of(cell, ContainerEntry)
        arch = cell_arch(cell)
        if arch in self.arch_errors:
            raise InfrastructureError(self.arch_errors[arch])
        recipe = self.recipes.get(entry.image)
        if recipe is not None:
            recipe = imaging.for_arch(recipe, arch)
        image, python = ((self.scrubbed.get(recipe.tag, recipe.tag), recipe.python) if recipe
                         else (entry.image, None))
        return ContainerEnvironment(client=self.client, image=image,
                                    python=entry.python or python or "python3",
                                    labels=run_labels(self.run_id, cell.id),
                                    keep_failed=self.keep_failed,
                                    emulated=arch if arches.is_foreign(arch) else None,
                                    cpu=emulation.resolve(entry.cpu) if entry.cpu else None,
                                    qemu=emulation.qemu_binary() if entry.cpu else None)


def _foreign_ready(arch: str, setup: Setup) -> str | None:
    """None when ``arch``'s programs run here (binfmt_misc registered if root), else why not."""
    try:
        binfmt.ensure(arches.get(arch), log=setup.log)
    except HarnessError as exc:
        setup.log(f"error: {exc}")
        return str(exc)
    return None


def prepare(setup: Setup, cells: Sequence[Cell]) -> ContainerResources:
    """Connect to the engine, reap leftovers, make foreign architectures runnable (binfmt),
    build missing or outdated recipe images (per architecture)."""
    try:
        client = engine.connect()
    except InfrastructureError as exc:
        setup.log(f"error: {exc}")
        return ContainerResources(run_id=setup.run_id, client=None, error=str(exc), recipes={})
    timing.mark("container: engine connect")
    for name in reap(client):
        setup.log(f"removed leftover container {name}")
    timing.mark("container: reap leftovers")
    recipes = imaging.load_recipes()
    by_arch: dict[str, set[str]] = {}
    for c in cells:
        by_arch.setdefault(cell_arch(c), set())
        if (image := entry_of(c, ContainerEntry).image) in recipes:
            by_arch[cell_arch(c)].add(image)
    error = None
    arch_errors: dict[str, str] = {}
    scrubbed: dict[str, str] = {}
    for arch, wanted in sorted(by_arch.items(), key=lambda kv: arches.is_foreign(kv[0])):
        foreign = arches.is_foreign(arch)
        if foreign and (why := _foreign_ready(arch, setup)) is not None:
            arch_errors[arch] = why
            continue
        if not wanted or not setup.build_images:
            continue
        try:
            imaging.ensure_images(sorted(wanted), client=client, log=setup.log, arch=arch)
            scrubbed.update(_scrub(client, [imaging.for_arch(recipes[n], arch)
                                            for n in sorted(wanted)], setup))
        except Exception as exc:  # any build failure is an infrastructure fault
            why = f"building {arch + ' ' if foreign else ''}images failed: {exc}"
            setup.log(f"error: {why}")
            if foreign:
                arch_errors[arch] = why
            else:
                error = why
    timing.mark("container: images current")
    others = sorted({image for c in cells
                     if (image := entry_of(c, ContainerEntry).image) not in recipes})
    extra = [f"lib{lib}" for lib in setup.package.bundled_libraries
             if lib not in ALWAYS_SCRUBBED]
    if others and extra:
        setup.log(f"warning: {', '.join(extra)} cannot be hidden in {', '.join(others)} (not "
                  "recipe images: nothing is removed from them); their cells are INVALID "
                  "wherever a copy can be found")
    return ContainerResources(run_id=setup.run_id, client=client, error=error, recipes=recipes,
                              keep_failed=setup.keep_failed, arch_errors=arch_errors,
                              scrubbed=scrubbed)


def _scrub(client: docker.DockerClient, recipes: Sequence[imaging.Recipe],
           setup: Setup) -> dict[str, str]:
    """Recipe -> its image without the declared libraries (but those its Python needs, said
    in one line each before any cell runs)."""
    tags: dict[str, str] = {}
    kept: dict[str, dict[str, tuple[str, ...]]] = {}
    for recipe in recipes:
        done = ensure_scrubbed(client, recipe, setup.package.bundled_libraries, setup.log)
        tags[recipe.tag] = done.tag
        for lib, files in done.kept.items():
            kept.setdefault(lib, {})[recipe.name] = files
    for line in Needs(hidden=(), kept=kept).notes("container"):
        setup.log(line)
    return tags


def _passed(run: ProbeRun, spec: ProbeSpec) -> bool:
    """Whether the cell passed (--keep-failed keeps the others up)."""
    return judge(run, cell_id="", kind="container", release=spec.release,
                 package=spec.package).verdict is Verdict.PASS
