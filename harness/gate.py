"""The pre-publish gate: may exactly these files go to the package index?  One go / no-go.

Inputs: the release set, the static audit (harness.audit), the JSON report of the cells that
ran on the release's files, and the release policy (matrix.yaml ``release``). Blockers:

- the audit's blockers and errors (a check that could not run blocks: unjudged is not good);
- every cell that did not PASS (FAIL, TIMEOUT; INVALID and ERROR as errors), naming the file
  that cell tested and the diagnosis' advice as the fix; a tested file whose sha256 is not the
  audited file's; a cell no wheel fits (``uncovered``, by policy);
- the cross-check of the two halves: a library an ELF of the wheel NEEDs (one it bundles, or
  one the matrix says must be bundled) that no cell mapped, a bundled library mapped from
  outside the wheel, a bundled library no cell used;
- promise vs coverage: what each wheel's tags promise (Pythons, libc, architecture) against
  what the cells that installed it covered; a wheel no cell tested.

Cells are read in the JSON report's shape (a run, a merged report): a cell's file is its
``artifact`` ({file, sha256}), else the report's top-level ``wheel``; ``pick.covered`` false
(or the verdict UNCOVERED) marks a cell no wheel fits.
"""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import PurePosixPath
from typing import Any, Literal

from packaging.tags import Tag

from harness import outcome
from harness import tags as tags_mod
from harness.audit import AuditOptions, AuditReport, Finding, WheelFacts, audit_release
from harness.errors import EXIT_FAIL, EXIT_INPUT, EXIT_PASS
from harness.policy import ReleasePolicy, Severity
from harness.probe_native import is_library, library_stem
from harness.release import Dist, ReleaseSet
from harness.report_schema import CellDoc, ReportDoc
from harness.wheel import file_sha256

Source = Literal["audit", "cell", "cross-check", "coverage"]
NEWEST_CPYTHON = (3, 14)  # newer minors of an open-ended promise are "and later"



@dataclass(frozen=True, kw_only=True)
class Issue:
    """One reason the release may not (blocker, error) or should be looked at (warning)."""

    source: Source
    code: str
    severity: Severity
    file: str  # the release file it is about; "(release)" for the set as a whole
    message: str
    fix: str
    cells: tuple[str, ...] = ()  # the cells it was seen in


@dataclass(frozen=True, kw_only=True)
class Tested:
    """Which file one cell installed (None: no wheel fits the cell)."""

    cell: str
    file: str | None
    sha256: str
    verdict: str


@dataclass(frozen=True, kw_only=True)
class Coverage:
    """What one wheel's tags promise, and what the cells that installed it covered."""

    file: str
    promises: tuple[str, ...]  # "CPython >= 3.9 (abi3)", "glibc >= 2.17", "x86_64"
    covered: tuple[str, ...]  # "CPython 3.9, 3.11", "glibc 2.31-2.36"
    untested: tuple[str, ...]  # "CPython 3.10, 3.12, 3.13 and later", "glibc 2.17-2.30"
    cells: tuple[str, ...]
    passed: int


@dataclass(frozen=True, kw_only=True)
class Decision:
    """Go / no-go for one release, every blocker with its fix and the file it is about."""

    go: bool
    reason: str
    blockers: tuple[Issue, ...]  # severity blocker or error
    warnings: tuple[Issue, ...]
    coverage: tuple[Coverage, ...]
    tested: tuple[Tested, ...]
    policy_changes: tuple[str, ...]
    audit_seconds: float

    @property
    def exit_code(self) -> int:
        """0 go; 1 no-go; 2 when nothing but unjudged checks (errors) stand in the way."""
        if self.go:
            return EXIT_PASS
        return EXIT_FAIL if any(b.severity == "blocker" for b in self.blockers) else EXIT_INPUT


# --- the decision -----------------------------------------------------------------------------


