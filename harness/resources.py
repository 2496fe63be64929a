"""Where the harness's own data is: the default matrix and the image recipes.

In a checkout, ``harness/data/`` links to the top-level ``matrix.yaml`` and ``images/``; an
installed harness (``pip install .``, a console script) has real copies there (package data).
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def default_matrix() -> Path:
    """The matrix used without --matrix."""
    return DATA / "matrix.yaml"


def images_dir() -> Path:
    """The image recipes: Dockerfile, recipes.yaml, scripts/."""
    return DATA / "images"
