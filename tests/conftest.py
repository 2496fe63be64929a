"""Shared fixtures: real fixture wheels, a real Docker engine, the harness as a subprocess."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "tests" / "fixture_wheels" / "build.py"


def _load_builder() -> Any:
    spec = importlib.util.spec_from_file_location("fixture_wheels_build", BUILD)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def wheels() -> dict[str, Path]:
    """Every fixture wheel, built from the crate in tests/fixture_wheels (cached by content)."""
    return dict(_load_builder().build_variants())


@pytest.fixture(scope="session")
def docker_client() -> Any:
    """A real engine; tests/CI start one first (tools/ensure-docker-engine). Never skipped."""
    from harness import engine

    subprocess.run(["bash", str(ROOT / "tools" / "ensure-docker-engine")], check=False)
    return engine.connect()


@pytest.fixture(scope="session")
def images(docker_client: Any) -> dict[str, Any]:
    """The default clean images, built once (reused when current); one test process at a
    time checks or builds them (xdist workers wait for the first instead of building too)."""
    import fcntl
    import tempfile

    from harness import imaging

    lock = Path(tempfile.gettempdir()) / f"q-kangaroo-smoke-tests-images-{os.geteuid()}.lock"
    with lock.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        return imaging.ensure_images(None, client=docker_client, log=lambda line: None)


@dataclass
class HarnessRun:
    """One `python -m harness` run: exit code, report, console output."""

    returncode: int
    report: dict[str, Any] | None
    output: str

    def cells(self) -> dict[str, dict[str, Any]]:
        """Report cells by id."""
        assert self.report is not None, self.output
        return {c["id"]: c for c in self.report["cells"]}

    def failed_check(self, cell_id: str) -> str | None:
        """Name of the first check that did not pass."""
        for check in self.cells()[cell_id]["checks"]:
            if check["status"] not in ("pass", "skip"):
                return str(check["name"])
        return None


RunHarness = Callable[..., HarnessRun]


def harness_process(reports: Path, *args: str, env: Mapping[str, str] | None = None,
                    cwd: Path | None = None, timeout: float = 900) -> HarnessRun:
    """``python -m harness ARGS --report-dir REPORTS`` for real: exit code, report, output."""
    extra = dict(env or {})
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), extra.pop("PYTHONPATH", "")]))
    full_env = {**os.environ, **extra, "PYTHONPATH": pythonpath}
    proc = subprocess.run([sys.executable, "-m", "harness", *args, "--report-dir",
                           str(reports)], capture_output=True, text=True,
                          env=full_env, cwd=cwd or ROOT, timeout=timeout)
    path = reports / "smoke.json"
    report = json.loads(path.read_text()) if path.exists() else None
    return HarnessRun(proc.returncode, report, proc.stdout + proc.stderr)


@pytest.fixture
def run_harness(tmp_path: Path) -> RunHarness:
    """Run the harness CLI for real; returns exit code and parsed JSON report."""

    def run(*args: str, **kw: Any) -> HarnessRun:
        return harness_process(tmp_path / "reports", *args, **kw)

    return run


@pytest.fixture(scope="session")
def whole_matrix(wheels: dict[str, Path], images: dict[str, Any],
                 tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], HarnessRun]:
    """The default matrix's every cell (venv and container) on one fixture wheel, run once
    per session and judged by several tests (each looks at its kind of cell).  Tests sharing
    a variant's run belong to its xdist group: ``by_variant``."""
    runs: dict[str, HarnessRun] = {}

    def run(variant: str) -> HarnessRun:
        if variant not in runs:
            runs[variant] = harness_process(tmp_path_factory.mktemp(f"whole-{variant}"),
                                            str(wheels[variant]))
        return runs[variant]

    return run


def by_variant(*variants: str) -> list[Any]:
    """Parameters for tests that share ``whole_matrix``'s run: one xdist group per wheel."""
    return [pytest.param(v, marks=pytest.mark.xdist_group(f"whole-{v}")) for v in variants]


def default_matrix_data() -> dict[str, Any]:
    """The default matrix.yaml as data, its reference module named by absolute path (so a
    copy written anywhere still finds it)."""
    import yaml

    data: dict[str, Any] = yaml.safe_load((ROOT / "matrix.yaml").read_text())
    if "reference" in data["package"]:  # it ships beside the default matrix
        data["package"]["reference"] = str(ROOT / data["package"]["reference"])
    return data


@pytest.fixture
def matrix_file(tmp_path: Path) -> Callable[..., Path]:
    """A variant of the default matrix.yaml: other environments, extra checks, defaults."""
    import yaml

    def make(*, venv: list[dict[str, Any]] | None = None,
             container: list[dict[str, Any]] | None = None,
             extra_checks: list[dict[str, Any]] = (), **defaults: Any) -> Path:  # type: ignore[assignment]
        data = default_matrix_data()
        data["environments"] = {k: v for k, v in (("venv", venv), ("container", container))
                                if v is not None}
        data["package"]["checks"] += list(extra_checks)
        data.setdefault("defaults", {}).update(defaults)
        path = tmp_path / "matrix.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return make


def smoke_containers(client: Any, *, run: str | None = None, pid: int | None = None) -> list[Any]:
    """Containers of one harness run (by run id or harness pid) that still exist."""
    label = (f"q-kangaroo-smoke.run={run}" if run is not None
             else f"q-kangaroo-smoke.pid={pid}")
    return list(client.containers.list(all=True, filters={"label": label}))


@pytest.fixture
def visible_dir() -> Iterator[Path]:
    """A directory a venv cell sees (its /tmp is its own, so not under tmp_path), readable
    by the cell's uid; removed afterwards."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="qk-visible-", dir="/var/lib"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
