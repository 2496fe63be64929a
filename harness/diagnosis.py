"""Known failure signatures -> the pitfall and its fix, in the user's words.

A rule keys on the failed check's stable code (harness.checks.CheckCode) and on observed
facts (the check's data, the wheel, the cell); a regular expression is used only on text that
comes from outside the harness: the loader's and the installer's messages and the package's
exceptions. Fixes are worded for the build backend that made the wheel (harness.advice).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from harness import advice, floor, tags
from harness.advice import Backend
from harness.checks import CheckCode, CheckResult, same_version
from harness.matrix import Package
from harness.probe_native import is_library
from harness.verdict import CellResult, Diagnosis, Verdict
from harness.wheel import WheelInfo


@dataclass(frozen=True, kw_only=True)
class Context:
    """What a rule may look at: the failed check, the text from outside it carries, the cell,
    the wheel, the package and the build backend that made the wheel."""

    check: CheckResult
    text: str
    match: re.Match[str] | None
    result: CellResult
    wheel: WheelInfo
    package: Package
    backend: Backend

    def group(self, name: str) -> str:
        """A named group of the rule's match ("" without one)."""
        return (self.match[name] or "") if self.match is not None else ""

    def fix(self, topic: str, **values: object) -> str:
        """The fix ``topic`` in the terms of this wheel's build backend."""
        return advice.fix(topic, self.backend, **values)


Explain = Callable[[Context], Diagnosis]


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A signature: which check codes, which outside text (if any), which facts; how to
    explain it."""

    codes: tuple[CheckCode, ...]
    explain: Explain
    pattern: re.Pattern[str] | None = None  # only for text from outside the harness
    when: Callable[[Context], bool] | None = None  # observed facts


def _floor(ctx: Context) -> int:
    """The Python minor a fix should aim the stable ABI at: the matrix's required abi3 tag,
    else the cell's Python."""
    for pattern in ctx.package.wheel_tags:
        if m := re.match(r"^cp3(\d+)-abi3-", pattern):
            return int(m[1])
    return int((ctx.result.facts.get("version_info") or [3, 9])[1])


def _not_bundled(ctx: Context) -> Diagnosis:
    """A library the loader could not find: which of the four ways this happens."""
    wanted, lib = ctx.group("soname"), ctx.group("lib")
    name = wanted.rsplit("/", 1)[-1]
    needed, shipped = ctx.wheel.needs(lib), ctx.wheel.bundled(lib)
    shipped_names = {s.rsplit("/", 1)[-1] for s in shipped}
    if name not in needed and shipped:
        return Diagnosis(
            title=f"the package loads the system's lib{lib} itself",
            advice=f"Python code in the package opens {wanted} (ctypes or similar) although the "
                   f"wheel bundles {', '.join(shipped)} and the extension finds it by itself. "
                   f"Remove that code: on a user's machine there is no system lib{lib}.")
    if name in shipped_names:
        users = [e for e in ctx.wheel.elf if name in e.needed]  # the objects that NEED it
        paths = "; ".join(f"{e.path}: {', '.join(e.rpath + e.runpath) or 'none'}"
                          for e in users) or "none"
        return Diagnosis(
            title=f"the bundled lib{lib} is not found by the loader",
            advice=f"The wheel ships {name} but the objects that need it cannot find it: their "
                   f"RPATH/RUNPATH ({paths}) must point at $ORIGIN/../"
                   f"{_auditwheel_libs(ctx)}. {ctx.fix('rpath')}.")
    if name in needed and re.search(r"-[0-9a-f]{8}\.so", name):
        return Diagnosis(
            title=f"the bundled lib{lib} is missing from the wheel",
            advice=f"The extension was repaired (it needs the bundled {name}) but the wheel has "
                   f"no such file: something removed {_auditwheel_libs(ctx)}/ after the "
                   "repair step (re-packing, a MANIFEST filter, a stale copy). "
                   f"{ctx.fix('repack')}.")
    platform = sorted({t.platform for t in ctx.wheel.tags if t.platform.startswith("many")})
    promise = (f" Its {', '.join(platform)} tag promises a self-contained wheel, so pip will "
               "install it anywhere and it will break at import." if platform else "")
    return Diagnosis(
        title=f"lib{lib} was not bundled into the wheel",
        advice=f"The extension needs {wanted} (NEEDED: {', '.join(needed) or '?'}) but the "
               f"wheel carries no copy of it; a machine without lib{lib} cannot import it."
               f"{promise} Fix: {ctx.fix('bundle', lib=f'lib{lib}')} "
               f"({_auditwheel_libs(ctx)}/).")