def decide(release: ReleaseSet, audit: AuditReport, report: ReportDoc,
           policy: ReleasePolicy, *, bundled_libraries: Sequence[str] = (),
           matrix_cells: Sequence[str] = (),
           runnable: Mapping[str, frozenset[tuple[int, int]]] | None = None) -> Decision:
    """Go / no-go from the audit, the JSON report of the cells and the policy; a run of only
    some of ``matrix_cells`` (--select) says so. ``runnable``: per architecture, the CPython
    versions a cell of it could have here (a wheel one of them fits but no cell tested is
    ``wheel-untested-runnable``)."""
    cells = list(report["cells"])
    only = report["wheel"]["file"] if len(release.wheels) == 1 else None
    tested = tuple(tested_file(c, only) for c in cells)
    issues = [_from_finding(f) for f in audit.findings]
    issues += _cell_issues(release, audit, cells, tested, policy)
    facts = {name: w for name, w in audit.wheels.items()}
    for wheel in release.wheels:
        if wheel.filename in facts:
            mine = [c for c, t in zip(cells, tested, strict=True) if t.file == wheel.filename]
            issues += cross_check(facts[wheel.filename], mine, policy, bundled_libraries)
    coverage = tuple(promise_vs_coverage(w, cells, tested) for w in release.wheels)
    by_name = {w.filename: w for w in release.wheels}
    for cov in coverage:
        if not cov.cells:
            issues += _untested(policy, by_name[cov.file], cov, runnable)
    if report["interrupted"]:
        issues.append(Issue(source="cell", code="interrupted", severity="error",
                            file="(release)", message="the run was interrupted: not every "
                            "cell ran", fix="run the gate again to the end"))
    skipped = [c for c in matrix_cells if c not in {cell["id"] for cell in cells}]
    if cells and skipped:
        issues += _graded(policy, "cell", "partial-matrix", "(release)",
                          f"only {len(cells)} of the matrix's {len(matrix_cells)} cells "
                          f"ran (--select): {', '.join(skipped)} not proven",
                          "run the gate on the whole matrix before uploading")
    if not cells:
        issues.append(Issue(source="cell", code="no-cells", severity="error", file="(release)",
                            message="no cell ran: nothing was proven to install and work",
                            fix="select at least one cell (python -m harness --list)"))
    issues = grouped(issues)
    blockers = tuple(i for i in issues if i.severity in ("blocker", "error"))
    warnings = tuple(i for i in issues if i.severity == "warning")
    go = not blockers
    ran = (f"{len(cells)} of {len(matrix_cells)} cells" if skipped and cells
           else f"{len(cells)} cells")
    reason = (f"{len(release.files)} files, {ran}, audit {audit.seconds:.1f} s: "
              + (f"no blocker, {len(warnings)} warning{'s' * (len(warnings) != 1)}" if go else
                 f"{len(blockers)} blocker{'s' * (len(blockers) != 1)}: "
                 + ", ".join(dict.fromkeys(b.code for b in blockers))))
    return Decision(go=go, reason=reason, blockers=blockers, warnings=warnings,
                    coverage=coverage, tested=tested, policy_changes=tuple(policy.changes()),
                    audit_seconds=audit.seconds)


def _untested(policy: ReleasePolicy, wheel: Dist, cov: Coverage,
              runnable: Mapping[str, frozenset[tuple[int, int]]] | None) -> list[Issue]:
    """A wheel no cell installed: ``wheel-untested-runnable`` when a cell that fits it could
    have run here (its architecture's, natively or emulated), else ``wheel-untested``."""
    fits = could_run(wheel, runnable or {})
    if fits:
        return _graded(policy, "coverage", "wheel-untested-runnable", cov.file,
                       f"no cell installed this wheel although {fits} could have run it: it "
                       f"ships unproven (promises {'; '.join(cov.promises)})",
                       "run the whole matrix (emulated cells for the release's other "
                       "architectures are added unless the matrix says follow_release: "
                       "false), or add such a cell (environments.container with arch:)")
    return _graded(policy, "coverage", "wheel-untested", cov.file,
                   "no cell installed this wheel: it ships unproven (promises "
                   f"{'; '.join(cov.promises)})",
                   "add a cell this wheel is the pick for (matrix.yaml environments); "
                   "nothing says the wheel is broken, it is only unproven")


def could_run(wheel: Dist, runnable: Mapping[str, frozenset[tuple[int, int]]]) -> str | None:
    """A cell here that fits ``wheel`` (glibc Linux, its architecture, a CPython its tags
    accept), in words ("a cell (aarch64, CPython 3.9)"); None when there is none."""
    pythons = _python_promises(wheel.tags)
    for tag in sorted(wheel.tags, key=str):
        if not tag.platform.startswith(("manylinux", "linux_")):
            continue
        arch = tags_mod.linux_arch(tag.platform) or ""
        for version in sorted(runnable.get(arch, ())):
            if any(_accepts(p, version) for p in pythons):
                return f"a cell ({arch}, CPython {_dotted(version)})"
    return None


