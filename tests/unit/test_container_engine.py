"""Container cells against a fake engine: what an engine failure reads like, and the /tmp a
cell gets for the files it installs."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import docker.errors
import pytest
import requests.exceptions
from urllib3.exceptions import ProtocolError

from harness.environments.base import ProbeSpec
from harness.environments.container import ContainerEnvironment
from harness.verdict import Verdict, judge, read_events, run_facts
from tests.unit.conftest import PACKAGE, make_wheel, release_of


class _Containers:
    def __init__(self, fail: Exception) -> None:
        self.fail = fail

    def create(self, *_args: Any, **_kwargs: Any) -> Any:
        raise self.fail


class _Client:
    def __init__(self, fail: Exception) -> None:
        self.containers = _Containers(fail)


def _spec(tmp_path: Path) -> ProbeSpec:
    info = make_wheel()
    wheel = tmp_path / info.filename
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("q_kangaroo/__init__.py", "")
    return ProbeSpec(package=PACKAGE, release=release_of(info.__class__(
        **{**vars(info), "path": wheel})))


RESET = requests.exceptions.ConnectionError(ProtocolError(
    "Connection aborted.", ConnectionResetError(104, "Connection reset by peer")))


@pytest.mark.parametrize(("fail", "said"), [
    (RESET, "connection to the Docker engine was lost"),
    (requests.exceptions.ReadTimeout("UnixHTTPConnectionPool: Read timed out."),
     "did not answer in time"),
    (docker.errors.APIError("500 Server Error", explanation="no space left on device"),
     "refused a request (HTTP None: no space left on device)"),
])
def test_an_engine_failure_is_one_readable_line_and_the_raw_text_stays_in_the_details(
        tmp_path: Path, fail: Exception, said: str) -> None:
    client: Any = _Client(fail)
    env = ContainerEnvironment(client=client, image="img", python="python3", labels={})
    run = env.run(_spec(tmp_path), 60)
    reason = run.infra_error or ""
    assert said in reason and "docker info" in reason and "\n" not in reason
    assert "Connection aborted" not in reason and "(104" not in reason
    assert str(fail) in run_facts(run, read_events(run)).stderr  # the report's run.stderr


class _Recording(_Containers):
    def __init__(self) -> None:
        super().__init__(docker.errors.APIError("stop here"))
        self.kwargs: dict[str, Any] = {}

    def create(self, *args: Any, **kwargs: Any) -> Any:
        self.kwargs = kwargs
        return super().create(*args, **kwargs)


def _declaring(spec: ProbeSpec, size: int) -> ProbeSpec:
    """The spec's wheel, its one member declaring ``size`` bytes unpacked (zip directory)."""
    wheel = spec.release.wheels[0].path
    data = bytearray(wheel.read_bytes())
    at = data.find(b"PK\x01\x02")
    data[at + 24:at + 28] = size.to_bytes(4, "little")  # the uncompressed size
    wheel.write_bytes(bytes(data))
    return spec


@pytest.mark.parametrize(("unpacked", "tmp_gib", "memory_gib"), [
    (10, 1.0, 2.0), (1536 << 20, 3.5, 4.5)])
def test_the_cell_tmpfs_and_memory_grow_with_what_its_wheels_unpack_to(
        tmp_path: Path, unpacked: int, tmp_gib: float, memory_gib: float) -> None:
    client: Any = _Client(RESET)
    client.containers = recording = _Recording()
    env = ContainerEnvironment(client=client, image="img", python="python3", labels={})
    env.run(_declaring(_spec(tmp_path), unpacked), 60)
    assert f"size={int(tmp_gib * (1 << 30))}," in recording.kwargs["tmpfs"]["/tmp"]
    assert recording.kwargs["mem_limit"] == int(memory_gib * (1 << 30))


def test_wheels_beyond_the_harness_tmp_limit_are_an_error_naming_it_never_a_fail(
        tmp_path: Path) -> None:
    client: Any = _Client(RESET)
    client.containers = recording = _Recording()
    env = ContainerEnvironment(client=client, image="img", python="python3", labels={})
    run = env.run(_declaring(_spec(tmp_path), 4000 << 20), 60)
    assert "unpack to 3.91 GiB" in (run.infra_error or "")
    assert "harness's 8 GiB /tmp limit" in (run.infra_error or "")
    spec = _spec(tmp_path)
    result = judge(run, cell_id="docker-x", kind="container", release=spec.release,
                   package=PACKAGE)
    assert result.verdict is Verdict.ERROR and result.reason == run.infra_error
    assert not recording.kwargs  # no container was made
