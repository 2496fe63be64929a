"""The recipe hash: everything that determines an image, so that only changes rebuild it."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker

from harness import arches
from harness.imaging import foreign_uv
from harness.imaging.recipes import HASH_FORMAT, IMAGES_DIR, ImageError, Recipe
from harness.imaging.store import connect, get_image


def sha256(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def interpreter_files(prefix: Path) -> Iterator[Path]:
    """Paths (relative to ``prefix``) of the interpreter and its standard library.

    Left out: the host's site-packages contents (the empty directory stays) and the pip
    scripts that went with them, ``test``/``tests`` directories, static ``libpython*.a``,
    headers, man pages, pkgconfig.
    """
    for top in ("bin", "lib"):
        yield Path(top)
        for entry in sorted((prefix / top).iterdir()):
            rel = entry.relative_to(prefix)
            if top == "bin" and entry.name.startswith("pip"):
                continue
            if top == "lib" and not (
                (entry.name.startswith("libpython") and ".so" in entry.name)
                or re.fullmatch(r"python\d+\.\d+", entry.name)
            ):
                continue
            if entry.is_dir() and not entry.is_symlink():
                yield from _stdlib_files(prefix, rel)
            else:
                yield rel


def _stdlib_files(prefix: Path, rel_dir: Path) -> Iterator[Path]:
    yield rel_dir
    if rel_dir.name == "site-packages":
        return
    for entry in sorted((prefix / rel_dir).iterdir()):
        rel = rel_dir / entry.name
        if entry.is_dir() and not entry.is_symlink():
            if entry.name not in ("test", "tests", "idle_test"):
                yield from _stdlib_files(prefix, rel)
        elif not (entry.name.startswith("libpython") and entry.name.endswith(".a")):
            yield rel


def require_interpreter(recipe: Recipe) -> Path:
    assert recipe.interpreter is not None
    prefix = Path(recipe.interpreter)
    if not (prefix / "bin").is_dir():
        raise ImageError(
            f"{recipe.name}: no host interpreter matches {recipe.interpreter} "
            "(install it, e.g. `pyenv install`)"
        )
    return prefix


def _interpreter_identity(prefix: Path) -> str:
    """Hash of the copied files' names, sizes, modification times, modes, link targets."""
    rows = []
    for rel in interpreter_files(prefix):
        st = (prefix / rel).lstat()
        link = os.readlink(prefix / rel) if stat.S_ISLNK(st.st_mode) else ""
        rows.append([str(rel), st.st_size, st.st_mtime_ns, st.st_mode, link])
    return sha256(rows)


@functools.lru_cache(maxsize=8)
def uv_binary(arch: str | None = None) -> Path:
    """The uv an image carries: the host's, or for a foreign ``arch`` the same version's
    build for it (downloaded once; when that fails the host's, which the build then drops:
    cells install with pip)."""
    try:
        import uv

        host_uv = Path(uv.find_uv_bin())
    except (ImportError, FileNotFoundError) as exc:
        raise ImageError(f"no uv binary on the host ({exc}); pip install uv") from exc
    if arch is None or not arches.is_foreign(arch):
        return host_uv
    version = str(_uv_identity(host_uv)[0]).split()[1]  # "uv 0.13.10 (...)"
    return foreign_uv.binary(arch, version) or host_uv


@functools.lru_cache(maxsize=4)
def _uv_identity(uv_bin: Path) -> tuple[object, ...]:
    """uv's version and size (asked once per process, not once per recipe)."""
    if foreign_uv.is_cached(uv_bin):  # another architecture's: not run on the host
        return (f"uv {uv_bin.parent.name}", uv_bin.stat().st_size)
    out = subprocess.run([str(uv_bin), "--version"], capture_output=True, text=True, check=True)
    return (out.stdout.strip(), uv_bin.stat().st_size)


def recipe_files() -> dict[str, Path]:
    """The files of ``images/`` that go into every build context, by context path."""
    files = {"Dockerfile": IMAGES_DIR / "Dockerfile"}
    for script in sorted((IMAGES_DIR / "scripts").iterdir()):
        files[f"scripts/{script.name}"] = script
    return files


def _image_identity(image: Any) -> str:
    """Content identity of an image: its layers and the config a build inherits.

    Stable across re-imports of the same root filesystem tarball (the image id is not).
    """
    config = image.attrs.get("Config") or {}
    keys = ("Env", "User", "WorkingDir", "Entrypoint", "Cmd", "Shell")
    return sha256(
        {"layers": image.attrs["RootFS"].get("Layers", []), **{k: config.get(k) for k in keys}}
    )


def recipe_hash(recipe: Recipe, *, client: docker.DockerClient | None = None) -> str:
    """Hash of everything that determines the image of ``recipe``.

    Covers the Dockerfile and scripts, the base image's content, the copied interpreter's
    files and the uv binary. The base must be present locally (``ensure_base`` or a pull).
    """
    client = client or connect()
    base = get_image(client, recipe.base)
    if base is None:
        hint = f"ensure_base({recipe.suite!r})" if recipe.suite else f"docker pull {recipe.base}"
        raise ImageError(f"{recipe.name}: base image {recipe.base} is not present ({hint})")
    interpreter = None
    if recipe.interpreter is not None:
        prefix = require_interpreter(recipe)
        interpreter = [str(prefix), _interpreter_identity(prefix)]
    return sha256(
        {
            "format": HASH_FORMAT,
            "files": {name: path.read_text() for name, path in recipe_files().items()},
            "python": recipe.python,
            "base": [recipe.base, _image_identity(base)],
            "interpreter": interpreter,
            "uv": _uv_identity(uv_binary(recipe.arch)),
            **({"arch": recipe.arch} if recipe.foreign else {}),
        }
    )