def _accepts(promise: tuple[str, tuple[int, int], bool], version: tuple[int, int]) -> bool:
    impl, floor, open_ended = promise
    if impl == "PyPy":
        return False
    return (version >= floor and version[0] == floor[0]) if open_ended else version == floor


_LIBRARY = re.compile(r"\blib[\w+.-]*?\.(so|dylib|dll)[\w.]*", re.IGNORECASE)


def _subject(issue: Issue) -> str:
    """What one of several findings of the same cause is about: its cell, else the file the
    message starts with (an extension's path)."""
    if issue.source == "cell" and issue.cells:
        return ", ".join(issue.cells)
    return issue.message.split(" ", 1)[0]


def grouped(issues: Sequence[Issue]) -> list[Issue]:
    """One finding per cause: issues of one (code, library, file) with the same fix become one,
    listing every cell and extension it was seen in."""
    groups: dict[tuple[str, ...], list[Issue]] = {}
    for issue in issues:
        about = issue.message.split(" ", 1)  # the subject (an extension's path) aside
        library = _LIBRARY.search(about[-1])
        key = (issue.source, issue.code, issue.severity, issue.file, issue.fix,
               library.group(0) if library else "")
        groups.setdefault(key, []).append(issue)
    out = []
    for same in groups.values():
        first = same[0]
        if len(same) == 1:
            out.append(first)
            continue
        cells = tuple(dict.fromkeys(c for i in same for c in i.cells))
        if first.source == "cell":
            detail = first.message.split(": ", 1)[-1] if first.cells else first.message
            message = f"{', '.join(cells)}: {detail}"
        else:
            others = list(dict.fromkeys(_subject(i) for i in same[1:]))
            message = (f"{first.message} (the same in {len(others)} more: "
                       f"{', '.join(others[:6])}{', …' if len(others) > 6 else ''})")
        out.append(replace(first, message=message, cells=cells))
    return out


def _graded(policy: ReleasePolicy, source: Source, code: str, file: str, message: str,
            fix: str, cells: tuple[str, ...] = ()) -> list[Issue]:
    """An issue whose weight the policy decides; none when the policy ignores its code."""
    severity = policy.severity(code)
    return [] if severity is None else [Issue(source=source, code=code, severity=severity,
                                              file=file, message=message, fix=fix, cells=cells)]


def _from_finding(finding: Finding) -> Issue:
    return Issue(source="audit", code=finding.code, severity=finding.severity,
                 file=finding.file, message=finding.message, fix=finding.fix)


def tested_file(cell: CellDoc, only_wheel: str | None) -> Tested:
    """The file a report cell is about (harness.outcome.tested_file) and its sha256 as the
    cell hashed it (else as pip's pick names it); file None: no wheel fits the cell."""
    pick, artifact = cell["pick"], cell["artifact"]
    file = outcome.tested_file(verdict=cell["verdict"],
                               artifact=artifact["file"] if artifact else None,
                               pick=pick["file"] if pick else None,
                               pick_covered=pick["covered"] if pick else None,
                               only_wheel=only_wheel)
    sha = next((d["sha256"] for d in (artifact, pick) if d and d["file"] == file), None)
    return Tested(cell=cell["id"], file=file, sha256=sha or "", verdict=cell["verdict"])


def _release_sha256(dist: Dist, audit: AuditReport) -> str:
    facts = audit.wheels.get(dist.filename)
    if facts is not None:
        return facts.sha256
    return file_sha256(dist.path)


def _cell_issues(release: ReleaseSet, audit: AuditReport, cells: Sequence[CellDoc],
                 tested: Sequence[Tested], policy: ReleasePolicy) -> list[Issue]:
    """Cells that did not pass, cells no wheel fits, cells that tested other bytes."""
    by_name = {d.filename: d for d in release.wheels}
    hashes: dict[str, str] = {}
    issues: list[Issue] = []
    for cell, t in zip(cells, tested, strict=True):
        pick = cell["pick"]
        if outcome.uncovered(t.verdict, pick["covered"] if pick else None):
            issues += _coverage_issue(policy, cell)
            continue
        if t.file is not None:
            issues += _bytes_issues(release, audit, t, by_name, hashes)
        meaning = outcome.VERDICTS[t.verdict].gate
        if meaning is not None:
            diagnosis = cell["diagnosis"]
            fix = (f"{diagnosis['title']}: {diagnosis['advice']}" if diagnosis
                   else meaning.fix)
            issues.append(Issue(source="cell", code=meaning.code, severity=meaning.severity,
                                file=t.file or "(release)", cells=(t.cell,),
                                message=f"{t.cell}: {t.verdict}: {cell['reason']}", fix=fix))
    return issues