def _renamed(ctx: Context) -> Diagnosis:
    return Diagnosis(
        title="wheel file name and metadata disagree",
        advice=f"The file is named for version {ctx.wheel.version} but its METADATA says "
               f"{ctx.wheel.metadata_version}; installers refuse it. Don't rename wheels: "
               f"{ctx.fix('version-home')}.")


def _pyinit(ctx: Context) -> Diagnosis:
    wanted = ctx.group("name")
    exported = sorted({s for e in ctx.wheel.elf for s in e.pyinit})
    module = f"{ctx.package.import_name}.{wanted}"
    return Diagnosis(
        title="module name mismatch (PyInit_ not found)",
        advice=f"Python looked for PyInit_{wanted} but the extension exports "
               f"{', '.join(exported) or 'no PyInit_ symbol'}. These names must agree: "
               f"{ctx.fix('module-name', name=wanted, module=module)}.")


def _abi_fixes(ctx: Context, version: int | None) -> list[str]:
    """Why the wheel's interpreter/ABI tags leave Pythons out (``version``: the cell's minor,
    None: against the release promise), and the fix."""
    floor, out = _floor(ctx), []
    for t in sorted(ctx.wheel.tags, key=str):
        minor = int(t.interpreter[3:] or 0) if t.interpreter.startswith("cp3") else 0
        if t.abi == "abi3" and minor > (floor if version is None else version):
            out.append(f"the abi3 floor is {t.interpreter}, so pip on older Pythons refuses "
                       f"it: {ctx.fix('abi3', minor=floor)}")
        elif t.abi.startswith("cp") and t.abi != "abi3" and (
                version is None or t.abi != f"cp3{version}"):
            out.append(f"the wheel is built only for {t.abi} (no abi3): "
                       f"{ctx.fix('per-python', minor=floor)}")
    return out


def _tag_refused(ctx: Context) -> Diagnosis:
    facts = ctx.result.facts
    have = sorted(str(t) for t in ctx.wheel.tags)
    accepted = [str(t) for t in tags.supported(facts)]
    version = int((facts.get("version_info") or [3, 0])[1])
    fixes = _abi_fixes(ctx, version)
    for t in ctx.wheel.tags:
        promised, glibc = tags.promised_glibc(t.platform), facts.get("glibc", "")
        if promised and glibc and promised > tuple(map(int, glibc.split(".")[:2])):
            fixes.append(f"it needs glibc {promised[0]}.{promised[1]} but this system has "
                         f"{glibc}: {ctx.fix('glibc')}")
    return Diagnosis(
        title="wheel tag not accepted by this interpreter",
        advice=f"pip refuses {ctx.wheel.filename}: its tags ({', '.join(have)}) are not "
               f"accepted by {tags.describe(facts)}, which takes e.g. "
               f"{', '.join(accepted[:1] + [a for a in accepted if '-abi3-' in a][:1])}. "
               + _sentences(fixes or ["build a wheel for this platform"]))


def _sentences(parts: list[str]) -> str:
    return " ".join(p[0].upper() + p[1:] + "." for p in dict.fromkeys(parts))


