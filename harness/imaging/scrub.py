"""Images scrubbed of the matrix's declared libraries, beyond the GMP every clean image lacks.

A recipe image is the base; a small image on top of it runs ``scripts/scrub-libs.sh``, which
deletes every file of each declared library and proves them gone, except those the image's
Python (or its standard library's extensions) loads, which the probe finds first in a
throw-away container.  The harness says what it kept in one line before any cell runs; the
cells' provenance then proves, file by file, that the package resolves its own copy.  Tagged
``q-kangaroo-smoke/NAME:scrub-HASH`` (hash of the base image, the libraries and the script);
reused while current.
"""

from __future__ import annotations

import collections
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass

import docker

from harness import probe
from harness.environments.base import PROBE_SOURCE, parse_events
from harness.imaging.hashing import sha256
from harness.imaging.recipes import IMAGES_DIR, PROJECT, ImageBuildError, Log, Recipe
from harness.imaging.store import get_image

LABEL_SCRUB = f"{PROJECT}.scrub-hash"
SCRIPT = IMAGES_DIR / "scripts" / "scrub-libs.sh"
ALWAYS_SCRUBBED = ("gmp",)  # every recipe's build removes GMP already

_DOCKERFILE = """\
ARG BASE
FROM ${BASE}
ARG PYTHON
ARG LIBS
USER root
COPY scrub-libs.sh /opt/q-kangaroo-smoke/scrub-libs.sh
RUN sh /opt/q-kangaroo-smoke/scrub-libs.sh "$PYTHON" $LIBS
USER 1000:1000
"""


@dataclass(frozen=True, kw_only=True)
class Scrubbed:
    """The image to run, and the declared libraries its Python needs (library -> files)."""

    tag: str
    kept: dict[str, tuple[str, ...]]


def _context() -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", _DOCKERFILE.encode()),
                           ("scrub-libs.sh", SCRIPT.read_bytes())):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def ensure_scrubbed(client: docker.DockerClient, recipe: Recipe, libraries: Sequence[str],
                    log: Log) -> Scrubbed:
    """The recipe's image with ``libraries`` removed too, but those its Python needs (asked
    first, by the probe in a throw-away container); built when missing."""
    libs = sorted({lib for lib in libraries if lib not in ALWAYS_SCRUBBED})
    if not libs:
        return Scrubbed(tag=recipe.tag, kept={})
    base = client.images.get(recipe.tag)
    kept = _needs(client, base.id, recipe.python, libs)
    hidden = [lib for lib in libs if lib not in kept]
    if not hidden:
        return Scrubbed(tag=recipe.tag, kept=kept)
    digest = sha256({"base": base.id, "libs": hidden, "script": SCRIPT.read_text(),
                     "dockerfile": _DOCKERFILE})
    tag = f"{PROJECT}/{recipe.name}:scrub-{digest[:12]}"
    old = get_image(client, tag)
    if old is not None and old.labels.get(LABEL_SCRUB) == digest:
        return Scrubbed(tag=tag, kept=kept)
    log(f"{recipe.name}: removing {', '.join('lib' + lib for lib in hidden)} ({tag})")
    tail: collections.deque[str] = collections.deque(maxlen=40)
    error = None
    for chunk in client.api.build(fileobj=_context(), custom_context=True, tag=tag,
                                  buildargs={"BASE": recipe.tag, "PYTHON": recipe.python,
                                             "LIBS": " ".join(hidden)},
                                  labels={LABEL_SCRUB: digest}, network_mode="none", rm=True,
                                  forcerm=True, pull=False, decode=True):
        tail.extend(chunk.get("stream", "").splitlines())
        error = chunk.get("error", error)
    if error is not None:
        reason = next((line for line in reversed(tail) if "PROOF FAILED" in line), "")
        raise ImageBuildError(f"removing {', '.join(hidden)} from {recipe.tag} failed: "
                              f"{error.strip()} {reason}".strip(), list(tail))
    return Scrubbed(tag=tag, kept=kept)


def _needs(client: docker.DockerClient, image: str, python: str,
           libs: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """What the image's Python needs of ``libs`` (the probe's ``needs`` mode, no network)."""
    spec = json.dumps({"mode": "needs", "libraries": list(libs)})
    out = client.containers.run(image, [python, "-I", "-S", "-c", probe.BOOTSTRAP,
                                        PROBE_SOURCE, spec], network_mode="none", remove=True,
                                stdout=True, stderr=False, labels={PROJECT: "needs"})
    text = out.decode("utf-8", "replace") if isinstance(out, bytes) else str(out)
    event = next((e for e in parse_events(text) if e.get("event") == "needs"), {})
    return {str(k): tuple(v) for k, v in (event.get("needs") or {}).items() if v}
