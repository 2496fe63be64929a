"""Test fixture imitating q_kangaroo: q-series helpers backed by a Rust + GMP extension."""

import os
import sys
from importlib.metadata import version as _dist_version

# Windows builds find a MinGW-built GMP through MINGW_BIN, and only when it is set.
if sys.platform == "win32" and "MINGW_BIN" in os.environ:  # pragma: no cover
    os.add_dll_directory(os.environ["MINGW_BIN"])

from q_kangaroo._q_kangaroo import partition_gf, version

__version__ = _dist_version("q_kangaroo")

__all__ = ["__version__", "partition_gf", "version"]
