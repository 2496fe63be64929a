"""Observations -> check results: one small pure function per check, in one table.

The probe only reports what it saw (``observed`` events, one per step); each function here
turns one step's observation into a CheckResult.  A new check is one function and one
entry in ``JUDGES``; the user's declared checks all share ``declared``.
"""

from __future__ import annotations

import enum
import fnmatch
import json
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from harness import tags
from harness.matrix import Package
from harness.probe_native import is_library
from harness.release import Pick
from harness.wheel import Release, WheelInfo


class CheckStatus(enum.Enum):
    """One check's outcome in one cell (the value is what the reports say)."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"      # the harness or the matrix, not the wheel
    SKIP = "skip"        # cannot be checked on this system
    NOT_RUN = "not run"  # an earlier step made it impossible
    TIMEOUT = "timeout"


OK = frozenset({CheckStatus.PASS, CheckStatus.SKIP})

#: every check result's stable code: what the diagnosis and the reports key on (the detail
#: is prose for people and may change)
CheckCode = Literal[
    "tags-ok", "tags-missing", "tags-lie", "tags-unverified",
    "sterility-ok", "sterility-leak",
    "install-ok", "install-failed", "install-tag-refused", "install-uncovered",
    "install-staged-mismatch", "install-unidentified", "install-pick-mismatch",
    "install-dependencies",
    "import-ok", "import-raised", "import-extension-failed", "import-outside-site-packages",
    "import-unrecorded", "import-required-unavailable",
    "version-ok", "version-mismatch",
    "provenance-ok", "provenance-outside", "provenance-resolved-outside",
    "provenance-unobservable", "provenance-unsupported",
    "exit-ok", "exit-failed",
    "check-ok", "check-wrong", "check-raised", "check-matrix-error",
    "not-run", "step-timeout", "cell-timeout", "died-before-reporting", "cpu-fault",
]
CODES: frozenset[str] = frozenset(get_args(CheckCode))


def check_code(text: object) -> CheckCode:
    """A code read back from a report (ValueError for one this harness does not know)."""
    if text not in CODES:
        raise ValueError(f"unknown check code {text!r}")
    return cast(CheckCode, text)


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """One check in one cell."""

    name: str
    status: CheckStatus
    code: CheckCode
    detail: str = ""
    seconds: float | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Context:
    """What a judge may look at besides the observation: the wheel the cell installed (else
    the one pip would pick), the release set, pip's pick for the cell, the matrix, the cell."""

    wheel: WheelInfo
    package: Package
    facts: Mapping[str, Any]
    release: Release | None = None
    pick: Pick | None = None  # None: no facts, so no prediction


Observation = Mapping[str, Any]
Judge = Callable[[Observation, Context], CheckResult]


def _result(name: str, status: CheckStatus, code: CheckCode, detail: str, obs: Observation,
            **extra: Any) -> CheckResult:
    data = {k: v for k, v in obs.items() if k not in ("event", "step")}
    return CheckResult(name=name, status=status, code=code, detail=detail,
                       seconds=obs.get("seconds"),
                       data={**data, **extra})


def signal_name(returncode: int | None) -> str:
    """'signal SIGSEGV' or 'exit status 3'."""
    if returncode is not None and returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


# ---------------------------------------------------------------- tags (host only)


def tag_lies(wheel: WheelInfo) -> list[str]:
    """Platform tags the wheel does not live up to, per auditwheel."""
    audit = wheel.audit
    if audit is None or audit.error:
        return []
    actual = tags.promised_glibc(audit.policy)
    lies = []
    for platform in sorted({t.platform for t in wheel.tags}):
        promised = tags.promised_glibc(platform)
        if promised is None:
            continue
        if actual is None:
            lies.append(f"tagged {platform} but auditwheel finds only {audit.policy}: it needs "
                        f"{', '.join(audit.external) or 'libraries'} outside the manylinux "
                        "base system, not bundled")
        elif actual > promised:
            lies.append(f"tagged {platform} but it needs glibc {audit.glibc} "
                        f"(GLIBC_{audit.glibc} symbols)")
    return lies


