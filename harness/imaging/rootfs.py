"""Offline Debian bases: a root filesystem made by mmdebstrap from this machine's mirror."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import docker
import docker.errors

from harness import arches, binfmt
from harness.imaging.hashing import sha256
from harness.imaging.recipes import (
    BASE_REPO,
    DEFAULT_MIRROR,
    LABEL_BASE_SPEC,
    PROJECT,
    ImageBuildError,
    ImageError,
    Log,
    Recipe,
    RecipesConfig,
    cache_dir,
    load_config,
)
from harness.imaging.store import connect, drop_if_dangling, get_image


def _apt_mirror() -> str:
    """The Debian mirror apt on this machine uses ($Q_KANGAROO_SMOKE_MIRROR overrides)."""
    if os.environ.get("Q_KANGAROO_SMOKE_MIRROR"):
        return os.environ["Q_KANGAROO_SMOKE_MIRROR"]
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for para in path.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in para.splitlines() if re.match(r"^[A-Za-z-]+:", line)
            )
            uris = fields.get("URIs", "").split()
            if "deb" in fields.get("Types", "").split() and uris and "security" not in uris[0]:
                return uris[0]
    for path in [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))]:
        if path.is_file():
            for line in path.read_text().splitlines():
                m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", line)
                if m and "security" not in m.group(1):
                    return m.group(1)
    return DEFAULT_MIRROR


def _rootfs_tar(
    suite: str, config: RecipesConfig, spec_hash: str, log: Log, arch: arches.Arch | None
) -> Path:
    """The cached mmdebstrap tarball of ``suite`` (for a foreign ``arch``: ~2-4 min under
    emulation), made if missing (~20 s)."""
    name = suite if arch is None else f"{suite}-{arch.debian}"
    out = cache_dir() / "rootfs" / f"{name}-{spec_hash[:12]}.tar"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    mirror = _apt_mirror()
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    cmd = [
        "mmdebstrap",
        f"--variant={config.variant}",
        f"--include={','.join(config.included(suite))}",
        *(f"--aptopt={opt}" for opt in config.aptopts.get(suite, ())),
        *([f"--architectures={arch.debian}"] if arch is not None else []),
        "--format=tar",
        suite,
        str(partial),
        mirror,
    ]
    if arch is not None:  # its maintainer scripts run under qemu
        binfmt.ensure(arch, log=log)
    log(f"mmdebstrap {name} from {mirror} ({'~20 s' if arch is None else 'emulated, ~3 min'})")
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise ImageError("mmdebstrap is not installed (apt-get install mmdebstrap)") from exc
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        tail = (proc.stdout + proc.stderr).splitlines()[-15:]
        raise ImageBuildError(f"mmdebstrap {suite} failed (exit {proc.returncode})", tail)
    partial.replace(out)
    log(f"  {out} ({out.stat().st_size >> 20} MiB) in {time.monotonic() - started:.0f} s")
    return out


def ensure_base(
    suite: str,
    *,
    client: docker.DockerClient | None = None,
    log: Log = print,
    arch: str | None = None,
) -> str:
    """Tag of the raw base of ``suite``: imported from mmdebstrap, un-scrubbed (has GMP).

    A foreign ``arch`` (``aarch64``) gets its own tag, ``base:SUITE-DEBIANARCH``.
    """
    client = client or connect()
    config = load_config()
    target = arches.get(arch) if arch is not None and arches.is_foreign(arch) else None
    spec: dict[str, object] = {
        "suite": suite,
        "variant": config.variant,
        "include": config.included(suite),
        "aptopts": config.aptopts.get(suite, ()),
    }
    if target is not None:  # the host's bases keep the hash they always had
        spec["arch"] = target.debian
    spec_hash = sha256(spec)
    tag_name = suite if target is None else f"{suite}-{target.debian}"
    tag = f"{BASE_REPO}:{tag_name}"
    old = get_image(client, tag)
    if old is not None and old.labels.get(LABEL_BASE_SPEC) == spec_hash:
        return tag
    tar = _rootfs_tar(suite, config, spec_hash, log, target)
    log(f"importing {tar.name} as {tag}")
    client.api.import_image(
        src=str(tar),
        repository=BASE_REPO,
        tag=tag_name,
        changes=[
            f"LABEL {LABEL_BASE_SPEC}={spec_hash} {PROJECT}.suite={suite}",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            'CMD ["/bin/sh"]',
        ],
    )
    if old is not None:
        drop_if_dangling(client, old.id, log)
    return tag


def ensure_recipe_base(client: docker.DockerClient, recipe: Recipe, log: Log) -> None:
    """Make the base of ``recipe`` present: mmdebstrap for a suite, else a pull if missing."""
    if recipe.suite is not None:
        ensure_base(recipe.suite, client=client, log=log, arch=recipe.arch)
        return
    if get_image(client, recipe.base) is not None:
        return
    log(f"pulling {recipe.base}")
    try:
        client.images.pull(recipe.base)
    except docker.errors.APIError as exc:
        raise ImageError(
            f"{recipe.name}: base image {recipe.base} is not present and cannot be pulled "
            f"({exc.explanation or exc})"
        ) from exc
