"""The JSON report's shape (``smoke.json``), shared by its writer (report), merge and the gate;
read back only through ``read``, which checks the schema version (auditwheel's ``show --json``
keeps a version the same way)."""


import json
from pathlib import Path
from typing import Any, cast

from typing_extensions import NotRequired, TypedDict

from harness.errors import InputError

#: 2: per cell ``run`` (what decides the verdict besides the checks), ``release.coverage``;
#: 3: per check its stable ``code`` (harness.checks.CheckCode)
SCHEMA_VERSION = 3


class CheckDoc(TypedDict):
    """One check of a cell."""

    name: str
    status: str  # harness.checks.CheckStatus values: pass, fail, error, timeout, skip, not run
    code: str  # harness.checks.CheckCode: what diagnoses key on
    detail: str
    seconds: float | None
    data: dict[str, Any]


class ArtifactDoc(TypedDict):
    """The wheel a cell installed, as hashed in the cell."""

    file: str
    sha256: str | None


class PickDoc(TypedDict):
    """pip's pick for a cell from the release set."""

    file: str | None  # None: no wheel fits
    sha256: str | None
    tag: str | None
    fallback: str
    excluded: str
    covered: bool


class RunDoc(TypedDict):
    """What decides a cell's verdict besides its checks (harness.verdict.RunFacts)."""

    infra_error: str | None
    forged: str | None
    probe_errors: list[str]
    timed_out: bool
    returncode: int | None
    seconds: float
    stderr: str
    fallback: str | None  # the cell is uncovered: what a user there gets instead
    cpu_problem: NotRequired[str | None]  # a floor cell's CPU had more than the level asked


class CellDoc(TypedDict):
    """One cell."""

    id: str
    kind: str
    verdict: str  # harness.verdict.Verdict values
    reason: str
    diagnosis: dict[str, Any] | None
    interpreter: dict[str, Any] | None
    environment: dict[str, str]
    libraries_mapped: dict[str, Any]
    seconds: float
    artifact: ArtifactDoc | None
    pick: PickDoc | None
    checks: list[CheckDoc]
    stderr_tail: str
    run: RunDoc
    emulated: NotRequired[dict[str, Any] | None]  # floor cells: the CPU, and what glibc saw


class WheelDoc(TypedDict):
    """The one wheel tested, or the release set as one identity."""

    file: str
    path: str
    sha256: str
    name: str
    version: str
    tags: list[str]


class ReleaseFileDoc(TypedDict):
    """One file of the release set."""

    file: str
    kind: str
    sha256: str
    tags: list[str]


class IgnoredDoc(TypedDict):
    """A file given but not part of the set, and why."""

    file: str
    reason: str


class ReleaseDoc(TypedDict):
    """The release set and its coverage policy."""

    distribution: str
    version: str
    uncovered: str  # release.uncovered: blocker or warning
    coverage: dict[str, str]  # coverage code -> level (harness.outcome.Coverage)
    files: list[ReleaseFileDoc]
    ignored: list[IgnoredDoc]


class ShardDoc(TypedDict):
    """One shard of a merged report."""

    shard: str
    run_id: str
    host: dict[str, str]
    seconds: float
    exit_code: int


class ReportDoc(TypedDict):
    """``smoke.json``."""

    schema_version: int
    run_id: str
    matrix: str
    host: dict[str, str]
    started: str
    seconds: float
    interrupted: bool
    exit_code: int
    wheel: WheelDoc
    release: ReleaseDoc
    summary: dict[str, int]
    selected: list[str]
    matrix_sha256: str
    shard: str
    all_cells: list[str]
    cells: list[CellDoc]
    shards: NotRequired[list[ShardDoc]]  # merged reports
    audit: NotRequired[dict[str, Any]]  # --prepublish
    decision: NotRequired[dict[str, Any]]  # --prepublish


_REQUIRED = tuple(k for k in ReportDoc.__required_keys__)


def read(path: Path) -> ReportDoc:
    """A JSON report from a file or a report directory; InputError (one line) when it is
    unreadable, not a report, or of another schema version."""
    file = path / "smoke.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{file}: cannot read it ({exc.strerror}); pass a report directory "
                         "holding smoke.json") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{file}: not a JSON report ({exc}); pass a report directory "
                         "holding smoke.json") from exc
    return checked(data, str(file))


def checked(data: Any, source: str) -> ReportDoc:
    """``data`` as a report of this schema version (top-level keys present), else an
    InputError naming ``source``."""
    if not isinstance(data, dict):
        raise InputError(f"{source}: not a smoke report (not a JSON object)")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputError(f"{source}: report schema version {version!r}, this harness reads "
                         f"{SCHEMA_VERSION}; rerun with this harness version")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise InputError(f"{source}: not a complete smoke report (no {', '.join(missing)}); "
                         "rerun with this harness version")
    return cast(ReportDoc, data)