def tags_check(obs: Observation, ctx: Context) -> CheckResult:
    """The release carries the tags the matrix requires (some wheel of the set has each: the
    promise is the release's, e.g. one cp39-abi3 wheel beside version-specific ones), and
    auditwheel confirms the tested wheel's platform tags; auditwheel failing is an ERROR."""
    wheel = ctx.wheel
    have = sorted(str(t) for t in wheel.tags)
    pool = ctx.release.wheels if ctx.release is not None else (wheel,)
    released = sorted({str(t) for w in pool for t in w.tags})
    missing = [p for p in ctx.package.wheel_tags if not fnmatch.filter(released, p)]
    data = {"wheel_tags": have, "required": list(ctx.package.wheel_tags), "missing": missing,
            "audit": None if wheel.audit is None else vars(wheel.audit)}
    where = (f"wheel is tagged {'.'.join(have)}" if len(pool) == 1 else
             f"no wheel of the release ({len(pool)} wheels) is tagged so")
    problems = ([f"{where} but must carry " + ", ".join(missing)]
                if missing else []) + tag_lies(wheel)
    if problems:
        return CheckResult(name="tags", status=CheckStatus.FAIL, detail="; ".join(problems),
                           code="tags-missing" if missing else "tags-lie", data=data,
                           seconds=0.0)
    if wheel.audit is not None and wheel.audit.error:
        return CheckResult(name="tags", status=CheckStatus.ERROR, code="tags-unverified",
                           data=data, seconds=0.0,
                           detail=f"auditwheel could not analyse the wheel, so its manylinux "
                                  f"tags are unverified: {wheel.audit.error}")
    return CheckResult(name="tags", status=CheckStatus.PASS, code="tags-ok",
                       detail=", ".join(have), data=data, seconds=0.0)


# ---------------------------------------------------------------- cell steps


def sterility_problems(obs: Observation) -> list[str]:
    """Why the environment is not provably clean, from the probe's sterility observation.

    The evidence is each platform's: Linux's linker cache and dlopen; Windows' two DLL search
    orders and PATH; macOS's dyld fallback path.  Files that only an absolute install name
    reaches (macOS ``absolute_only``) are reported, not held against the cell: provenance
    catches a load of them."""
    problems: list[str] = []
    kept = interpreter_kept(obs)
    for lib, ev in obs.get("evidence", {}).items():
        if lib in kept:  # Python itself loads it: the package's files are proven one by one
            continue
        found = ev.get("find_library")
        problems += [f"ctypes.util.find_library({lib!r}) = {hit!r}"
                     for hit in ([found] if isinstance(found, str) else found or [])]
        if ev.get("ldconfig"):
            problems.append(f"the linker cache lists {ev['ldconfig'][0].split(' => ')[-1]}")
        for hit in ev.get("dlopen", []):
            how = hit.get("how", "dlopen")
            problems.append(f"{how}({hit['soname']}) succeeded "
                            f"({', '.join(hit['paths']) or '?'})")
        problems += [f"{f} exists in a library search directory" for f in ev.get("files", [])]
        problems += [f"PATH holds {d}, which has lib{lib} or belongs to a package manager"
                     for d in ev.get("path_dirs", [])]
    if obs.get("preload"):
        problems.append(f"/etc/ld.so.preload preloads {' '.join(obs['preload'])}")
    problems += [f"environment variable {n} is set" for n in obs.get("env_set", [])]
    return problems


def interpreter_kept(obs: Observation) -> dict[str, list[str]]:
    """Declared libraries the cell's interpreter or its standard library loads (library ->
    the files it resolves): they stay loadable, for Python, not for the package."""
    needs = (obs.get("interpreter") or {}).get("needs") or {}
    return {str(lib): list(paths) for lib, paths in needs.items() if paths}


def sterility(obs: Observation, ctx: Context) -> CheckResult:
    """Nothing could find or load a hidden library, and no forbidden variable is set.  A
    library the interpreter itself needs is not hidden: provenance proves, file by file,
    that the package resolves its own copy."""
    problems = sterility_problems(obs)
    kept = interpreter_kept(obs)
    status = CheckStatus.FAIL if problems else CheckStatus.PASS
    note = "; ".join(f"lib{lib} stays visible: the interpreter needs {', '.join(paths)}"
                     for lib, paths in kept.items())
    detail = "; ".join(problems) if problems else note
    return _result("sterility", status, "sterility-leak" if problems else "sterility-ok",
                   detail, obs, problems=problems, kept=kept)