def _tags_missing(ctx: Context) -> Diagnosis:
    reasons = _abi_fixes(ctx, None)
    for t in sorted(ctx.wheel.tags, key=str):
        if t.platform.startswith("linux_"):
            reasons.append("it has a bare linux_* platform tag (not repaired): "
                           + ctx.fix("bundle", lib="its libraries"))
        elif (tags.promised_glibc(t.platform) or (0, 0)) > (2, 17):
            reasons.append(f"its platform {t.platform} needs a newer glibc than promised: "
                           + ctx.fix("glibc"))
    return Diagnosis(
        title="wheel tags break the release promise",
        advice=f"The matrix requires {', '.join(ctx.package.wheel_tags)}. "
               + _sentences(reasons or [ctx.check.detail]))


def _tag_lie(ctx: Context) -> Diagnosis:
    audit = ctx.wheel.audit
    if audit is not None and audit.external:
        return Diagnosis(
            title="the manylinux tag is false: libraries not bundled",
            advice=f"{ctx.check.detail}. Machines without {', '.join(audit.external)} cannot "
                   "import it, yet pip will install it there. Fix: "
                   f"{ctx.fix('bundle', lib=', '.join(audit.external))}.")
    return Diagnosis(
        title="the manylinux tag is false: glibc too new",
        advice=f"{ctx.check.detail}. Older systems the tag admits cannot load it. Fix: "
               f"{ctx.fix('glibc')}.")


def _environment_key(ctx: Context) -> bool:
    """The import raised KeyError for a variable of the environment (the traceback reads
    os.environ, or the matrix names the variable as one no machine has)."""
    exc = ctx.check.data.get("exception") or {}
    key = str(exc.get("message", "")).strip("'\"")
    return exc.get("type") == "KeyError" and bool(key) and (
        key in ctx.package.absent_env or "environ" in str(exc.get("traceback", "")))


def _environment(ctx: Context) -> Diagnosis:
    var = str((ctx.check.data.get("exception") or {}).get("message", "")).strip("'\"")
    return Diagnosis(
        title=f"the package needs ${var} at import",
        advice=f"The package reads the environment variable {var} at import; it exists only "
               "where it was set (the build machine, a developer's shell), so users' imports "
               f"fail. Guard it (`if '{var}' in os.environ:`), or better, bundle what it "
               "points at into the wheel (auditwheel, delocate, delvewheel) and drop the "
               "variable.")


def _version(ctx: Context) -> Diagnosis:
    values = ctx.check.data.get("values", {})
    expected = ctx.check.data.get("expected")
    wrong = [k for k, v in values.items() if not same_version(v, expected)]
    missing = [k for k in wrong if str(values[k]).startswith("<AttributeError")]
    if missing:
        return Diagnosis(
            title="a version attribute is missing",
            advice=f"{ctx.package.import_name} has no {', '.join(missing)}, which the matrix's "
                   "version_from lists: add it to the package, or fix version_from in the "
                   "matrix.")
    if any(k.endswith("()") for k in wrong):
        return Diagnosis(
            title="stale extension module (.so) in the wheel",
            advice=f"{', '.join(wrong)} reports {', '.join(str(values[k]) for k in wrong)} but "
                   f"the wheel is {expected}: an old build of the extension was packaged. "
                   f"{ctx.fix('stale-extension')}.")
    return Diagnosis(
        title="__version__ does not match the wheel",
        advice=f"{', '.join(f'{k} = {values[k]!r}' for k in wrong)} but the wheel's metadata "
               f"says {expected}. {ctx.fix('version-source', dist=ctx.package.distribution)}.")


def _overflowed(ctx: Context) -> bool:
    """Right below 2^63/2^64, wrong at the first term that needs more bits."""
    data = ctx.check.data
    before, at = data.get("max_bits_before_bad"), data.get("bits_at_bad")
    return before is not None and at is not None and before < at and before <= 64 <= at


def _overflow(ctx: Context) -> Diagnosis:
    data = ctx.check.data
    index, bits, at = data.get("first_bad_index"), data.get("expected_bits", 0), data.get(
        "bits_at_bad", 0)
    width = ("it needs 64 bits, more than a signed 64-bit integer holds" if at == 64 else
             f"it needs {at} bits, more than an unsigned 64-bit integer holds")
    return Diagnosis(
        title="wrong values past 2^64 (fixed-width overflow)",
        advice=f"Term {index} is the first wrong one, and {width}; every smaller value is "
               "right, so the big-integer path is broken: compute with a big-integer type "
               "(a bignum library, Python ints) end to end, never through a fixed 64-bit "
               f"integer. (Checked up to 2^{bits}.)")


