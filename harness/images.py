"""Clean container images for the smoke harness: recipes, offline bases, builds.

Every image comes from ``images/Dockerfile`` with the per-image values of ``images/recipes.yaml``:
a base (a Debian root filesystem made offline with mmdebstrap, or any registry image), the
Python the harness uses, optionally a host interpreter copied in at its own path. The build
removes GMP and fails unless it can prove GMP is gone. Images are labelled with a hash of
everything that determines them and rebuilt only when that hash changes.

CLI: ``python -m harness.images [NAME ...] [--base REF] [--list]``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import yaml

from harness import engine, interpreters, resources
from harness.errors import InfrastructureError

IMAGES_DIR = resources.images_dir()
RECIPES_FILE = IMAGES_DIR / "recipes.yaml"
PROJECT = "q-kangaroo-smoke"
BASE_REPO = f"{PROJECT}/base"
LABEL_HASH = f"{PROJECT}.recipe-hash"
LABEL_PYTHON = f"{PROJECT}.python"
LABEL_RECIPE = f"{PROJECT}.recipe"
LABEL_BASE = f"{PROJECT}.base"
LABEL_BASE_SPEC = f"{PROJECT}.base-spec"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
HASH_FORMAT = 1  # bump to rebuild every image after a change in how images are built

Log = Callable[[str], None]


class ImageError(RuntimeError):
    """A clean image (or its base) cannot be made; the message says why."""


class ImageBuildError(ImageError):
    """``docker build`` failed, e.g. the GMP proof; ``log_tail`` holds the last build lines."""

    def __init__(self, message: str, log_tail: list[str]) -> None:
        super().__init__(message + "\n--- end of the build log ---\n" + "\n".join(log_tail))
        self.log_tail = log_tail


@dataclasses.dataclass(frozen=True, kw_only=True)
class Recipe:
    """One clean image, as declared in ``images/recipes.yaml``."""

    name: str
    base: str  # image the build starts FROM
    python: str  # interpreter the harness uses, path inside the image
    suite: str | None = None  # Debian suite when ``base`` is made by mmdebstrap
    interpreter: str | None = None  # host prefix copied into the image at the same path
    extra: bool = False  # built only when named
    description: str = ""

    @property
    def tag(self) -> str:
        """The tag the harness runs."""
        return f"{PROJECT}/{self.name}:latest"


@dataclasses.dataclass(frozen=True, kw_only=True)
class BuiltImage:
    """A current clean image."""

    name: str
    tag: str
    image_id: str
    python: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Config:
    variant: str
    include: tuple[str, ...]
    aptopts: dict[str, tuple[str, ...]]
    recipes: dict[str, Recipe]


# --- recipes -------------------------------------------------------------------------------

_RECIPE_KEYS = {"suite", "base", "python", "interpreter", "extra", "description"}


def _load_config(path: Path = RECIPES_FILE) -> _Config:
    """Parse and check ``recipes.yaml``."""
    data = yaml.safe_load(path.read_text())
    mm = data.get("mmdebstrap", {})
    recipes: dict[str, Recipe] = {}
    for name, entry in data["images"].items():
        unknown = set(entry) - _RECIPE_KEYS
        if unknown or ("suite" in entry) == ("base" in entry) or "python" not in entry:
            raise ImageError(
                f"{path}: image {name!r} needs python and exactly one of suite/base"
                + (f"; unknown keys {sorted(unknown)}" if unknown else "")
            )
        interpreter = None
        if "interpreter" in entry:
            interpreter = _newest_interpreter(entry["interpreter"].format(pyenv_root=_pyenv_root()))
        suite = entry.get("suite")
        recipes[name] = Recipe(
            name=name,
            base=entry.get("base") or f"{BASE_REPO}:{suite}",
            python=entry["python"].format(interpreter=interpreter),
            suite=suite,
            interpreter=interpreter,
            extra=bool(entry.get("extra", False)),
            description=entry.get("description", ""),
        )
    return _Config(
        variant=mm.get("variant", "minbase"),
        include=tuple(mm.get("include", ["python3", "python3-venv", "python3-pip"])),
        aptopts={suite: tuple(opts) for suite, opts in (mm.get("aptopts") or {}).items()},
        recipes=recipes,
    )


def load_recipes() -> dict[str, Recipe]:
    """All recipes of ``images/recipes.yaml`` by name, the extra ones included."""
    return _load_config().recipes


def _pyenv_root() -> str:
    """``pyenv root``, or its default when pyenv is not on PATH."""
    root = interpreters.pyenv_root()
    return str(root if root is not None else Path.home() / ".pyenv")


def _newest_interpreter(pattern: str) -> str:
    """The newest X.Y.Z prefix matching ``pattern``; the pattern itself if none does."""
    found = [p for p in glob.glob(pattern) if re.fullmatch(r"\d+\.\d+\.\d+", Path(p).name)]
    if not found:
        return pattern
    return max(found, key=lambda p: tuple(int(n) for n in Path(p).name.split(".")))


# --- identities and the recipe hash ----------------------------------------------------------


def _sha256(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _interpreter_files(prefix: Path) -> Iterator[Path]:
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


def _require_interpreter(recipe: Recipe) -> Path:
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
    for rel in _interpreter_files(prefix):
        st = (prefix / rel).lstat()
        link = os.readlink(prefix / rel) if stat.S_ISLNK(st.st_mode) else ""
        rows.append([str(rel), st.st_size, st.st_mtime_ns, st.st_mode, link])
    return _sha256(rows)


def _uv_binary() -> Path:
    try:
        import uv

        return Path(uv.find_uv_bin())
    except (ImportError, FileNotFoundError) as exc:
        raise ImageError(f"no uv binary on the host ({exc}); pip install uv") from exc


def _uv_identity(uv_bin: Path) -> list[object]:
    out = subprocess.run([str(uv_bin), "--version"], capture_output=True, text=True, check=True)
    return [out.stdout.strip(), uv_bin.stat().st_size]


def _recipe_files() -> dict[str, Path]:
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
    return _sha256(
        {"layers": image.attrs["RootFS"].get("Layers", []), **{k: config.get(k) for k in keys}}
    )


def recipe_hash(recipe: Recipe, *, client: docker.DockerClient | None = None) -> str:
    """Hash of everything that determines the image of ``recipe``.

    Covers the Dockerfile and scripts, the base image's content, the copied interpreter's
    files and the uv binary. The base must be present locally (``ensure_base`` or a pull).
    """
    client = client or _client()
    base = _get_image(client, recipe.base)
    if base is None:
        hint = f"ensure_base({recipe.suite!r})" if recipe.suite else f"docker pull {recipe.base}"
        raise ImageError(f"{recipe.name}: base image {recipe.base} is not present ({hint})")
    interpreter = None
    if recipe.interpreter is not None:
        prefix = _require_interpreter(recipe)
        interpreter = [str(prefix), _interpreter_identity(prefix)]
    return _sha256(
        {
            "format": HASH_FORMAT,
            "files": {name: path.read_text() for name, path in _recipe_files().items()},
            "python": recipe.python,
            "base": [recipe.base, _image_identity(base)],
            "interpreter": interpreter,
            "uv": _uv_identity(_uv_binary()),
        }
    )


# --- docker helpers ----------------------------------------------------------------------------


def _client() -> docker.DockerClient:
    """A client for the engine, or an ImageError that says how to start one."""
    try:
        return engine.connect()
    except InfrastructureError as exc:
        raise ImageError(str(exc)) from exc


def _get_image(client: docker.DockerClient, ref: str) -> Any | None:
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def _drop_if_dangling(client: docker.DockerClient, image_id: str, log: Log) -> None:
    """Remove a replaced image that lost its last tag (ignored if something still uses it)."""
    image = _get_image(client, image_id)
    if image is None or image.tags:
        return
    try:
        client.images.remove(image_id, noprune=False)
        log(f"  removed the replaced image {image_id[7:19]}")
    except docker.errors.APIError:
        pass


# --- bases -----------------------------------------------------------------------------------


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / PROJECT


def _apt_mirror() -> str:
    """The Debian mirror apt on this machine uses ($Q_KANGAROO_SMOKE_MIRROR overrides)."""
    if os.environ.get("Q_KANGAROO_SMOKE_MIRROR"):
        return os.environ["Q_KANGAROO_SMOKE_MIRROR"]
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for para in path.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in para.splitlines() if re.match(r"^[A-Za-z-]+:", line)
            )
            uris = fields.get("URIs", "").split()
            if "deb" in fields.get("Types", "").split() and uris and "security" not in uris[0]:
                return uris[0]
    for path in [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))]:
        if path.is_file():
            for line in path.read_text().splitlines():
                m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", line)
                if m and "security" not in m.group(1):
                    return m.group(1)
    return DEFAULT_MIRROR


def _rootfs_tar(suite: str, config: _Config, spec_hash: str, log: Log) -> Path:
    """The cached mmdebstrap tarball of ``suite``, made if missing (~20 s)."""
    out = _cache_dir() / "rootfs" / f"{suite}-{spec_hash[:12]}.tar"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    mirror = _apt_mirror()
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    cmd = [
        "mmdebstrap",
        f"--variant={config.variant}",
        f"--include={','.join(config.include)}",
        *(f"--aptopt={opt}" for opt in config.aptopts.get(suite, ())),
        "--format=tar",
        suite,
        str(partial),
        mirror,
    ]
    log(f"mmdebstrap {suite} from {mirror} (~20 s)")
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise ImageError("mmdebstrap is not installed (apt-get install mmdebstrap)") from exc
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        tail = (proc.stdout + proc.stderr).splitlines()[-15:]
        raise ImageBuildError(f"mmdebstrap {suite} failed (exit {proc.returncode})", tail)
    partial.replace(out)
    log(f"  {out} ({out.stat().st_size >> 20} MiB) in {time.monotonic() - started:.0f} s")
    return out


def ensure_base(suite: str, *, client: docker.DockerClient | None = None, log: Log = print) -> str:
    """Tag of the raw base of ``suite``: imported from mmdebstrap, un-scrubbed (has GMP)."""
    client = client or _client()
    config = _load_config()
    spec = {
        "suite": suite,
        "variant": config.variant,
        "include": config.include,
        "aptopts": config.aptopts.get(suite, ()),
    }
    spec_hash = _sha256(spec)
    tag = f"{BASE_REPO}:{suite}"
    old = _get_image(client, tag)
    if old is not None and old.labels.get(LABEL_BASE_SPEC) == spec_hash:
        return tag
    tar = _rootfs_tar(suite, config, spec_hash, log)
    log(f"importing {tar.name} as {tag}")
    client.api.import_image(
        src=str(tar),
        repository=BASE_REPO,
        tag=suite,
        changes=[
            f"LABEL {LABEL_BASE_SPEC}={spec_hash} {PROJECT}.suite={suite}",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            'CMD ["/bin/sh"]',
        ],
    )
    if old is not None:
        _drop_if_dangling(client, old.id, log)
    return tag


def _ensure_recipe_base(client: docker.DockerClient, recipe: Recipe, log: Log) -> None:
    """Make the base of ``recipe`` present: mmdebstrap for a suite, else a pull if missing."""
    if recipe.suite is not None:
        ensure_base(recipe.suite, client=client, log=log)
        return
    if _get_image(client, recipe.base) is not None:
        return
    log(f"pulling {recipe.base}")
    try:
        client.images.pull(recipe.base)
    except docker.errors.APIError as exc:
        raise ImageError(
            f"{recipe.name}: base image {recipe.base} is not present and cannot be pulled "
            f"({exc.explanation or exc})"
        ) from exc


# --- builds ----------------------------------------------------------------------------------


def _stage_context(recipe: Recipe, ctx: Path) -> None:
    """Write the build context: Dockerfile, scripts/, uv, rootfs/ (+ a copied interpreter)."""
    # Explicit modes, whatever the umask: COPY applies a directory's mode to its target
    # (``COPY rootfs/ /`` sets the mode of /).
    for name, src in _recipe_files().items():
        (ctx / name).parent.mkdir(exist_ok=True)
        (ctx / name).parent.chmod(0o755)
        shutil.copy2(src, ctx / name)
    shutil.copy2(_uv_binary(), ctx / "uv")
    (ctx / "uv").chmod(0o755)
    rootfs = ctx / "rootfs"
    rootfs.mkdir()
    rootfs.chmod(0o755)
    if recipe.interpreter is None:
        return
    prefix = _require_interpreter(recipe)
    dest = rootfs / prefix.relative_to("/")  # the same absolute path inside the image
    dest.mkdir(parents=True)
    for directory in [dest, *dest.parents]:
        if directory == rootfs:
            break
        directory.chmod(0o755)
    # Modes normalised so that uid 1000 can read everything (dirs 755, files 644/755).
    for rel in _interpreter_files(prefix):
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


def _select(recipes: dict[str, Recipe], names: Iterable[str] | None) -> list[Recipe]:
    if names is None:
        return [r for r in recipes.values() if not r.extra]
    names = list(names)
    unknown = [n for n in names if n not in recipes]
    if unknown:
        raise ImageError(f"unknown image {', '.join(unknown)} (known: {', '.join(recipes)})")
    return [recipes[n] for n in dict.fromkeys(names)]


def ensure_images(
    names: Iterable[str] | None = None,
    *,
    client: docker.DockerClient | None = None,
    log: Log = print,
    base_override: str | None = None,
) -> dict[str, BuiltImage]:
    """Make the named clean images (default: all but the extras) current; build only those
    missing or outdated. ``base_override`` builds them FROM that image reference instead.
    """
    recipes = _select(load_recipes(), names)
    client = client or _client()
    built: dict[str, BuiltImage] = {}
    for recipe in recipes:
        if base_override is not None:
            recipe = dataclasses.replace(recipe, base=base_override, suite=None)
        _ensure_recipe_base(client, recipe, log)
        digest = recipe_hash(recipe, client=client)
        old = _get_image(client, recipe.tag)
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
                _drop_if_dangling(client, old.id, log)
        built[recipe.name] = BuiltImage(
            name=recipe.name, tag=recipe.tag, image_id=image_id, python=recipe.python
        )
    return built


# --- CLI -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.images``: build (or list) the clean images; 2 on failure."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.images",
        description="Build the clean (GMP-free) images the smoke harness runs wheels in.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="default: all but the extras")
    parser.add_argument("--base", metavar="REF", help="build FROM this image (registry users)")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for recipe in load_recipes().values():
                extra = " (extra)" if recipe.extra else ""
                print(f"{recipe.name:20} {recipe.base:28} {recipe.python}{extra}")
            return 0
        started = time.monotonic()
        built = ensure_images(args.names or None, base_override=args.base)
    except ImageBuildError as exc:
        print("\n".join(exc.log_tail), file=sys.stderr)
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    except (ImageError, docker.errors.DockerException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for image in built.values():
        print(f"{image.tag:42} {image.image_id[7:19]}  {image.python}")
    print(f"{len(built)} image(s) current in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
