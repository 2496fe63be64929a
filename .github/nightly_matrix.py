"""matrix.yaml + the nightly-only images ($EXTRA_IMAGES, extra recipes) and host cells
($HOST_PYTHONS: one Windows and one macOS cell per version) -> the nightly matrix.

Usage: python .github/nightly_matrix.py matrix.yaml nightly.yaml
Deterministic: every job of a run writes the same file (merge checks its digest).
"""

from __future__ import annotations

import os
import sys

import yaml


def main(source: str, target: str) -> None:
    with open(source, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    containers = data.setdefault("environments", {}).setdefault("container", [])
    present = {c["image"] for c in containers}
    containers += [{"image": name} for name in os.environ.get("EXTRA_IMAGES", "").split()
                   if name not in present]
    hosts = data["environments"].setdefault("host", [])
    known = {h["python"] for h in hosts}
    hosts += [{"python": py, "os": ["windows", "macos"]}
              for py in os.environ.get("HOST_PYTHONS", "").split() if py not in known]
    if not hosts:
        del data["environments"]["host"]
    with open(target, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f, sort_keys=False)


if __name__ == "__main__":
    main(*sys.argv[1:3])
