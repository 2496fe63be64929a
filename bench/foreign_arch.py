"""Bench part: an emulated aarch64 cell against its native twin, side by side in one run.

A real GMP-bundling release with wheels for both architectures (gmpy2, cp39, from the package
index, cached by tests/fixture_wheels/index.py) and a matrix of one x86_64 container cell
(debian11-py3.9): the harness adds the aarch64 twin (cells follow the release), both run at
once. Also the raw emulation factor the budgets scale by (``harness.arches.BUDGET_FACTOR``):
pure-Python work and big-int work in the same image, native and emulated.
Usage: ``python bench/foreign_arch.py [--repeat N]`` (bench/bench.py calls ``report``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "debian11-py3.9"
NATIVE, EMULATED = f"docker-{IMAGE}", f"docker-{IMAGE}-aarch64"
WORK = ("import time\nt = time.perf_counter()\nsum(i * i for i in range(1_000_000))\n"
        "a = time.perf_counter() - t\nt = time.perf_counter()\npow(3, 100_000, 10 ** 30_000)\n"
        "print(a, time.perf_counter() - t)")


def _gmpy2_cp39(where: Path) -> Path:
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "fixture_wheels" / "index.py")],
                         capture_output=True, text=True, check=True)
    src = Path(out.stdout.strip().splitlines()[-1])
    dist = where / "dist"
    dist.mkdir()
    for whl in src.glob("gmpy2-*-cp39-cp39-*.whl"):
        shutil.copy(whl, dist / whl.name)
    return dist


def _matrix(where: Path) -> Path:
    path = where / "gmpy2.yaml"
    path.write_text(yaml.safe_dump({
        "package": {"distribution": "gmpy2", "import": "gmpy2", "version_from": ["version()"],
                    "bundled_libraries": ["gmp"],
                    "checks": [{"name": "bigint", "expr": "int(gmpy2.mpz(3) ** 1000 % 997)",
                                "expected": pow(3, 1000, 997)}]},
        "environments": {"container": [{"image": IMAGE}]}}))
    return path


def _cells(dist: Path, matrix: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as reports:
        subprocess.run([sys.executable, "-m", "harness", str(dist), "--matrix", str(matrix),
                        "--report-dir", reports], cwd=ROOT, check=True, capture_output=True)
        data = json.loads((Path(reports) / "smoke.json").read_text())
    assert all(c["verdict"] == "PASS" for c in data["cells"]), data["cells"]
    return {c["id"]: float(c["seconds"]) for c in data["cells"]}


def _work(tag: str) -> tuple[float, float]:
    out = subprocess.run(["docker", "run", "--rm", "--network", "none",
                          f"q-kangaroo-smoke/{IMAGE}:{tag}", "python3", "-c", WORK],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def report(repeat: int) -> list[str]:
    """Lines: the twin cells' times (median of ``repeat``) and the raw emulation factors."""
    with tempfile.TemporaryDirectory() as tmp:
        dist, matrix = _gmpy2_cp39(Path(tmp)), _matrix(Path(tmp))
        _cells(dist, matrix)  # warm-up: images, caches
        runs = [_cells(dist, matrix) for _ in range(repeat)]
    native = statistics.median(r[NATIVE] for r in runs)
    emulated = statistics.median(r[EMULATED] for r in runs)
    work = {tag: [_work(tag) for _ in range(repeat)] for tag in ("latest", "aarch64")}
    py = [statistics.median(w[0] for w in work[t]) for t in ("latest", "aarch64")]
    big = [statistics.median(w[1] for w in work[t]) for t in ("latest", "aarch64")]
    return [f"(f) aarch64 cell (qemu-user, binfmt_misc) vs its native twin, gmpy2 cp39 on "
            f"{IMAGE}, median of {repeat}: native {native:5.2f} s, aarch64 {emulated:5.2f} s "
            f"= {emulated / native:4.1f}x ({emulated - native:+5.2f} s)",
            f"    raw emulation factor: pure Python {py[1] / py[0]:4.1f}x, big-int "
            f"{big[1] / big[0]:4.1f}x (budgets of emulated cells scale by "
            "harness.arches.BUDGET_FACTOR)"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    print("\n".join(report(parser.parse_args().repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
