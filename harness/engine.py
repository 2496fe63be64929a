"""The container engine the docker SDK finds (DOCKER_HOST respected), or one clear line why not."""

from __future__ import annotations

import os

import docker
import docker.errors
import requests.exceptions

from harness.errors import InfrastructureError


def connect(timeout: int = 30) -> docker.DockerClient:
    """A client that answered a ping; InfrastructureError says how to get one."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(version="auto", timeout=timeout)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise InfrastructureError(
            f"no Docker engine answers at {where} ({type(exc).__name__}); start one "
            "(`sudo dockerd &` or `sudo systemctl start docker`) or set DOCKER_HOST") from exc
    return client
