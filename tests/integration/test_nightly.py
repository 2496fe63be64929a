"""Nightly at scale, for real: shards in separate processes merged = one unsharded run;
container cells mount nothing of the host; a second engine that cannot see the harness's
files runs a cell through DOCKER_HOST."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, RunHarness, default_matrix_data

CELLS = {"venv-py3.10": "UNCOVERED", "venv-py3.11": "PASS", "docker-debian11-py3.9": "UNCOVERED",
         "docker-debian12-py3.11": "PASS"}  # a cp311-abi3 wheel: refused below 3.11


@pytest.fixture
def small_matrix(tmp_path: Path) -> Path:
    """2 venv + 2 container cells; any abi3 floor accepted so verdicts differ by Python."""
    data = default_matrix_data()
    data["package"]["wheel_tags"] = ["cp3*-abi3-manylinux_2_17_x86_64"]
    data["environments"] = {"venv": [{"python": "3.10"}, {"python": "3.11"}],
                            "container": [{"image": "debian11-py3.9"},
                                          {"image": "debian12-py3.11"}]}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def harness(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True,
                          text=True, cwd=ROOT, env=full, timeout=900)


def verdicts(report_dir: Path) -> dict[str, str]:
    data = json.loads((report_dir / "smoke.json").read_text())
    return {c["id"]: c["verdict"] for c in data["cells"]}


def test_two_shards_merged_equal_the_unsharded_run(wheels: dict[str, Path], small_matrix: Path,
                                                   docker_client: Any, tmp_path: Path) -> None:
    wheel = str(wheels["abi3floor"])
    whole = harness(wheel, "--matrix", str(small_matrix), "--report-dir", str(tmp_path / "all"))
    assert verdicts(tmp_path / "all") == CELLS, whole.stderr
    listed = json.loads(harness("--matrix", str(small_matrix), "--list", "--format",
                                "json").stdout)
    assert [j["id"] for j in listed] == list(CELLS)
    codes, shard_cells = [], []
    for i in (1, 2):
        out = tmp_path / f"shard{i}"
        proc = harness(wheel, "--matrix", str(small_matrix), "--shard", f"{i}/2",
                       "--report-dir", str(out))
        codes.append(proc.returncode)
        shard_cells.append(verdicts(out))
        assert {c.split("-")[0] for c in shard_cells[-1]} == {"venv", "docker"}  # balanced
    assert not set(shard_cells[0]) & set(shard_cells[1])
    merged = harness("merge", str(tmp_path / "shard2"), str(tmp_path / "shard1"),
                     "--report-dir", str(tmp_path / "merged"))
    assert merged.returncode == whole.returncode == 1, merged.stderr
    assert verdicts(tmp_path / "merged") == verdicts(tmp_path / "all")
    assert list(verdicts(tmp_path / "merged")) == list(CELLS)  # unsharded order
    md = (tmp_path / "merged" / "smoke.md").read_text()
    assert "| venv-py3.11 | ✅ PASS |" in md and "| venv-py3.10 | 🕳️ UNCOVERED |" in md
    # a shard's report next to another run's shard is refused
    other = harness(str(wheels["good"]), "--matrix", str(small_matrix), "--shard", "2/2",
                    "--select", "venv-*", "--report-dir", str(tmp_path / "other"))
    assert other.returncode in (0, 1), other.stderr
    refused = harness("merge", str(tmp_path / "shard1"), str(tmp_path / "other"),
                      "--report-dir", str(tmp_path / "refused"))
    assert refused.returncode == 2 and "different wheels" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_container_cell_has_no_host_mount_and_gets_the_exact_wheel(
        wheels: dict[str, Path], docker_client: Any, tmp_path: Path) -> None:
    from harness import imaging as images
    from harness.environments.container import LABEL, locked_down

    tag = images.ensure_images(["debian11-py3.9"], client=docker_client,
                               log=lambda line: None)["debian11-py3.9"].tag
    wheel = wheels["good"]
    labels = {f"{LABEL}.run": "mount-test", f"{LABEL}.pid": str(os.getpid()),
              f"{LABEL}.host": os.uname().nodename, f"{LABEL}.cell": "mount-test"}
    with locked_down(docker_client, image=tag, command=["sha256sum", f"/wheel/{wheel.name}"],
                     files={wheel.name: wheel}, labels=labels) as handle:
        c = handle.container
        c.reload()
        mounts = c.attrs["Mounts"]
        assert not c.attrs["HostConfig"].get("Binds")
        assert [m["Type"] for m in mounts] == ["volume"] and mounts[0]["Destination"] == "/wheel"
        volume = mounts[0]["Name"]
        c.start()
        assert c.wait(timeout=60)["StatusCode"] == 0
        digest = c.logs().decode().split()[0]
    assert digest == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert volume not in {v.name for v in docker_client.volumes.list()}  # removed with it
    assert not docker_client.containers.list(all=True,
                                             filters={"label": f"{LABEL}.run=mount-test"})


@pytest.fixture
def second_engine(tmp_path: Path, docker_client: Any) -> Iterator[Callable[[], str]]:
    """A second dockerd on its own socket and data root that cannot see ``hidden``: in its
    mount namespace a tmpfs covers the directory the harness stages wheels in."""
    base = Path("/var/tmp") / f"q-kangaroo-smoke-engine2-{os.getpid()}"
    hidden = tmp_path / "harness-tmp"
    hidden.mkdir()
    base.mkdir()
    sock = f"unix://{base}/docker.sock"
    script = (f"mount -t tmpfs none {hidden} && exec dockerd --host {sock} "
              f"--data-root {base}/data --exec-root {base}/exec --pidfile {base}/docker.pid "
              "--bridge=none --iptables=false --ip-masq=false")
    log = (base / "log").open("w")
    proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             script], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    env = {**os.environ, "DOCKER_HOST": sock}
    try:
        for _ in range(120):
            if subprocess.run(["docker", "version"], env=env, capture_output=True).returncode == 0:
                break
            assert proc.poll() is None, (base / "log").read_text()
            time.sleep(0.5)
        yield lambda: sock
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        subprocess.run(["umount", "-R", f"{base}/exec"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_a_second_engine_that_shares_no_files_runs_a_cell(
        wheels: dict[str, Path], docker_client: Any, second_engine: Callable[[], str],
        run_harness: RunHarness, tmp_path: Path) -> None:
    from harness import imaging as images

    tag = images.ensure_images(["debian11-py3.9"], client=docker_client,
                               log=lambda line: None)["debian11-py3.9"].tag
    sock = second_engine()
    save = subprocess.Popen(["docker", "save", tag], stdout=subprocess.PIPE)
    load = subprocess.run(["docker", "load"], stdin=save.stdout, capture_output=True,
                          env={**os.environ, "DOCKER_HOST": sock})
    save.wait()
    assert load.returncode == 0, load.stderr
    run = run_harness(str(wheels["good"]), "--select", "docker-debian11-py3.9",
                      "--no-build-images",
                      env={"DOCKER_HOST": sock, "TMPDIR": str(tmp_path / "harness-tmp")})
    assert run.returncode == 0, run.output
    assert run.cells()["docker-debian11-py3.9"]["verdict"] == "PASS"
    left = subprocess.run(["docker", "ps", "-aq"], capture_output=True, text=True,
                          env={**os.environ, "DOCKER_HOST": sock}).stdout.split()
    volumes = subprocess.run(["docker", "volume", "ls", "-q"], capture_output=True, text=True,
                             env={**os.environ, "DOCKER_HOST": sock}).stdout.split()
    assert left == [] and volumes == []