#: each platform's tool that bundles a wheel's native libraries into it
REPAIR_TOOLS = {
    "win32": ("delvewheel", "delvewheel repair --add-path DIR_WITH_THE_DLLS -w fixed WHEEL"),
    "darwin": ("delocate", "delocate-wheel -w fixed -v WHEEL"),
}
_ABSOLUTE_PREFIXES = ("/opt/homebrew/", "/usr/local/", "/opt/local/", "/sw/")


def _auditwheel_libs(ctx: Context) -> str:
    """auditwheel's (and maturin's) directory of bundled libraries: the distribution's name as
    the wheel file spells it (pillow.libs, pyzmq.libs, python_flint.libs), not the import name."""
    return ctx.wheel.filename.split("-", 1)[0] + ".libs"


def _libs_dir(ctx: Context, platform: str) -> str:
    """Where the platform's repair tool puts the bundled libraries."""
    if platform == "win32":
        return f"{ctx.package.distribution}.libs/"
    return f"{ctx.package.import_name}/.dylibs/"


def _shipped(ctx: Context) -> list[str]:
    return [f for f in ctx.wheel.files for lib in ctx.package.bundled_libraries
            if is_library(f, lib)]


def _libs(ctx: Context) -> str:
    return ", ".join(f"lib{lib}" for lib in ctx.package.bundled_libraries) or "a"


def _dll_missing(ctx: Context) -> Diagnosis:
    """Windows: an extension's DLL was not found."""
    tool, command = REPAIR_TOOLS["win32"]
    shipped = _shipped(ctx)
    module = ctx.group("module") or "the extension"
    if shipped:
        return Diagnosis(
            title="the bundled DLL is not on the DLL search path",
            advice=f"The wheel ships {', '.join(shipped)} but importing {module} cannot find "
                   "it: since Python 3.8 Windows looks for an extension's DLLs only next to "
                   "it, in Python's directory, System32 and directories added with "
                   f"os.add_dll_directory (not PATH). Repair with {tool}, which puts the DLLs "
                   f"in {_libs_dir(ctx, 'win32')} and makes __init__.py add that directory: "
                   f"`{command}`.")
    return Diagnosis(
        title=f"{_libs(ctx)} DLL is not bundled into the wheel",
        advice=f"Importing {module} fails because the DLL is not bundled; repair with "
               f"{tool}: `{command}` (--add-path: the directory holding the DLL on the build "
               f"machine), which copies it into {_libs_dir(ctx, 'win32')}. A common cause: "
               "__init__.py adds a build-machine directory to the DLL search path from an "
               "environment variable (os.add_dll_directory(os.environ[...])), which users do "
               "not have; remove that code once the DLL is bundled.")


def _dylib_missing(ctx: Context) -> Diagnosis:
    """macOS: dyld could not load a library the extension names."""
    tool, command = REPAIR_TOOLS["darwin"]
    wanted, shipped = ctx.group("path"), _shipped(ctx)
    if wanted.startswith(_ABSOLUTE_PREFIXES):
        cause = (f"the extension names {wanted} by absolute path (Homebrew or MacPorts on the "
                 "build machine), which users do not have")
    elif shipped:
        cause = (f"the wheel ships {', '.join(shipped)} but the extension's install name "
                 f"{wanted} (or its rpath) does not lead there")
    else:
        cause = f"the extension needs {wanted} and the wheel carries no copy of it"
    return Diagnosis(
        title="a dylib is not bundled into the wheel",
        advice=f"Import fails: {cause}. Repair with {tool}: `{command}` copies the "
               f"libraries into {_libs_dir(ctx, 'darwin')} and rewrites the install names "
               "(`delocate-listdeps --all WHEEL` lists what still points outside).")