def _coverage_issue(policy: ReleasePolicy, cell: CellDoc) -> list[Issue]:
    """A cell no wheel fits, graded by its coverage code (harness.outcome)."""
    pick = cell["pick"]
    excluded = bool(pick and pick["excluded"])
    code = outcome.coverage_code(excluded)
    if excluded and pick is not None:
        return _graded(policy, "cell", code, "(release)", f"{cell['id']}: {pick['fallback']}",
                       "drop the cell from matrix.yaml, or widen Requires-Python and build a "
                       "wheel for it", (cell["id"],))
    fallback = (pick["fallback"] if pick else "") or cell["reason"]
    return _graded(policy, "cell", code, "(release)",
                   f"no wheel of the release fits {cell['id']}: {fallback}",
                   "build and upload a wheel for this platform, or drop the cell from "
                   "matrix.yaml (release.uncovered: warning accepts it)", (cell["id"],))


def _bytes_issues(release: ReleaseSet, audit: AuditReport, t: Tested,
                  by_name: Mapping[str, Dist], hashes: dict[str, str]) -> list[Issue]:
    """A cell that tested a file outside the release, or other bytes than the audited."""
    assert t.file is not None
    dist = by_name.get(t.file)
    if dist is None:
        return [Issue(source="cell", code="tested-outside-release", severity="error",
                      file=t.file, cells=(t.cell,),
                      message=f"{t.cell} tested {t.file}, which is not a file of the release "
                      f"{release.distribution} {release.version}",
                      fix="run the cells on the release's own files")]
    if dist.filename not in hashes:
        hashes[dist.filename] = _release_sha256(dist, audit)
    if t.sha256 and t.sha256 != hashes[dist.filename]:
        return [Issue(source="cell", code="tested-other-bytes", severity="blocker",
                      file=t.file, cells=(t.cell,),
                      message=f"{t.cell} installed sha256 {t.sha256[:16]}…, the audited file "
                      f"is {hashes[dist.filename][:16]}…: not the same bytes",
                      fix="do not rebuild or replace files during the gate; run it again on "
                      "the final files")]
    return []


# --- the cells against the audit ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Seen:
    """What one cell's processes mapped or loaded (the provenance observation)."""

    cell: str
    paths: tuple[str, ...]
    sonames: Mapping[str, str]
    in_wheel: frozenset[str]
    #: per file of the package: what each NEEDED name resolved to (None: not observed, an
    #: older probe or a system without the loader's log)
    resolutions: tuple[Mapping[str, Any], ...] | None = None

    def shadowing(self, name: str) -> list[str]:
        """Where a file of the package resolved the bundled ``name`` outside the wheel (per
        file, proven); without per-file facts, any copy of that library outside it."""
        if self.resolutions is not None:
            return [f"{PurePosixPath(str(r['file'])).name} -> {r['path']}"
                    for r in self.resolutions if r.get("path") and not r.get("inside")
                    and library_stem(str(r.get("needed", ""))) == library_stem(name)]
        return [p for p in self.paths if p not in self.in_wheel
                and library_stem(p) == library_stem(name) and ".so" in PurePosixPath(p).name]

    def names(self) -> set[str]:
        """Every file name and SONAME mapped."""
        return {PurePosixPath(p).name for p in self.paths} | set(self.sonames.values())

    def has_wheel_file(self, wheel_path: str) -> bool:
        """Whether the installed copy of this file of the wheel was mapped."""
        rel = re.sub(r"^[^/]+\.data/[^/]+/", "", wheel_path)
        return any(p.endswith("/" + rel) and p in self.in_wheel for p in self.paths)


