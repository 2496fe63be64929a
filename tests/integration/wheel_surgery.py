"""Make new broken wheels from a fixture wheel: edit files, keep RECORD consistent."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Callable
from pathlib import Path


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def rewrite(src: Path, dest_dir: Path,
            edit: Callable[[dict[str, bytes]], dict[str, bytes]]) -> Path:
    """Copy ``src`` into ``dest_dir`` with ``edit`` applied to its files; rebuild RECORD."""
    with zipfile.ZipFile(src) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    record = next(n for n in files if n.endswith(".dist-info/RECORD"))
    files = edit({n: d for n, d in files.items() if n != record})
    lines = [_record_line(n, d) for n, d in files.items()] + [f"{record},,"]
    files[record] = ("\n".join(lines) + "\n").encode()
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / src.name
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out
