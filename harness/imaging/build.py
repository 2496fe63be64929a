"""Builds: stage the context, stream ``docker build``, keep current images as they are."""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker

from harness import arches
from harness.imaging.hashing import (
    interpreter_files,
    recipe_files,
    recipe_hash,
    require_interpreter,
    uv_binary,
)
from harness.imaging.recipes import (
    LABEL_BASE,
    LABEL_HASH,
    LABEL_PYTHON,
    LABEL_RECIPE,
    PROJECT,
    ImageBuildError,
    ImageError,
    Log,
    Recipe,
    for_arch,
    foreign_capable,
    load_recipes,
)
from harness.imaging.rootfs import ensure_recipe_base
from harness.imaging.store import connect, drop_if_dangling, get_image


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuiltImage:
    """A current clean image."""

    name: str
    tag: str
    image_id: str
    python: str


def _stage_context(recipe: Recipe, ctx: Path) -> None:
    """Write the build context: Dockerfile, scripts/, uv, rootfs/ (+ a copied interpreter)."""
    # Explicit modes, whatever the umask: COPY applies a directory's mode to its target
    # (``COPY rootfs/ /`` sets the mode of /).
    for name, src in recipe_files().items():
        (ctx / name).parent.mkdir(exist_ok=True)
        (ctx / name).parent.chmod(0o755)
        shutil.copy2(src, ctx / name)
    shutil.copy2(uv_binary(recipe.arch), ctx / "uv")
    (ctx / "uv").chmod(0o755)
    rootfs = ctx / "rootfs"
    rootfs.mkdir()
    rootfs.chmod(0o755)
    if recipe.interpreter is None:
        return
    prefix = require_interpreter(recipe)
    dest = rootfs / prefix.relative_to("/")  # the same absolute path inside the image
    dest.mkdir(parents=True)
    for directory in [dest, *dest.parents]:
        if directory == rootfs:
            break
        directory.chmod(0o755)
    # Modes normalised so that uid 1000 can read everything (dirs 755, files 644/755).
    for rel in interpreter_files(prefix):
        src, dst = prefix / rel, dest / rel
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        elif src.is_dir():
            dst.mkdir(exist_ok=True)
            dst.chmod(0o755)
        else:
            shutil.copy2(src, dst)  # keeps mtimes: the copied __pycache__ stays valid
            dst.chmod(0o755 if src.stat().st_mode & 0o111 else 0o644)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the legacy builder colours a RUN's stderr
_NOISE = (" ---> ", "Removing intermediate container")


def _build(
    client: docker.DockerClient, recipe: Recipe, digest: str, *, offline: bool, log: Log
) -> str:
    """Build ``recipe`` and return the image id; ImageBuildError with the log tail on failure."""
    labels = {
        LABEL_HASH: digest,
        LABEL_PYTHON: recipe.python,
        LABEL_RECIPE: recipe.name,
        LABEL_BASE: recipe.base,
    }
    tail: collections.deque[str] = collections.deque(maxlen=40)
    error: str | None = None
    image_id: str | None = None
    with tempfile.TemporaryDirectory(prefix=f"{PROJECT}-{recipe.name}-") as tmp:
        ctx = Path(tmp)
        _stage_context(recipe, ctx)
        stream = client.api.build(
            path=str(ctx),
            tag=recipe.tag,
            labels=labels,
            buildargs={"BASE": recipe.base, "PYTHON": recipe.python},
            network_mode="none" if offline else None,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            use_config_proxy=False,
        )
        for chunk in stream:
            for line in _ANSI.sub("", chunk.get("stream", "")).splitlines():
                if line.strip() and not line.startswith(_NOISE):
                    tail.append(line)
                if line.startswith("==> "):  # the scripts' progress lines
                    log(f"  {recipe.name}: {line}")
            if "error" in chunk:
                error = chunk["error"].strip()
            image_id = (chunk.get("aux") or {}).get("ID", image_id)
    if error is not None:
        reason = next((line for line in reversed(tail) if "PROOF FAILED" in line), None)
        message = f"building {recipe.tag} failed: {error}"
        raise ImageBuildError(f"{message} [{reason}]" if reason else message, list(tail))
    if image_id is None:
        image_id = client.images.get(recipe.tag).id
    return str(image_id)


def _select(
    recipes: dict[str, Recipe], names: Iterable[str] | None, arch: str | None
) -> list[Recipe]:
    if names is None:
        able = foreign_capable(recipes) if arches.is_foreign(arch) else list(recipes)
        return [for_arch(recipes[n], arch or recipes[n].arch) for n in able
                if not recipes[n].extra]
    names = list(names)
    unknown = [n for n in names if n not in recipes]
    if unknown:
        raise ImageError(f"unknown image {', '.join(unknown)} (known: {', '.join(recipes)})")
    return [for_arch(recipes[n], arch or recipes[n].arch) for n in dict.fromkeys(names)]


def ensure_images(
    names: Iterable[str] | None = None,
    *,
    client: docker.DockerClient | None = None,
    log: Log = print,
    base_override: str | None = None,
    arch: str | None = None,
) -> dict[str, BuiltImage]:
    """Make the named clean images (default: all but the extras) current; build only those
    missing or outdated. ``base_override`` builds them FROM that image reference instead;
    ``arch`` builds them for that architecture (tag ``:ARCH``, run under emulation).

    Side by side: first each distinct base (an mmdebstrap downloads while another unpacks),
    then each image (the engine builds several at once; the check of a current one is
    mostly waiting on the engine and the file system)."""
    recipes = _select(load_recipes(), names, arch)
    if base_override is not None:
        recipes = [dataclasses.replace(r, base=base_override, suite=None) for r in recipes]
    engine = client or connect()
    for recipe in recipes:  # found once, before the threads: uv's lookup loads sysconfig
        uv_binary(recipe.arch)  # (not thread-safe); another arch's is downloaded once
    bases = list({r.base: r for r in recipes}.values())
    with ThreadPoolExecutor(max_workers=max(1, min(PARALLEL_BUILDS, len(recipes)))) as pool:
        list(pool.map(lambda r: ensure_recipe_base(engine, r, log), bases))
        images = list(pool.map(lambda r: _ensure_image(engine, r, log), recipes))
    return {image.name: image for image in images}


PARALLEL_BUILDS = 3  # image builds (and base checks) at once


def _ensure_image(client: docker.DockerClient, recipe: Recipe, log: Log) -> BuiltImage:
    """The current image of ``recipe`` (its base present): kept, or built."""
    digest = recipe_hash(recipe, client=client)
    old = get_image(client, recipe.tag)
    if old is not None and old.labels.get(LABEL_HASH) == digest:
        log(f"{recipe.name}: up to date ({recipe.tag}, {old.id[7:19]})")
        image_id = str(old.id)
    else:
        why = "missing" if old is None else "outdated"
        log(f"{recipe.name}: building {recipe.tag} FROM {recipe.base} ({why})")
        started = time.monotonic()
        # Bases made by mmdebstrap already hold every package: no network at build time.
        image_id = _build(client, recipe, digest, offline=recipe.suite is not None, log=log)
        log(f"{recipe.name}: built {image_id[7:19]} in {time.monotonic() - started:.0f} s")
        if old is not None and old.id != image_id:
            drop_if_dangling(client, old.id, log)
    return BuiltImage(name=recipe.name, tag=recipe.tag, image_id=image_id, python=recipe.python)