def observation(cell: Mapping[str, Any]) -> _Seen | None:
    """What a cell saw mapped, when it imported the package and could observe (else None)."""
    checks = {c.get("name"): c for c in cell.get("checks", [])}
    prov = checks.get("provenance") or {}
    data = prov.get("data") or {}
    if (checks.get("import") or {}).get("status") != "pass" or data.get("mapped") is None:
        return None
    paths = [*data["mapped"], *[p for p in data.get("loader_log", []) if p not in
                                data["mapped"]]]
    res = data.get("resolutions")
    return _Seen(cell=cell["id"], paths=tuple(paths), sonames=data.get("sonames") or {},
                 in_wheel=frozenset(data.get("in_record") or ()),
                 resolutions=tuple(res) if isinstance(res, list) and "package_elf" in data
                 and data.get("platform", "linux") == "linux" else None)


def cross_check(facts: WheelFacts, cells: Sequence[Mapping[str, Any]], policy: ReleasePolicy,
                bundled_libraries: Sequence[str] = ()) -> list[Issue]:
    """The audit's NEEDED and bundled libraries of one wheel against what the cells that
    installed it saw mapped. Only cells that imported it and observed count."""
    seen = [s for c in cells if (s := observation(c)) is not None]
    if not seen:
        return []
    issues: list[Issue] = []
    bundled = {PurePosixPath(p).name: p for p in facts.bundled}
    for elf, needed in facts.needed.items():
        loaded_in = [s for s in seen if s.has_wheel_file(elf)]
        for name in needed:
            ours = name in bundled or any(is_library(name, lib) for lib in bundled_libraries)
            if not ours or not loaded_in:
                continue
            if not any(name in s.names() for s in loaded_in):
                issues += _graded(
                    policy, "cross-check", "needed-never-mapped", facts.file,
                    f"{elf} NEEDs {name} (the audit's reading), but no cell that loaded it "
                    f"mapped a file of that name: the loader found it under another name, or "
                    "the cells did not see what the package loads",
                    "compare `readelf -d` of the extension with the cells' libraries_mapped; a "
                    "statically linked copy must not be NEEDED", tuple(s.cell for s in
                                                                       loaded_in))
    needed_anywhere = {n for names in facts.needed.values() for n in names}
    for name, path in sorted(bundled.items()):
        outside = sorted({p for s in seen for p in s.shadowing(name)})
        if outside:
            issues += _graded(
                policy, "cross-check", "bundled-shadowed", facts.file,
                f"the wheel bundles {path}, yet in the cells {', '.join(outside[:3])} "
                "(outside the wheel): the package uses another copy, not the bundled one",
                "repair the wheel so NEEDED names the bundled copy (`auditwheel repair`)",
                tuple(s.cell for s in seen if s.shadowing(name)))
        elif not any(s.has_wheel_file(path) for s in seen) and name not in needed_anywhere:
            issues += _graded(
                policy, "cross-check", "bundled-never-mapped", facts.file,
                f"{path} is bundled, but no cell mapped it and nothing in the wheel NEEDs it: "
                "dead weight, or a library the package meant to use",
                "drop it, or make the extension NEED it", tuple(s.cell for s in seen))
    return issues


# --- promise vs coverage ------------------------------------------------------------------------


FREE_THREADED = "free-threaded CPython"


def _python_promises(wheel_tags: Iterable[Tag]) -> list[tuple[str, tuple[int, int], bool]]:
    """(implementation, minimum or exact version, open-ended) per interpreter tag."""
    out = []
    for tag in wheel_tags:
        m = re.match(r"^(cp|pp|py)(\d)(\d*)$", tag.interpreter)
        if not m:
            continue
        impl = {"cp": "CPython", "pp": "PyPy", "py": "Python"}[m[1]]
        if impl == "CPython" and re.fullmatch(r"cp\d+t", tag.abi):
            impl = FREE_THREADED
        version = (int(m[2]), int(m[3]) if m[3] else 0)
        open_ended = tag.abi == "abi3" or m[1] == "py"
        out.append((impl, version, open_ended))
    return sorted(set(out))


def _python_words(promise: tuple[str, tuple[int, int], bool]) -> str:
    impl, (major, minor), open_ended = promise
    if impl == FREE_THREADED:
        return f"{impl} {major}.{minor}t"
    if impl == "Python":
        return f"any Python {major}" + (f".{minor}+" if minor else "")
    return f"{impl} ≥ {major}.{minor} (abi3)" if open_ended else f"{impl} {major}.{minor}"


