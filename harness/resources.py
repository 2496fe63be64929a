"""Where the harness's own data is: the default matrix, the image recipes, its cache.

They ship as the package ``smoke_defaults`` (links to the top-level ``matrix.yaml``,
``q_kangaroo_reference.py`` and ``images/`` in a checkout; real copies once installed with
``pip install .`` or as a console script), so nothing package-specific is under ``harness/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import smoke_defaults

DATA = Path(smoke_defaults.__file__).resolve().parent


def default_matrix() -> Path:
    """The matrix used without --matrix."""
    return DATA / "matrix.yaml"


def images_dir() -> Path:
    """The image recipes: Dockerfile, recipes.yaml, scripts/."""
    return DATA / "images"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/q-kangaroo-smoke`` (default ``~/.cache``): what is kept between runs."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "q-kangaroo-smoke"
