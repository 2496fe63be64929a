"""The engine's local image store: connect, look an image up, drop a replaced one."""

from __future__ import annotations

from typing import Any

import docker
import docker.errors

from harness import engine
from harness.errors import InfrastructureError
from harness.imaging.recipes import ImageError, Log


def connect() -> docker.DockerClient:
    """A client for the engine, or an ImageError that says how to start one."""
    try:
        return engine.connect()
    except InfrastructureError as exc:
        raise ImageError(str(exc)) from exc


def get_image(client: docker.DockerClient, ref: str) -> Any | None:
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def drop_if_dangling(client: docker.DockerClient, image_id: str, log: Log) -> None:
    """Remove a replaced image that lost its last tag (ignored if something still uses it)."""
    image = get_image(client, image_id)
    if image is None or image.tags:
        return
    try:
        client.images.remove(image_id, noprune=False)
        log(f"  removed the replaced image {image_id[7:19]}")
    except docker.errors.APIError:
        pass
