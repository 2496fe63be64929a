"""``python -m harness.imaging [NAME ...] [--base REF] [--list]``: build the clean images."""

from __future__ import annotations

import argparse
import sys
import time

import docker.errors

from harness.errors import HarnessError
from harness.imaging.build import ensure_images
from harness.imaging.recipes import ImageBuildError, ImageError, load_recipes


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.imaging``: build (or list) the clean images; 2 on failure."""
    parser = argparse.ArgumentParser(
        prog="python -m harness.imaging",
        description="Build the clean (GMP-free) images the smoke harness runs wheels in.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="default: all but the extras")
    parser.add_argument("--base", metavar="REF", help="build FROM this image (registry users)")
    parser.add_argument("--arch", metavar="ARCH",
                        help="build for this architecture (aarch64, ...: tag NAME:ARCH, made "
                             "under emulation; default: the host's)")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    args = parser.parse_args(argv)
    try:
        if args.list:
            for recipe in load_recipes().values():
                extra = " (extra)" if recipe.extra else ""
                print(f"{recipe.name:20} {recipe.base:28} {recipe.python}{extra}")
            return 0
        started = time.monotonic()
        built = ensure_images(args.names or None, base_override=args.base, arch=args.arch)
    except ImageBuildError as exc:
        print("\n".join(exc.log_tail), file=sys.stderr)
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    except (ImageError, HarnessError, docker.errors.DockerException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for image in built.values():
        print(f"{image.tag:42} {image.image_id[7:19]}  {image.python}")
    print(f"{len(built)} image(s) current in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
