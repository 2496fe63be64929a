"""Wheel checks from the archive's metadata and file list: METADATA and WHEEL against the file
name, RECORD hashes, size, check-wheel-contents, and what ``twine check`` checks (the index's
parsing of METADATA, the long description's rendering)."""

from __future__ import annotations

import base64
import csv
import email.message
import hashlib
import io
from email.parser import BytesHeaderParser

from packaging.metadata import ExceptionGroup, InvalidMetadata, Metadata, parse_email
from packaging.tags import Tag, parse_tag
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from harness.audit import adapters
from harness.audit.model import Collector, WheelAudit, WheelCheck, same_version


def check_metadata(wheel: WheelAudit, out: Collector) -> None:
    """METADATA and WHEEL against the file name."""
    dist, files = wheel.dist, wheel.files
    meta_raw = files.data.get(f"{files.dist_info}/METADATA")
    wheel_raw = files.data.get(f"{files.dist_info}/WHEEL")
    if meta_raw is None or wheel_raw is None:
        out.add("metadata-missing", f"{files.dist_info} lacks METADATA or WHEEL",
                "rebuild the wheel with a standard build backend")
        return
    try:
        meta = Metadata.from_email(meta_raw, validate=True)
    except (InvalidMetadata, ExceptionGroup) as exc:  # packaging's, also on 3.10
        details = "; ".join(str(e) for e in getattr(exc, "exceptions", [exc]))
        out.add("metadata-invalid", f"METADATA does not validate: {details}",
                "fix the project metadata (pyproject.toml [project]) and rebuild")
        meta = Metadata.from_email(meta_raw, validate=False)
    if canonicalize_name(str(meta.name)) != dist.name:
        out.add("metadata-name-mismatch",
                f"METADATA Name {meta.name!r} is not the file name's {dist.name!r}",
                "rebuild; never rename wheel files by hand")
    if meta.version != dist.version:
        out.add("metadata-version-mismatch",
                f"METADATA Version {meta.version} but the file name says {dist.version}",
                f"{wheel.fix('version-home')}; never rename or edit a built wheel")
    dist_info_version = files.dist_info.removesuffix(".dist-info").rpartition("-")[2]
    if not same_version(dist_info_version, dist.version):
        out.add("metadata-version-mismatch",
                f"the {files.dist_info} directory says version {dist_info_version}, the file "
                f"name {dist.version}", "rebuild the wheel")
    headers = BytesHeaderParser().parsebytes(wheel_raw)
    declared = {t for value in headers.get_all("Tag", []) for t in parse_tag(value.strip())}
    if declared != set(dist.tags):
        extra, missing = _tag_list(declared - dist.tags), _tag_list(dist.tags - declared)
        out.add("wheel-tags-mismatch",
                f"WHEEL's Tag lines and the file name disagree (only in WHEEL: {extra}; only in "
                f"the name: {missing})", "re-tag with `wheel tags` (it rewrites both) or rebuild")


def _tag_list(tags: set[Tag] | frozenset[Tag]) -> str:
    return ", ".join(sorted(str(t) for t in tags)) or "none"


def check_record(wheel: WheelAudit, out: Collector) -> None:
    """Every member listed in RECORD with its hash, and every hash right."""
    files = wheel.files
    record_name = f"{files.dist_info}/RECORD"
    raw = files.data.get(record_name)
    if raw is None:
        out.add("record-missing", "no RECORD file", "rebuild the wheel")
        return
    listed: set[str] = set()
    for row in csv.reader(io.StringIO(raw.decode("utf-8", "replace"))):
        if not row:
            continue
        path, digest = row[0], row[1] if len(row) > 1 else ""
        listed.add(path)
        if path == record_name or path.endswith(".dist-info/RECORD.jws"):
            continue
        if path not in files.data:
            out.add("record-hash-mismatch", f"RECORD lists {path}, which is not in the wheel",
                    "rebuild the wheel; do not edit it after building")
            continue
        algorithm, _, expected = digest.partition("=")
        if algorithm not in hashlib.algorithms_guaranteed or not expected:
            out.add("record-hash-mismatch", f"RECORD has no usable hash for {path}",
                    "rebuild the wheel")
            continue
        actual = base64.urlsafe_b64encode(hashlib.new(algorithm, files.data[path]).digest())
        if actual.rstrip(b"=").decode() != expected:
            out.add("record-hash-mismatch", f"{path} does not match its RECORD hash: the file "
                    "was changed after the wheel was built; pip refuses to install it",
                    "rebuild the wheel instead of patching it (or use `wheel pack`, which "
                    "rewrites RECORD)")
    unlisted = sorted(n for n in files.names if n not in listed and not n.endswith(
        (".dist-info/RECORD.jws", ".dist-info/RECORD.p7s")))
    if unlisted:
        out.add("record-unlisted-file", f"not listed in RECORD: {', '.join(unlisted[:5])}",
                "rebuild the wheel; do not add files after building")