def _libc_promises(wheel_tags: Iterable[Tag]) -> tuple[list[str], tuple[int, int] | None,
                                                       tuple[int, int] | None, set[str]]:
    """Words, the promised oldest glibc, the promised oldest musl, the architectures."""
    words, glibc, musl, arches = [], None, None, set()
    for platform in sorted({t.platform for t in wheel_tags}):
        if (g := tags_mod.promised_glibc(platform)) is not None:
            glibc = min(glibc or g, g)
            arches.add(tags_mod.manylinux_arch(platform) or "")
        elif (m := tags_mod.promised_musl(platform)) is not None:
            musl = min(musl or m, m)
            arches.add(tags_mod.linux_arch(platform) or "")
        elif platform.startswith("linux_"):
            words.append("only Linux machines like the build machine (a linux_* tag promises "
                         "nothing portable; the index refuses it)")
            arches.add(platform[len("linux_"):])
        elif platform == "any":
            words.append("any platform")
        else:
            words.append(_os_words(platform))
    if glibc:
        words.insert(0, f"glibc ≥ {glibc[0]}.{glibc[1]}")
    if musl:
        words.insert(0 if not glibc else 1, f"musl ≥ {musl[0]}.{musl[1]}")
    return words, glibc, musl, {a for a in arches if a}


def _os_words(platform: str) -> str:
    """'win_amd64' -> 'Windows x86-64 (win_amd64)'; 'macosx_11_0_arm64' -> 'macOS ≥ 11.0
    arm64 (macosx_11_0_arm64)'; anything else as it is."""
    win = {"win32": "x86", "win_amd64": "x86-64", "win_arm64": "arm64"}
    if platform in win:
        return f"Windows {win[platform]} ({platform})"
    mac = re.fullmatch(r"macosx_(\d+)_(\d+)_(\w+)", platform)
    if mac:
        return f"macOS ≥ {mac[1]}.{mac[2]} {mac[3]} ({platform})"
    return platform


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def _dotted(v: Sequence[int]) -> str:
    return ".".join(map(str, v))


def promise_vs_coverage(wheel: Dist, cells: Sequence[Mapping[str, Any]],
                        tested: Sequence[Tested]) -> Coverage:
    """What ``wheel``'s tags promise against the facts of the cells that installed it."""
    mine = [(c, t) for c, t in zip(cells, tested, strict=True) if t.file == wheel.filename]
    facts = [c.get("interpreter") or {} for c, _ in mine]
    pythons = _python_promises(wheel.tags)
    libc_words, glibc, musl, arches = _libc_promises(wheel.tags)
    promises = [*(_python_words(p) for p in pythons), *libc_words, *sorted(arches)]
    seen_py = sorted({(str(f.get("implementation", "cpython")) + (
        "-ft" if "t" in str(f.get("abiflags", "")) else ""), _version(str(f.get(
            "version", "")))[:2]) for f in facts if f.get("version")})
    seen_glibc = sorted({_version(str(f["glibc"])) for f in facts if f.get("glibc")})
    seen_musl = sorted({_version(tags_mod.musl_version(f)) for f in facts
                        if tags_mod.musl_version(f)})
    seen_arch = sorted({str(f["machine"]) for f in facts if f.get("machine")})
    covered = []
    for impl in dict.fromkeys(i for i, _ in seen_py):
        name = {"cpython": "CPython", "pypy": "PyPy", "cpython-ft": FREE_THREADED}.get(
            impl, impl)
        covered.append(f"{name} {', '.join(_dotted(v) for i, v in seen_py if i == impl)}")
    if seen_glibc:
        covered.append(f"glibc {_dotted(seen_glibc[0])}" + (
            f"-{_dotted(seen_glibc[-1])}" if len(seen_glibc) > 1 else ""))
    if seen_musl:
        covered.append(f"musl {', '.join(_dotted(v) for v in seen_musl)}")
    covered += seen_arch
    untested = _python_gaps(pythons, {v for i, v in seen_py if i == "cpython"},
                            {v for i, v in seen_py if i == "cpython-ft"})
    untested += _libc_gap("glibc", glibc, seen_glibc) + _libc_gap("musl", musl, seen_musl)
    untested += [f"{a} machines" for a in sorted(arches - set(seen_arch))]
    return Coverage(file=wheel.filename, promises=tuple(promises), covered=tuple(covered),
                    untested=tuple(untested), cells=tuple(t.cell for _, t in mine),
                    passed=sum(t.verdict == "PASS" for _, t in mine))


