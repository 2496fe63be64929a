"""Prepare what the cells share, once per run: interpreters, sandbox, engine and images."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from harness import engine, interpreters, sandbox
from harness.cells import Cell
from harness.environments.base import CellEnvironment
from harness.environments.container import ContainerEnvironment, reap, run_labels
from harness.environments.venv import VenvEnvironment
from harness.errors import HarnessError, InfrastructureError
from harness.runner import RunContext

Log = Callable[[str], None]


def _uv() -> str:
    import uv

    return str(uv.find_uv_bin())


def prepare_venvs(ctx: RunContext, cells: Sequence[Cell], log: Log) -> None:
    """Find each interpreter; build the run's sandbox that hides the bundled libraries."""
    def find(spec: str) -> interpreters.Interpreter | str:
        try:
            return interpreters.find(spec)
        except HarnessError as exc:
            return str(exc)

    specs = sorted({c.python for c in cells if c.python is not None})
    with ThreadPoolExecutor(max_workers=len(specs) or 1) as pool:
        found = dict(zip(specs, pool.map(find, specs), strict=True))
    ctx.resources["interpreters"] = found
    libdirs = [i.libdir for i in found.values() if isinstance(i, interpreters.Interpreter)
               and i.libdir]
    try:
        ctx.resources["sandbox"] = sandbox.prepare(
            ctx.root / "sandbox", list(ctx.package.bundled_libraries), libdirs)
    except sandbox.SandboxUnavailable as exc:  # never run a venv cell unisolated
        ctx.resources["sandbox"] = (
            f"cannot isolate venv cells: {exc}; run as root, allow unprivileged user "
            "namespaces (sysctl user.max_user_namespaces, "
            "kernel.apparmor_restrict_unprivileged_userns=0) or use container cells")
        log(f"error: {ctx.resources['sandbox']}")


def prepare_containers(ctx: RunContext, cells: Sequence[Cell], log: Log, *,
                       build_images: bool = True) -> None:
    """Connect to the engine, reap leftovers, build missing or outdated recipe images."""
    from harness import images

    try:
        client = engine.connect()
    except InfrastructureError as exc:
        ctx.resources["docker_error"] = str(exc)
        log(f"error: {exc}")
        return
    ctx.resources["docker"] = client
    for name in reap(client):
        log(f"removed leftover container {name}")
    recipes = images.load_recipes()
    wanted = sorted({c.image for c in cells if c.image in recipes})
    built: dict[str, images.BuiltImage] = {}
    if wanted:
        try:
            built = images.ensure_images(wanted, client=client, log=log) if build_images else {}
        except Exception as exc:  # any build failure is an infrastructure fault
            ctx.resources["docker_error"] = f"building images failed: {exc}"
            log(f"error: {ctx.resources['docker_error']}")
    ctx.resources["images"] = {name: (b.tag, b.python) for name, b in built.items()}
    ctx.resources["recipes"] = {name: (r.tag, r.python) for name, r in recipes.items()}


def prepare(ctx: RunContext, cells: Sequence[Cell], log: Log, *,
            build_images: bool = True) -> None:
    """Everything the selected cells need."""
    venvs = [c for c in cells if c.kind == "venv"]
    containers = [c for c in cells if c.kind == "container"]
    # once, before the threads: uv's lookup loads sysconfig, which is not thread-safe then
    ctx.resources["uv"] = _uv()
    with ThreadPoolExecutor(max_workers=2) as pool:  # independent: run side by side
        jobs = [pool.submit(prepare_venvs, ctx, venvs, log)] if venvs else []
        if containers:
            jobs.append(pool.submit(prepare_containers, ctx, containers, log,
                                    build_images=build_images))
        for job in jobs:
            job.result()


def make_environment(cell: Cell, ctx: RunContext) -> CellEnvironment:
    """The real environment for a cell (tests substitute their own factory)."""
    if cell.kind == "venv":
        assert cell.python is not None
        interp = ctx.resources["interpreters"][cell.python]
        isolation = ctx.resources["sandbox"]
        for problem in (interp, isolation):
            if isinstance(problem, str):
                raise InfrastructureError(problem)
        return VenvEnvironment(python=interp.executable, run_root=ctx.root, sandbox=isolation,
                               uv=ctx.resources["uv"], cell_id=cell.id)
    if "docker_error" in ctx.resources:
        raise InfrastructureError(ctx.resources["docker_error"])
    assert cell.image is not None
    image, python = ctx.resources["images"].get(cell.image) or ctx.resources["recipes"].get(
        cell.image) or (cell.image, None)
    return ContainerEnvironment(client=ctx.resources["docker"], image=image,
                                python=cell.python or python or "python3",
                                labels=run_labels(ctx.run_id, cell.id),
                                keep_failed=ctx.keep_failed)
