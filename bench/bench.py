"""Benchmark: the harness's full run vs. a naive baseline and per-cell floors, same process.

(a) wall time of ``python -m harness WHEEL`` on the matrix (images warm);
(b) naive baseline, cell after cell: fresh ``python -m venv`` (with ensurepip) + ``pip
    install`` + an import check, on the host or inside the same image;
(c) per-cell floors: ``docker run --rm --network none IMAGE python -c "import q_kangaroo"``
    with the wheel preinstalled in a throwaway layer, and ``python -c "import q_kangaroo"``
    in an existing venv;
then the ratios.  Usage: ``python bench/bench.py [WHEEL] [--repeat N] [--select PAT]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from uv import find_uv_bin  # noqa: E402

from harness import cells as cells_mod  # noqa: E402
from harness import engine, imaging, interpreters, matrix  # noqa: E402

IMPORT = "import q_kangaroo"


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_of(repeat: int, fn: Callable[[], object]) -> float:
    return statistics.median(timed(fn) for _ in range(repeat))


def run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv[:4])}… failed:\n{proc.stdout}{proc.stderr}")
    return proc


def fixture_wheel() -> Path:
    out = run([sys.executable, str(ROOT / "tests" / "fixture_wheels" / "build.py"), "good"])
    return Path(out.stdout.strip().splitlines()[-1].split("\t")[1])


def harness_run(wheel: Path, selects: list[str], report_dir: Path,
                *extra: str) -> dict[str, Any]:
    args = [arg for s in selects for arg in ("--select", s)]
    run([sys.executable, "-m", "harness", str(wheel), *args, *extra, "--report-dir",
         str(report_dir)], cwd=ROOT)
    return dict(json.loads((report_dir / "smoke.json").read_text()))


def naive_venv(python: Path, wheel: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "v"
        run([str(python), "-m", "venv", str(venv)])
        run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--no-deps", str(wheel)])
        run([str(venv / "bin" / "python"), "-c", IMPORT], cwd=tmp)


def naive_container(image: str, python: str, wheel: Path) -> None:
    script = (f"{python} -m venv /tmp/v && /tmp/v/bin/pip install -q --no-index --no-deps "
              f"/wheel/{wheel.name} && cd /tmp && /tmp/v/bin/python -c '{IMPORT}'")
    run(["docker", "run", "--rm", "--network", "none", "--tmpfs", "/tmp:exec",
         "-e", "HOME=/tmp", "--user", "1000:1000", "-v", f"{wheel.parent}:/wheel:ro", image,
         "sh", "-c", script])


def preinstalled_image(image: str, python: str, wheel: Path) -> str:
    """A throwaway image: IMAGE + the wheel installed into its interpreter."""
    name = f"qk-bench-{abs(hash((image, wheel.name))):x}"
    run(["docker", "rm", "-f", name])
    run(["docker", "run", "--name", name, "--user", "0", "--network", "none",
         "-v", f"{wheel.parent}:/wheel:ro", image, "/usr/local/bin/uv", "pip", "install",
         "--offline", "--no-deps", "--no-cache", "--system", "--break-system-packages",
         "--python", python, f"/wheel/{wheel.name}"])
    run(["docker", "commit", name, f"{name}:latest"])
    run(["docker", "rm", "-f", name])
    return f"{name}:latest"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("wheel", nargs="?", type=Path)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--select", action="append", default=[])
    args = p.parse_args()
    wheel = (args.wheel or fixture_wheel()).resolve()
    m = matrix.load(ROOT / "matrix.yaml")
    cells = cells_mod.select(cells_mod.expand(m), args.select)
    client = engine.connect() if any(c.kind == "container" for c in cells) else None
    built = imaging.ensure_images(sorted({c.image for c in cells if c.image}), client=client,
                                 log=lambda line: None) if client else {}

    print(f"wheel {wheel.name}; {len(cells)} cells; repeat {args.repeat}")
    harness_run(wheel, args.select, Path(tempfile.mkdtemp()))  # warm-up (images, caches)
    reports: list[dict[str, Any]] = []

    def full() -> None:
        reports.append(harness_run(wheel, args.select, Path(tempfile.mkdtemp())))

    t_harness = median_of(args.repeat, full)
    assert all(c["verdict"] == "PASS" for r in reports for c in r["cells"]), "not all PASS"
    per_cell = {c["id"]: statistics.median(r_c["seconds"] for r in reports for r_c in r["cells"]
                                           if r_c["id"] == c["id"]) for c in reports[0]["cells"]}

    t_gate = median_of(args.repeat, lambda: harness_run(
        wheel, args.select, Path(tempfile.mkdtemp()), "--prepublish"))
    t_shards = median_of(args.repeat, lambda: [harness_run(
        wheel, args.select, Path(tempfile.mkdtemp()), "--shard", f"{i}/2") for i in (1, 2)])

    t_naive = 0.0
    floors: dict[str, float] = {}
    throwaway: list[str] = []
    for cell in cells:
        if cell.kind == "venv":
            assert cell.python is not None
            python = interpreters.find(cell.python).executable
            t_naive += timed(lambda python=python: naive_venv(python, wheel))
            with tempfile.TemporaryDirectory() as tmp:
                venv = Path(tmp) / "v"
                run([str(python), "-m", "venv", "--without-pip", str(venv)])
                run([find_uv_bin(), "pip", "install", "-q", "--offline", "--no-deps", "--python",
                     str(venv / "bin" / "python"), str(wheel)])
                floors[cell.id] = median_of(args.repeat * 2, lambda venv=venv, tmp=tmp: run(
                    [str(venv / "bin" / "python"), "-c", IMPORT], cwd=tmp))
        else:
            b = built[str(cell.image)]
            t_naive += timed(lambda b=b: naive_container(b.tag, b.python, wheel))
            pre = preinstalled_image(b.tag, b.python, wheel)
            throwaway.append(pre)
            floors[cell.id] = median_of(args.repeat * 2, lambda pre=pre, b=b: run(
                ["docker", "run", "--rm", "--network", "none", pre, b.python, "-c", IMPORT]))
    for image in throwaway:
        run(["docker", "rmi", "-f", image])

    print(f"\n(a) harness full run (median of {args.repeat}): {t_harness:6.2f} s")
    print(f"(b) naive baseline, cell after cell:        {t_naive:6.2f} s")
    print(f"    ratio naive / harness:                  {t_naive / t_harness:6.1f}x "
          "(target >= 5x, aim 10x)")
    print(f"(d) the same run with --prepublish (audit, cross-check, go/no-go): {t_gate:6.2f} s"
          f" = {t_gate / t_harness:4.2f}x ({t_gate - t_harness:+5.2f} s)")
    print(f"(e) two --shard processes one after the other: {t_shards:6.2f} s = "
          f"{t_shards / t_harness:4.2f}x ({t_shards - t_harness:+5.2f} s: a shard's fixed cost)")
    print("(c) per cell: harness cell time vs. floor (overhead; target venv <= 0.3 s, "
          "container <= 0.5 s)")
    for cell in cells:
        over = per_cell[cell.id] - floors[cell.id]
        limit = 0.3 if cell.kind == "venv" else 0.5
        print(f"    {cell.id:28s} {per_cell[cell.id]:5.2f} s vs {floors[cell.id]:5.2f} s  "
              f"overhead {over:+5.2f} s  {'ok' if over <= limit else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