def _provenance(ctx: Context) -> Diagnosis:
    platform = ctx.check.data.get("platform")
    if platform in REPAIR_TOOLS:
        tool, command = REPAIR_TOOLS[str(platform)]
        return Diagnosis(
            title="native library loaded from outside the wheel",
            advice=f"{ctx.check.detail}. The package loaded a copy the machine happened to "
                   "have (an MSYS2/MinGW or conda directory, Homebrew, an absolute install "
                   f"name) instead of one bundled in the wheel. Repair with {tool} "
                   f"(`{command}`) so the wheel carries the library in "
                   f"{_libs_dir(ctx, str(platform))} and loads only that one.")
    return Diagnosis(
        title="native library loaded from outside the wheel",
        advice=f"{ctx.check.detail}. The extension found a system copy instead of the bundled "
               "one: its NEEDED entry or RPATH does not point at the wheel's .libs directory. "
               f"{ctx.fix('rpath')}.")


def _outside(ctx: Context) -> Diagnosis:
    return Diagnosis(
        title="the package was not imported from the installed wheel",
        advice=f"{ctx.check.detail}. Something on sys.path (source tree, working directory, "
               "PYTHONPATH, a .pth file) shadows the installed package.")


def _glibc(ctx: Context) -> Diagnosis:
    return Diagnosis(
        title=f"built against a newer glibc ({ctx.group('ver')})",
        advice=f"The extension needs GLIBC_{ctx.group('ver')} but this system has "
               f"{ctx.result.facts.get('glibc', '?')}. Fix: {ctx.fix('glibc')}, and let the "
               "tag say the truth.")


_UNCLEAN_WHERE = {
    "win32": "A {libs} DLL is reachable where the harness cannot remove it (Python's own "
             "directory, System32, the Windows directory, or through find_library): delete "
             "it there or use a clean runner. PATH was already scrubbed of MSYS2/MinGW, conda "
             "and every directory holding the DLL.",
    "darwin": "dyld finds the library by a bare name: /usr/local/lib is on its default "
              "fallback path, and Intel Homebrew keeps libraries there. Uninstall the package "
              "that puts {libs} there on the runner first (`brew uninstall "
              "--ignore-dependencies FORMULA`), or use an Apple-silicon runner (Homebrew in "
              "/opt/homebrew, off dyld's default path).",
    "linux": "Use an image whose libraries were scrubbed (images/), or a venv cell where the "
             "harness can hide them (Linux mount namespace; as an ordinary user, "
             "unprivileged user namespaces must be enabled).",
}


def _unclean(ctx: Context) -> Diagnosis:
    where = _UNCLEAN_WHERE.get(str(ctx.check.data.get("platform")), _UNCLEAN_WHERE["linux"])
    return Diagnosis(
        title="environment not clean: nothing was proven",
        advice=f"{ctx.check.detail}. A wheel that forgot to bundle the library would pass "
               f"here, so this cell cannot vouch for the wheel. {where.format(libs=_libs(ctx))}")


def _cpu_fault(ctx: Context) -> Mapping[str, Any]:
    return ctx.check.data.get("cpu_fault") or {}


def _cpu_floor(ctx: Context) -> Diagnosis:
    """SIGILL on the emulated floor CPU: the instruction, the level, the build's fix."""
    fault = _cpu_fault(ctx)
    topic = floor.fix_topic(str(fault.get("file", "")), ctx.wheel, ctx.backend)
    return Diagnosis(title=f"cpu-floor: built for a newer CPU than its tag promises "
                           f"({fault.get('needs')})",
                     advice=floor.advice(fault, ctx.wheel, ctx.fix(topic)))


_IMPORT: tuple[CheckCode, ...] = ("import-raised", "import-extension-failed")

