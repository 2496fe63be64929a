"""Real releases from the package index, cached for the tests: GMP-bundling wheels built by
another project (gmpy2 bundles GMP, MPFR and MPC under ``gmpy2.libs/``), for several
architectures.

Usage: ``python tests/fixture_wheels/index.py [--cache-dir DIR]`` prints the directory
holding the release set (downloaded once with pip, then reused).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

GMPY2 = "2.3.2"
PYTHONS = ("3.9", "3.11", "3.13")  # those the arm64 Debian images carry
ARCHES = ("x86_64", "aarch64")


def _cache_root() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "q-kangaroo-smoke" / "index-wheels"


def _pip() -> list[str]:
    """pip as a command: this interpreter's, else the system's (a uv-made venv has none)."""
    for python in (sys.executable, shutil.which("python3")):
        if python and subprocess.run([python, "-m", "pip", "--version"],
                                     capture_output=True, check=False).returncode == 0:
            return [python, "-m", "pip"]
    raise RuntimeError("no pip to download gmpy2's wheels with (install python3-pip)")


def gmpy2_release(cache_dir: Path | None = None) -> Path:
    """A directory holding gmpy2's manylinux2014 wheels for PYTHONS x ARCHES (nothing else)."""
    out = (cache_dir or _cache_root()) / f"gmpy2-{GMPY2}"
    done = out / ".complete"
    out.mkdir(parents=True, exist_ok=True)
    with (out.parent / f".gmpy2-{GMPY2}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.is_file():
            return out
        for python in PYTHONS:
            for arch in ARCHES:
                subprocess.run(
                    [*_pip(), "download", "--quiet", "--no-deps",
                     "--only-binary=:all:", "--python-version", python,
                     "--platform", f"manylinux2014_{arch}", f"gmpy2=={GMPY2}", "-d", str(out)],
                    check=True)
        wheels = sorted(out.glob("*.whl"))
        if len(wheels) != len(PYTHONS) * len(ARCHES):
            raise RuntimeError(f"expected {len(PYTHONS) * len(ARCHES)} gmpy2 wheels in {out}, "
                               f"found {len(wheels)}")
        done.write_text("\n".join(w.name for w in wheels) + "\n")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path)
    args = parser.parse_args()
    print(gmpy2_release(args.cache_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
