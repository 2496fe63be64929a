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
from harness.verdict import read_events, run_facts
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
