"""The container engine the docker SDK finds (DOCKER_HOST respected), or one clear line why not."""

from __future__ import annotations

import os

import docker
import docker.errors
import requests.exceptions

from harness.errors import InfrastructureError


def _permission_denied(exc: BaseException) -> bool:
    """An EACCES anywhere in the chain (the SDK wraps it in requests/urllib3 errors, or only
    keeps its text)."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, PermissionError):
            return True
        if isinstance(item, BaseException):
            if "Permission denied" in str(item):
                return True
            todo += [item.__cause__, item.__context__, *item.args]
        elif isinstance(item, tuple):
            todo += list(item)
    return False


def connect(timeout: int = 30) -> docker.DockerClient:
    """A client that answered a ping; InfrastructureError says how to get one."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(version="auto", timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        if _permission_denied(exc):
            raise InfrastructureError(
                f"permission denied on the Docker socket {where}: an engine may be running, "
                "but this user may not use it; add the user to the 'docker' group (then log "
                "in again), run as root, or set DOCKER_HOST to an engine you may use "
                "(rootless Docker)") from exc
        raise InfrastructureError(
            f"no Docker engine answers at {where} ({type(exc).__name__}); start one "
            "(`sudo dockerd &` or `sudo systemctl start docker`) or set DOCKER_HOST") from exc
    return client