def check_size(wheel: WheelAudit, out: Collector) -> None:
    """The file against the size threshold."""
    size_mb = wheel.dist.path.stat().st_size / 1e6
    limit = wheel.options.policy.max_size_mb
    if size_mb > limit:
        out.add("size", f"{size_mb:.1f} MB, above the {limit:g} MB "
                "threshold (PyPI's default file limit is 100 MB)",
                wheel.fix("strip"))


_LIBS_DIR_CHECKS = {"W009": 1, "W010": 0}  # check -> entries left that are still fine


def check_contents(wheel: WheelAudit, out: Collector) -> None:
    """check-wheel-contents' layout checks (auditwheel's ``<package>.libs/`` is fine)."""
    try:
        failures = adapters.wheel_contents_failures(wheel.dist.path)
    except Exception as exc:  # the tool's own failure, reported, never skipped
        out.error("contents-failed", f"check-wheel-contents could not run: "
                  f"{type(exc).__name__}: {exc}", "run `check-wheel-contents WHEEL` by hand")
        return
    for failure in failures:
        # auditwheel's standard `<package>.libs/` directory is not a layout mistake
        kept = [a for a in failure.paths if not a.rstrip("/").endswith(".libs")]
        if failure.check in _LIBS_DIR_CHECKS and len(kept) <= _LIBS_DIR_CHECKS[failure.check]:
            continue
        paths = ", ".join(failure.paths[:5])
        out.add(f"contents-{failure.check}", f"check-wheel-contents {failure.check}: "
                f"{failure.message}" + (f": {paths}" if paths else ""),
                "see https://github.com/jwodder/check-wheel-contents#checks")


def _metadata_version(text: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        return Version("0")


def check_twine(wheel: WheelAudit, out: Collector) -> None:
    """What ``twine check`` checks, with the libraries it uses: METADATA as the index parses
    it (packaging), and the long description renders (readme_renderer, the index's own)."""
    raw = wheel.files.data.get(f"{wheel.files.dist_info}/METADATA")
    if raw is None:
        return  # metadata-missing says so
    try:
        import readme_renderer.rst
    except ImportError as exc:
        out.error("twine-failed", f"readme_renderer unavailable: {exc}",
                  "pip install readme-renderer")
        return
    fields, unparsed = parse_email(raw)
    if _metadata_version(fields.get("metadata_version", "")) < Version("2.4"):
        fields.pop("license_files", None)  # setuptools' License-File before 2.4: tolerated
        unparsed.pop("license-file", None)
    problems = [f"unrecognized or malformed field {key!r}" for key in unparsed]
    try:
        Metadata.from_raw(fields)
    except ExceptionGroup as group:
        problems += sorted(str(e) for e in group.exceptions)
    if problems:
        out.add("twine-invalid", f"the index refuses the metadata: {'; '.join(problems)}",
                "fix the metadata and rebuild")
        return
    description = fields.get("description")
    content_type = fields.get("description_content_type")
    if content_type is None:
        out.add("twine-warning", "twine check: `long_description_content_type` missing. "
                "defaulting to `text/x-rst`.",
                "set readme / long_description_content_type in the project metadata")
    message = email.message.EmailMessage()
    message["content-type"] = content_type or "text/x-rst"
    kind, params = message.get_content_type(), dict(message["content-type"].params)
    if not description or description.rstrip() == "UNKNOWN":
        out.add("twine-warning", "twine check: `long_description` missing.",
                "set readme / long_description_content_type in the project metadata")
    elif kind not in ("text/plain", "text/markdown"):  # those always render
        stream = io.StringIO()
        if readme_renderer.rst.render(description, stream=stream, **params) is None:
            out.add("twine-render", "the long description has markup errors; the index will "
                    f"not render it (PyPI rejects the upload): "
                    f"{' '.join(stream.getvalue().split())[:300]}",
                    "fix the README markup; check with `twine check`")


CHECKS: dict[str, WheelCheck] = {
    "metadata": check_metadata,
    "record": check_record,
    "size": check_size,
    "contents": check_contents,
    "twine": check_twine,
}
