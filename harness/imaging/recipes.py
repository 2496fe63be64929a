"""Image recipes: ``images/recipes.yaml`` read and checked into frozen values."""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from harness import arches, interpreters, resources

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


def cache_dir() -> Path:
    """Where built bases and downloads are kept between runs."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / PROJECT


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
    arch: str = dataclasses.field(default_factory=lambda: arches.host().name)

    @property
    def foreign(self) -> bool:
        """Built for (and run under emulation of) another architecture than the host's."""
        return arches.is_foreign(self.arch)

    @property
    def tag(self) -> str:
        """The tag the harness runs: ``:latest`` for the host's architecture, else ``:ARCH``."""
        return f"{PROJECT}/{self.name}:{self.arch if self.foreign else 'latest'}"


def for_arch(recipe: Recipe, arch: str) -> Recipe:
    """``recipe`` built for ``arch``; only a Debian suite's own Python can be (ImageError)."""
    if not arches.is_foreign(arch):
        return recipe
    target = arches.get(arch)
    if recipe.suite is None or recipe.interpreter is not None:
        what = "copies a host interpreter" if recipe.interpreter else f"starts FROM {recipe.base}"
        able = ", ".join(foreign_capable(load_recipes()))
        raise ImageError(f"image {recipe.name} {what}: it has no {arch} build (only recipes "
                         f"with a Debian suite and its own Python do: {able})")
    return dataclasses.replace(recipe, arch=arch,
                               base=f"{BASE_REPO}:{recipe.suite}-{target.debian}")


def foreign_capable(recipes: dict[str, Recipe]) -> list[str]:
    """Names of the recipes that can be built for another architecture."""
    return [r.name for r in recipes.values() if r.suite is not None and r.interpreter is None]


@dataclasses.dataclass(frozen=True, kw_only=True)
class RecipesConfig:
    """The whole of ``recipes.yaml``: mmdebstrap settings and the recipes."""

    variant: str
    include: tuple[str, ...]
    aptopts: dict[str, tuple[str, ...]]
    recipes: dict[str, Recipe]
    packages: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def included(self, suite: str) -> tuple[str, ...]:
        """Every package mmdebstrap installs for ``suite``."""
        return (*self.include, *self.packages.get(suite, ()))


# --- recipes -------------------------------------------------------------------------------

_RECIPE_KEYS = {"suite", "base", "python", "interpreter", "extra", "description"}


def load_config(path: Path = RECIPES_FILE) -> RecipesConfig:
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
    return RecipesConfig(
        variant=mm.get("variant", "minbase"),
        include=tuple(mm.get("include", ["python3", "python3-venv", "python3-pip"])),
        aptopts={suite: tuple(opts) for suite, opts in (mm.get("aptopts") or {}).items()},
        packages={suite: tuple(p) for suite, p in (mm.get("packages") or {}).items()},
        recipes=recipes,
    )


def load_recipes() -> dict[str, Recipe]:
    """All recipes of ``images/recipes.yaml`` by name, the extra ones included."""
    return load_config().recipes


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