def marker_environment(facts: Mapping[str, Any]) -> dict[str, str]:
    """PEP 508 marker variables of the cell's interpreter, from its facts."""
    version = [str(v) for v in facts.get("version_info", [])] or ["0", "0", "0"]
    impl = str(facts.get("implementation", "cpython"))
    system = str(facts.get("system", "Linux"))
    return {"implementation_name": impl, "implementation_version": ".".join(version),
            "os_name": "nt" if system == "Windows" else "posix",
            "platform_machine": str(facts.get("machine", "")),
            "platform_python_implementation": {"cpython": "CPython", "pypy": "PyPy"}.get(
                impl, impl),
            "platform_system": system, "platform_release": "", "platform_version": "",
            "python_full_version": str(facts.get("version", ".".join(version))),
            "python_version": ".".join(version[:2]),
            "sys_platform": {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(
                system, system.lower()), "extra": ""}


def requirements_for(wheel: WheelInfo, facts: Mapping[str, Any]) -> list[str]:
    """The wheel's Requires-Dist that apply in this cell (markers evaluated, no extras)."""
    env = marker_environment(facts)
    wanted = []
    for line in wheel.requires_dist:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            wanted.append(line)  # unreadable: the installer will choke on it too
            continue
        if req.marker is None or req.marker.evaluate(env):
            wanted.append(str(req))
    return wanted


def _staged_problem(obs: Observation, ctx: Context) -> str | None:
    """Whether the cell saw exactly the set's wheels, byte for byte (sha256 each)."""
    staged = obs.get("staged")
    if staged is None or ctx.release is None:
        return None
    expected = {w.filename: w.sha256 for w in ctx.release.wheels}
    wrong = sorted(n for n in set(staged) | set(expected) if staged.get(n) != expected.get(n))
    if wrong:
        return (f"the cell saw other wheel files than the release set's ({', '.join(wrong)}: "
                "missing, extra or with another sha256)")
    return None


def _pick_problem(file: str, ctx: Context) -> str | None:
    """The installer's choice against pip's tag priority for this interpreter."""
    predicted = ctx.pick.wheel if ctx.pick is not None else None
    if ctx.pick is None or (predicted is not None and predicted.filename == file):
        return None
    rule = (f"pip's tag priority picks {predicted.filename} (tag {ctx.pick.tag})"
            if predicted is not None else "by pip's tag rules no wheel of the set fits")
    return (f"the cell's installer picked {file}, but {rule} for {tags.describe(ctx.facts)}: "
            "the cell did not test what pip users there get; the harness's tag rules and "
            "the installer disagree (report this)")


def _dependency_problem(obs: Observation, ctx: Context) -> str | None:
    """A Requires-Dist the cell could not satisfy: not the wheel's failure, the matrix's."""
    deps = obs.get("dependencies")
    if deps is not None:
        if deps.get("returncode") == 0:
            return None
        return (f"the dependencies {', '.join(deps.get('requirements', []))} could not be "
                "installed from package.dependencies_from: "
                + " ".join(str(deps.get("output", "")).split())[-400:])
    needed = requirements_for(ctx.wheel, ctx.facts)
    if not needed or ctx.package.dependencies_from is not None:
        return None
    return (f"{ctx.wheel.filename} requires {', '.join(needed)} (Requires-Dist) and cells "
            "install nothing from an index: set package.dependencies_from in the matrix to a "
            "directory of those wheels")


def install(obs: Observation, ctx: Context) -> CheckResult:
    """The installer, given every wheel of the set, installed the one pip's tag priority
    picks for this interpreter (proven in the cell: the installed files carry that wheel's
    RECORD hashes), pip's tag rule holds whatever it did, and its requirements are met."""
    staged = _staged_problem(obs, ctx)
    if staged:
        return _result("install", CheckStatus.ERROR, "install-staged-mismatch", staged, obs)
    rc = obs.get("returncode")
    if rc != 0:
        return _result("install", CheckStatus.FAIL, "install-failed",
                       str(obs.get("output", "")), obs)
    installed = obs.get("installed") or {}
    file = installed.get("file")
    if file is None:
        matches = list(obs.get("matches", []))
        return _result("install", CheckStatus.ERROR, "install-unidentified",
                       "could not tell which wheel of the set "
                       "the installer installed (" + (f"{len(matches)} staged wheels match the "
                       "installed files: " + ", ".join(matches) if matches else
                       "no staged wheel's RECORD matches the installed files") + ")", obs)
    wheel = ctx.wheel
    if ctx.facts and not tags.compatible(wheel.tags, ctx.facts):
        return _result("install", CheckStatus.FAIL, "install-tag-refused",
                       f"ERROR: {wheel.filename} is not a supported wheel on this platform "
                       f"({tags.describe(ctx.facts)}). (the installer accepted it; pip would "
                       "not)", obs, tag_refused=True)
    if problem := _pick_problem(file, ctx):
        return _result("install", CheckStatus.ERROR, "install-pick-mismatch", problem, obs)
    if problem := _dependency_problem(obs, ctx):
        return _result("install", CheckStatus.ERROR, "install-dependencies", problem, obs)
    return _result("install", CheckStatus.PASS, "install-ok",
                   f"{file} (sha256 {installed.get('sha256', '')[:16]}…), the wheel pip picks "
                   "here", obs)


def _inside(path: str, dirs: list[str]) -> bool:
    return any(path == d or path.startswith((d + "/", d + "\\")) for d in dirs)


def _optional_dependency(load: Mapping[str, Any], import_name: str) -> str | None:
    """The third-party module an extension lacks (numpy, say): not the wheel's failure."""
    exc = load.get("exception") or {}
    missing = exc.get("missing")
    if missing is None or missing == load["module"]:
        return None
    ours = missing == import_name or missing.startswith(import_name + ".")
    return None if ours else str(missing)


def _matches(module: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(module, p) for p in patterns)


def _optional_part(cause: Mapping[str, Any]) -> str:
    """'this Python's tkinter does not import (ImportError: ...; libtk8.6.so not found)'."""
    libs = cause.get("missing_libraries") or []
    found = f"; {', '.join(libs)} not found" if libs else ""
    return (f"this Python's {cause.get('module')} does not import "
            f"({cause.get('reason', '?')}{found})")


def import_(obs: Observation, ctx: Context) -> CheckResult:
    """Imported from the installed wheel (site-packages, listed in RECORD), and every
    extension module the wheel ships loads (a fallback must not hide a broken one).  One
    that fails only because an optional part of this Python is absent (tkinter without
    libtk) is skipped-optional, unless the matrix requires it (then ERROR: not testable
    here); the matrix may skip extensions outright."""
    name = ctx.package.import_name
    exc = obs.get("exception")
    if exc:
        return _result("import", CheckStatus.FAIL, "import-raised",
                       f"{exc['type']}: {exc['message']}", obs)
    site = list(obs.get("site_packages", []))
    files = list(dict.fromkeys(obs.get("modules", {}).values()))
    recorded = set(obs.get("in_record", []))
    loads = list(obs.get("extensions", []))
    optional = {ld["module"]: dep for ld in loads
                if (dep := _optional_dependency(ld, name))}
    part_missing = {ld["module"]: ld["optional"] for ld in loads
                    if ld.get("exception") and ld.get("optional")}
    required = {m: c for m, c in part_missing.items()
                if _matches(m, ctx.package.require_extensions)}
    skipped = {m: c for m, c in part_missing.items() if m not in required}
    broken = [ld for ld in loads if ld.get("exception") and ld["module"] not in optional
              and ld["module"] not in part_missing]
    outside = [f for f in files if not _inside(f, site)]
    unrecorded = [f for f in files if f not in recorded]
    notes = [f"{ext} needs {dep}, which is not installed" for ext, dep in optional.items()]
    notes += [f"{ext} skipped-optional: {_optional_part(c)}" for ext, c in skipped.items()]
    notes += [f"{ld['module']} not imported: the matrix skips it" for ld in loads
              if ld.get("skipped") == "matrix"]
    extra = {"notes": notes, "skipped_optional": skipped}
    if broken:
        ext, failure = broken[0]["module"], broken[0]["exception"]
        return _result("import", CheckStatus.FAIL, "import-extension-failed",
                       f"{name} imported, but its extension {ext} "
                       f"does not load ({failure['type']}: {failure['message']})", obs,
                       exception=failure, **extra)
    if outside:
        return _result("import", CheckStatus.FAIL, "import-outside-site-packages",
                       "imported from outside site-packages "
                       f"({', '.join(site)}): {', '.join(outside)}", obs, **extra)
    if unrecorded:
        return _result("import", CheckStatus.FAIL, "import-unrecorded",
                       "module files not listed in the installed "
                       "wheel's RECORD: " + ", ".join(unrecorded), obs, **extra)
    if required:
        ext, cause = next(iter(required.items()))
        return _result("import", CheckStatus.ERROR, "import-required-unavailable",
                       f"the matrix requires {ext}, which cannot "
                       f"load in this cell: {_optional_part(cause)}; run it on a Python that "
                       f"has {cause.get('module')}, or drop it from package.extensions.require",
                       obs, **extra)
    return _result("import", CheckStatus.PASS, "import-ok", f"from {obs.get('file')}" + (
        f" ({len(skipped)} extension(s) skipped-optional)" if skipped else ""), obs, **extra)


def same_version(a: object, b: object) -> bool:
    """PEP 440 equality (1.0.0-rc.1 == 1.0.0rc1); plain equality for non-versions."""
    try:
        return Version(str(a)) == Version(str(b)) if isinstance(a, str) else a == b
    except InvalidVersion:
        return a == b


def version(obs: Observation, ctx: Context) -> CheckResult:
    """The installed metadata and every declared version source equal the wheel's version."""
    expected = ctx.wheel.metadata_version
    values = obs.get("values", {})
    wrong = {k: v for k, v in values.items() if not same_version(v, expected)}
    if wrong:
        return _result("version", CheckStatus.FAIL, "version-mismatch",
                       f"expected {expected} (wheel) but "
                       + ", ".join(f"{k} = {v!r}" for k, v in wrong.items()), obs,
                       expected=expected)
    return _result("version", CheckStatus.PASS, "version-ok", expected, obs,
                   expected=expected)


def bits(value: object) -> int:
    """The most bits any integer in ``value`` needs."""
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return abs(value).bit_length()
    if isinstance(value, list):
        return max([bits(v) for v in value] or [0])
    return 0


def compare(got: object, expected: object) -> tuple[bool, str, dict[str, object]]:
    """Equal?  Else what differs: the first wrong term and the magnitudes around it."""
    if got == expected:
        return True, "", {}
    if isinstance(got, list) and isinstance(expected, list):
        for i, (a, b) in enumerate(zip(got, expected, strict=False)):
            if a != b:
                return False, f"term {i}: got {a!r}, expected {b!r}", {
                    "first_bad_index": i, "got": repr(a)[:200], "expected": repr(b)[:200],
                    "bits_at_bad": bits(b), "max_bits_before_bad": bits(expected[:i])}
        return False, f"got {len(got)} terms, expected {len(expected)}", {
            "got_length": len(got), "expected_length": len(expected)}
    return False, f"got {repr(got)[:200]}, expected {repr(expected)[:200]}", {}


def _type_only(got: object, expected: object) -> str | None:
    """'2' (str) against 2 (int): equal once both are strings, but of other types (first
    differing term of a list); None otherwise."""
    if isinstance(got, list) and isinstance(expected, list) and len(got) == len(expected):
        bad = [(a, b) for a, b in zip(got, expected, strict=True) if a != b]
        return _type_only(*bad[0]) if bad and all(
            _type_only(a, b) for a, b in bad) else None
    if type(got) is not type(expected) and str(got) == str(expected):
        return (f"{got!r} ({type(got).__name__}), expected {expected!r} "
                f"({type(expected).__name__})")
    return None


def declared(obs: Observation, ctx: Context) -> CheckResult:
    """A declared check: its expression's value equals the expected one.  What the wheel
    raised is a FAIL; a mistake in the matrix (unknown name, a failing expected value) is
    an ERROR."""
    name = str(obs["step"])
    decl = next((c for c in ctx.package.checks if c.name == name), None)
    expr = decl.expr if decl is not None else "?"
    meta = {"seconds": obs.get("seconds")}
    exc = obs.get("exception")
    if exc:
        own = bool(obs.get("matrix_name_error"))
        whose = "the matrix's expression " if own else ""
        return CheckResult(name=name, status=CheckStatus.ERROR if own else CheckStatus.FAIL,
                           code="check-matrix-error" if own else "check-raised",
                           detail=f"{whose}{expr} raised {exc['type']}: {exc['message']}",
                           seconds=obs.get("seconds"), data={**meta, "exception": exc})
    literal = decl is not None and decl.expected_expr is None  # the matrix's, not the cell's
    bad = obs.get("expected_exception")
    if not literal and (bad or "expected" not in obs):
        bad = bad or {"type": "?", "message": "no expected value observed"}
        return CheckResult(name=name, status=CheckStatus.ERROR, code="check-matrix-error",
                           seconds=obs.get("seconds"),
                           detail=f"the matrix's expected value failed: {bad['type']}: "
                                  f"{bad['message']}", data={**meta, "exception": bad})
    got = obs.get("got")
    expected = json.loads(json.dumps(decl.expected, default=repr)) if (
        literal and decl is not None) else obs["expected"]
    ok, detail, diff = compare(got, expected)
    typed = _type_only(got, expected)
    if not ok and typed:
        return CheckResult(name=name, status=CheckStatus.ERROR, code="check-matrix-error",
                           seconds=obs.get("seconds"),
                           detail=f"{expr} gave {typed}: the values differ only in type; "
                                  "write the expected value in the type the expression "
                                  "returns (or convert it in the expression)",
                           data={**meta, **diff})
    width = bits(expected)
    summary = (f"{len(expected)} terms, up to 2^{width}" if isinstance(expected, list)
               else repr(expected)[:80])
    return CheckResult(name=name, status=CheckStatus.PASS if ok else CheckStatus.FAIL,
                       code="check-ok" if ok else "check-wrong",
                       detail=summary if ok else detail, seconds=obs.get("seconds"),
                       data={**meta, "expected_bits": width, **diff})


def _base(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]


@dataclass(frozen=True, kw_only=True)
class Resolution:
    """What one NEEDED entry of one of the package's files was resolved to, in a cell."""

    file: str        # the package's ELF file
    needed: str      # the name it NEEDs
    path: str | None  # the file the loader used for it (None: not seen)
    how: str         # "loaded" (the loader log says so) or "reused" (already loaded by name)
    inside: bool     # the path lies inside the installed wheel


def resolutions(obs: Observation) -> list[Resolution]:
    """Each NEEDED entry of each ELF file of the package the cell loaded, resolved the way
    the loader did: the file the loader log says it loaded for that request, else the first
    object already loaded under that name (SONAME or file name), which the loader reuses."""
    mapped = list(obs.get("mapped") or [])
    log = list(obs.get("loader_log", []))
    order = log + [p for p in mapped if p not in log]
    sonames, recorded = obs.get("sonames", {}), set(obs.get("in_record", []))
    logged = {(by, name): path for by, name, path in obs.get("loads", [])}
    out = []
    for elf, dyn in sorted((obs.get("package_elf") or {}).items()):
        for name in dyn.get("needed", []):
            path, how = logged.get((elf, name)), "loaded"
            if path is None:
                how = "reused"
                path = next((p for p in order if _base(p) == name or sonames.get(p) == name),
                            None)
            out.append(Resolution(file=elf, needed=name, path=path, how=how,
                                  inside=path is not None and path in recorded))
    return out


def _bundled_name(name: str, obs: Observation, ctx: Context) -> bool:
    """A NEEDED name the wheel carries a file for, or one of the declared libraries."""
    carried = {_base(p) for p in ctx.wheel.files} | {
        n for p, n in obs.get("sonames", {}).items() if p in set(obs.get("in_record", []))}
    return name in carried or any(is_library(name, lib) for lib in ctx.package.bundled_libraries)


def provenance(obs: Observation, ctx: Context) -> CheckResult:
    """Proved per file: every ELF file of the package the cell loaded resolved each bundled
    (or declared) library it NEEDs to a file inside the installed wheel; and no copy of a
    hidden declared library was loaded from outside it.  A declared library the interpreter
    itself needs (CPython's own _lzma and the system's liblzma) may be mapped beside the
    wheel's copy: only what the package's files resolve counts."""
    if obs.get("mapped") is None and obs.get("error"):
        return _result("provenance", CheckStatus.ERROR, "provenance-unobservable",
                       "cannot list the modules the process "
                       f"loaded: {obs['error']}", obs)
    if obs.get("mapped") is None:
        return _result("provenance", CheckStatus.SKIP, "provenance-unsupported",
                       "no /proc/self/maps on this system", obs)
    mapped = list(obs["mapped"])
    seen = mapped + [p for p in obs.get("loader_log", []) if p not in mapped]
    sonames, recorded = obs.get("sonames", {}), set(obs.get("in_record", []))
    kept = set(obs.get("interpreter_needs") or {})
    found = {lib: [p for p in seen if is_library(p, lib) or is_library(sonames.get(p, ""), lib)]
             for lib in ctx.package.bundled_libraries}
    resolved = [r for r in resolutions(obs) if _bundled_name(r.needed, obs, ctx)]
    data = {"libraries": found, "kept": sorted(kept),
            "resolutions": [vars(r) for r in resolved]}
    wrong = [r for r in resolved if r.path is not None and not r.inside]
    if wrong:
        return _result("provenance", CheckStatus.FAIL, "provenance-resolved-outside", "; ".join(
            f"{_base(r.file)} NEEDs {r.needed}, resolved to {r.path}, outside the wheel"
            for r in wrong), obs, **data)
    outside = [p for lib, hits in found.items() if lib not in kept
               for p in hits if p not in recorded]
    if outside:
        return _result("provenance", CheckStatus.FAIL, "provenance-outside",
                       "loaded from outside the wheel: " + ", ".join(outside), obs, **data)
    proven = [f"{_base(r.file)} -> {r.path}" for r in resolved if r.path]
    if proven:
        files = len({r.file for r in resolved})
        return _result("provenance", CheckStatus.PASS, "provenance-ok",
                       f"{files} file(s) of the package "
                       f"resolved every bundled library inside the wheel: "
                       + ", ".join(proven), obs, **data)
    hits = [p for lib, paths in found.items() if lib not in kept for p in paths]
    libs = ", ".join("lib" + lib for lib in ctx.package.bundled_libraries)
    return _result("provenance", CheckStatus.PASS, "provenance-ok", ", ".join(hits) if hits else
                   f"no {libs} mapped: the package loaded none (linked statically, or no "
                   "native code)", obs, **data)


def exit_(obs: Observation, ctx: Context) -> CheckResult:
    """The package's Python process exited cleanly after the checks."""
    rc = obs.get("returncode")
    tail = str(obs.get("stderr", "")).strip()[-800:]
    data = {"returncode": rc, "process_seconds": obs.get("seconds")}
    if rc == 0:
        return CheckResult(name="exit", status=CheckStatus.PASS, code="exit-ok",
                           detail="exit status 0",
                           data=data)
    return CheckResult(name="exit", status=CheckStatus.FAIL, code="exit-failed", data=data,
                       detail=f"the Python process ended with {signal_name(rc)} after the "
                              "checks (atexit handlers, finalisers)" + (f": {tail}" if tail
                                                                         else ""))


JUDGES: dict[str, Judge] = {
    "tags": tags_check,
    "sterility": sterility,
    "install": install,
    "import": import_,
    "version": version,
    "provenance": provenance,
    "exit": exit_,
}


def judge_step(name: str, obs: Observation, ctx: Context) -> CheckResult:
    """The result of the check ``name`` from its observation (declared checks by default)."""
    return JUDGES.get(name, declared)(obs, ctx)
