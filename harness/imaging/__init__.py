"""Clean container images for the smoke harness: recipes, offline bases, builds.

Every image comes from ``images/Dockerfile`` with the per-image values of ``images/recipes.yaml``:
a base (a Debian root filesystem made offline with mmdebstrap, or any registry image), the
Python the harness uses, optionally a host interpreter copied in at its own path. The build
removes GMP and fails unless it can prove GMP is gone. Images are labelled with a hash of
everything that determines them and rebuilt only when that hash changes.

``recipes`` reads the recipes, ``hashing`` says when an image is current, ``rootfs`` makes
offline bases, ``build`` builds, ``store`` talks to the engine's image store; the CLI is
``python -m harness.imaging [NAME ...] [--base REF] [--list]``.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from harness.imaging.recipes import (
    ImageBuildError,
    ImageError,
    Recipe,
    for_arch,
    foreign_capable,
    load_recipes,
)

if TYPE_CHECKING:
    from harness.imaging.build import BuiltImage, ensure_images
    from harness.imaging.hashing import recipe_hash
    from harness.imaging.rootfs import ensure_base

#: the engine-backed parts (docker SDK), imported when first used: reading recipes needs none
_LAZY = {"BuiltImage": "build", "ensure_images": "build", "recipe_hash": "hashing",
         "ensure_base": "rootfs"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"harness.imaging.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["BuiltImage", "ImageBuildError", "ImageError", "Recipe", "ensure_base",
           "ensure_images", "for_arch", "foreign_capable", "load_recipes", "recipe_hash"]