def _python_gaps(pythons: Sequence[tuple[str, tuple[int, int], bool]],
                 seen: set[tuple[int, ...]],
                 seen_free_threaded: Collection[tuple[int, ...]] = ()) -> list[str]:
    gaps = []
    for impl, (major, minor), open_ended in pythons:
        if impl == FREE_THREADED:
            if (major, minor) not in seen_free_threaded:
                gaps.append(f"{impl} {major}.{minor}t (no free-threaded cell; a CPython "
                            f"{major}.{minor} cell cannot install it)")
            continue
        if impl != "CPython":
            if impl == "PyPy":
                gaps.append(f"PyPy {major}.{minor} (no PyPy cell)")
            continue
        last = max([NEWEST_CPYTHON[1], *(v[1] for v in seen)]) if open_ended else minor
        missing = [f"{major}.{m}" for m in range(minor, last + 1) if (major, m) not in seen]
        if missing or open_ended:
            later = " and later" if open_ended else ""
            gaps.append(f"CPython {', '.join(missing)}{later}" if missing
                        else f"CPython after {major}.{last}")
    return gaps


def _libc_gap(name: str, promised: tuple[int, int] | None,
              seen: Sequence[tuple[int, ...]]) -> list[str]:
    if promised is None:
        return []
    if not seen:
        return [f"every {name} (no {name} cell installed it)"]
    oldest = seen[0]
    if oldest[:2] > promised:
        return [f"{name} {promised[0]}.{promised[1]}-{oldest[0]}.{oldest[1] - 1} (oldest tested "
                f"{_dotted(oldest)})"]
    return []


# --- reports ------------------------------------------------------------------------------------


def decision_json(decision: Decision) -> dict[str, Any]:
    """The decision as the report's ``decision`` section."""
    return {**asdict(decision), "exit_code": decision.exit_code}


def decision_lines(decision: Decision) -> list[str]:
    """The go / no-go for the console: the verdict, every blocker with its fix and file,
    warnings, and promise vs coverage."""
    lines = [f"{'GO' if decision.go else 'NO-GO'}: {decision.reason}"]
    for title, issues in (("blocker", decision.blockers), ("warning", decision.warnings)):
        for i in issues:
            where = f" [{', '.join(i.cells)}]" if i.cells else ""
            label = "ERROR" if i.severity == "error" else title.upper()
            lines.append(f"  {label:7} {i.file}{where}: [{i.code}] {i.message} -> fix: {i.fix}")
    for c in decision.coverage:
        lines.append(f"  {c.file}: promises {'; '.join(c.promises) or '?'}; tested in "
                     f"{len(c.cells)} cell{'s' * (len(c.cells) != 1)} ({c.passed} PASS)"
                     + (f": {'; '.join(c.covered)}" if c.covered else "")
                     + (f"; NOT tested: {'; '.join(c.untested)}" if c.untested else ""))
    for change in decision.policy_changes:
        lines.append(f"  policy (matrix.yaml release): {change}")
    return lines


# --- the gate over a run --------------------------------------------------------------------------


class Prepublish:
    """One gate over one run: the audit starts beside the cells (it runs in child processes)
    and is awaited when the decision is made after them."""

    def __init__(self, release: ReleaseSet, policy: ReleasePolicy,
                 bundled_libraries: tuple[str, ...] = (),
                 matrix_cells: tuple[str, ...] = (),
                 runnable: Mapping[str, frozenset[tuple[int, int]]] | None = None) -> None:
        self.release = release
        self.policy = policy
        self.bundled_libraries = bundled_libraries
        self.matrix_cells = matrix_cells
        self.runnable = runnable
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="audit")
        self._audit = pool.submit(audit_release, release,
                                  AuditOptions.from_policy(policy, bundled_libraries))
        pool.shutdown(wait=False)
        self.decision: Decision | None = None

    def add_to(self, report: ReportDoc) -> ReportDoc:
        """Decide (waiting for the audit) and put ``audit`` and ``decision`` into the report."""
        from harness.audit import findings_json

        audit = self._audit.result()
        self.decision = decide(self.release, audit, report, self.policy,
                               bundled_libraries=self.bundled_libraries,
                               matrix_cells=self.matrix_cells, runnable=self.runnable)
        report["audit"] = findings_json(audit)
        report["decision"] = decision_json(self.decision)
        return report