RULES: tuple[Rule, ...] = (
    Rule(codes=("sterility-leak",), explain=_unclean),
    # any check the floor CPU's fault ended, when the instruction is above the floor
    Rule(codes=("cpu-fault",), explain=_cpu_floor,
         when=lambda ctx: _cpu_fault(ctx).get("kind") == "above-floor"),
    Rule(codes=("tags-missing",), explain=_tags_missing),
    Rule(codes=("tags-lie",), explain=_tag_lie),
    Rule(codes=("install-tag-refused", "install-uncovered"), explain=_tag_refused),
    Rule(codes=("install-failed",), pattern=re.compile(r"not a supported wheel"),
         explain=_tag_refused),
    Rule(codes=("install-failed",), pattern=re.compile(
        r"does not match (the )?filename|inconsistent version", re.I), explain=_renamed),
    Rule(codes=_IMPORT, when=_environment_key, explain=_environment),
    Rule(codes=_IMPORT, pattern=re.compile(
        r"(?P<soname>[^\s:'\"]*lib(?P<lib>[A-Za-z0-9_+]+?)(-[0-9a-f]+)?\.so[.0-9]*): cannot "
        r"open shared object file"), explain=_not_bundled),
    Rule(codes=_IMPORT, pattern=re.compile(
        r"DLL load failed(?: while importing (?P<module>[\w.]+))?"), explain=_dll_missing),
    Rule(codes=_IMPORT, pattern=re.compile(r"Library not loaded: '?(?P<path>[^\s'\"]+)"),
         explain=_dylib_missing),
    Rule(codes=_IMPORT, pattern=re.compile(
        r"does not define module export function \(PyInit_(?P<name>\w+)\)"), explain=_pyinit),
    Rule(codes=_IMPORT, pattern=re.compile(r"GLIBC_(?P<ver>[0-9.]+)' not found"),
         explain=_glibc),
    Rule(codes=("import-outside-site-packages", "import-unrecorded"), explain=_outside),
    Rule(codes=("version-mismatch",), explain=_version),
    Rule(codes=("provenance-outside", "provenance-resolved-outside"), explain=_provenance),
    Rule(codes=("check-wrong",), when=_overflowed, explain=_overflow),
)


def outside_text(check: CheckResult) -> str:
    """The text in a check that comes from outside the harness: the installer's output, the
    exception the package raised (message and traceback)."""
    exc = check.data.get("exception") or {}
    raised = f"{exc.get('type', '')}: {exc.get('message', '')}\n{exc.get('traceback', '')}"
    return "\n".join([str(check.data.get("output", "")), raised if exc else ""])


def match(result: CellResult, wheel: WheelInfo, package: Package,
          backend: Backend = "unknown") -> tuple[Rule, Context] | None:
    """The first rule that fits the cell's failing check, and what it sees; None if none."""
    check = result.check("sterility") if result.verdict is Verdict.INVALID else None
    if result.verdict is Verdict.UNCOVERED:
        check = result.check("install")  # why pip refuses the wheel here, and the fix
    check = check or result.failed_check
    if check is None:
        return None
    text = outside_text(check)
    for rule in RULES:
        if check.code not in rule.codes:
            continue
        found = rule.pattern.search(text) if rule.pattern is not None else None
        if rule.pattern is not None and found is None:
            continue
        ctx = Context(check=check, text=text, match=found, result=result, wheel=wheel,
                      package=package, backend=backend)
        if rule.when is None or rule.when(ctx):
            return rule, ctx
    return None


def diagnose(result: CellResult, wheel: WheelInfo, package: Package,
             backend: Backend = "unknown") -> Diagnosis | None:
    """The first known signature in the first failing check, explained; None if none."""
    found = match(result, wheel, package, backend)
    return found[0].explain(found[1]) if found is not None else None


def explain(result: CellResult, wheel: WheelInfo, package: Package,
            source: advice.Source | None = None) -> CellResult:
    """Attach a diagnosis to FAIL and INVALID cells, and to UNCOVERED ones (why pip refuses
    ``wheel`` there: meant for a release of that one wheel), its fixes in the terms of the
    wheel's build backend (``source``: what the release's sdist says about it)."""
    if result.verdict not in (Verdict.FAIL, Verdict.INVALID, Verdict.UNCOVERED):
        return result
    backend = advice.backend_of(wheel.generator, source)
    return replace(result, diagnosis=diagnose(result, wheel, package, backend))
