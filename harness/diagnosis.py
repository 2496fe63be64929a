"""Known failure signatures -> the pitfall and its fix, in the user's words."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from harness import floor, tags
from harness.checks import CheckResult, same_version
from harness.matrix import Package
from harness.probe_native import is_library
from harness.verdict import CellResult, Diagnosis, Verdict
from harness.wheel import WheelInfo


@dataclass(frozen=True, kw_only=True)
class Context:
    """What a rule may look at: the failed check, the cell, the wheel, the package."""

    check: CheckResult
    text: str
    match: re.Match[str]
    result: CellResult
    wheel: WheelInfo
    package: Package


Explain = Callable[[Context], Diagnosis]


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A signature: which checks, which text, how to explain it."""

    checks: tuple[str, ...] | None  # None: any declared check
    pattern: re.Pattern[str]
    explain: Explain
    when: Callable[[CheckResult], bool] = lambda check: True


def _not_bundled(ctx: Context) -> Diagnosis:
    """A library the loader could not find: which of the four ways this happens."""
    wanted, lib = ctx.match["soname"], ctx.match["lib"]
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
                   f"{_auditwheel_libs(ctx)}. Repair the wheel with maturin's repair "
                   "step or auditwheel instead of editing it by hand.")
    if name in needed and re.search(r"-[0-9a-f]{8}\.so", name):
        return Diagnosis(
            title=f"the bundled lib{lib} is missing from the wheel",
            advice=f"The extension was repaired (it needs the bundled {name}) but the wheel has "
                   f"no such file: something removed {_auditwheel_libs(ctx)}/ after the "
                   "repair step (re-packing, a MANIFEST filter, a stale copy). Publish the wheel "
                   "maturin/auditwheel wrote, untouched.")
    platform = sorted({t.platform for t in ctx.wheel.tags if t.platform.startswith("many")})
    promise = (f" Its {', '.join(platform)} tag promises a self-contained wheel, so pip will "
               "install it anywhere and it will break at import." if platform else "")
    return Diagnosis(
        title=f"lib{lib} was not bundled into the wheel",
        advice=f"The extension needs {wanted} (NEEDED: {', '.join(needed) or '?'}) but the "
               f"wheel carries no copy of it; a machine without lib{lib} cannot import it."
               f"{promise} Fix: build with maturin's repair step (do not pass `--auditwheel "
               f"skip`) or run `auditwheel repair` on the wheel, so lib{lib} is copied into "
               f"{_auditwheel_libs(ctx)}/.")


def _renamed(ctx: Context) -> Diagnosis:
    return Diagnosis(
        title="wheel file name and metadata disagree",
        advice=f"The file is named for version {ctx.wheel.version} but its METADATA says "
               f"{ctx.wheel.metadata_version}; installers refuse it. Don't rename wheels: "
               "rebuild with the version set in Cargo.toml / pyproject.toml.")


def _pyinit(ctx: Context) -> Diagnosis:
    wanted = ctx.match["name"]
    exported = sorted({s for e in ctx.wheel.elf for s in e.pyinit})
    return Diagnosis(
        title="module name mismatch (PyInit_ not found)",
        advice=f"Python looked for PyInit_{wanted} but the extension exports "
               f"{', '.join(exported) or 'no PyInit_ symbol'}. The three names must agree: "
               f"the `#[pymodule] fn {wanted}` in Rust, `module-name = "
               f"\"{ctx.package.import_name}.{wanted}\"` under [tool.maturin], and the "
               "import in __init__.py.")


def _tag_refused(ctx: Context) -> Diagnosis:
    facts = ctx.result.facts
    have = sorted(str(t) for t in ctx.wheel.tags)
    accepted = [str(t) for t in tags.supported(facts)]
    version = "".join(map(str, facts.get("version_info", [0, 0])[:2]))
    fixes = []
    for t in ctx.wheel.tags:
        if t.abi == "abi3" and int(t.interpreter[3:] or 0) > int(version[1:] or 0):
            fixes.append(f"the abi3 floor is {t.interpreter}: build with pyo3's `abi3-py39` "
                         "feature (cp39-abi3) so one wheel serves 3.9+")
        elif t.abi.startswith("cp") and t.abi != f"cp{version}":
            fixes.append(f"the wheel is built only for {t.abi} (no abi3): enable pyo3's "
                         "`abi3-py39` feature, or build one wheel per Python")
        promised, glibc = tags.promised_glibc(t.platform), facts.get("glibc", "")
        if promised and glibc and promised > tuple(map(int, glibc.split(".")[:2])):
            fixes.append(f"it needs glibc {promised[0]}.{promised[1]} but this system has "
                         f"{glibc}: build `--compatibility manylinux2014` (with `--zig`) for "
                         "glibc 2.17+")
    return Diagnosis(
        title="wheel tag not accepted by this interpreter",
        advice=f"pip refuses {ctx.wheel.filename}: its tags ({', '.join(have)}) are not "
               f"accepted by {tags.describe(facts)}, which takes e.g. "
               f"{', '.join(accepted[:1] + [a for a in accepted if '-abi3-' in a][:1])}. "
               + _sentences(fixes or ["build a wheel for this platform"]))


def _sentences(parts: list[str]) -> str:
    return " ".join(p[0].upper() + p[1:] + "." for p in dict.fromkeys(parts))


def _tags_missing(ctx: Context) -> Diagnosis:
    have = sorted(ctx.wheel.tags, key=str)
    reasons = []
    for t in have:
        if t.abi != "abi3" and t.abi.startswith("cp"):
            reasons.append(f"it is built for {t.abi} only (no abi3): enable pyo3's `abi3-py39` "
                           "feature so one wheel serves every Python from 3.9 on")
        elif t.abi == "abi3" and t.interpreter != "cp39":
            reasons.append(f"its abi3 floor is {t.interpreter}, so pip on older Pythons "
                           "refuses it: use pyo3's `abi3-py39` feature, not bare `abi3`")
        if t.platform.startswith("linux_"):
            reasons.append("it has a bare linux_* platform tag (not repaired): build with "
                           "maturin's repair step / auditwheel")
        elif (tags.promised_glibc(t.platform) or (0, 0)) > (2, 17):
            reasons.append(f"its platform {t.platform} needs a newer glibc than promised: "
                           "build `--compatibility manylinux2014` (with `--zig`)")
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
                   "import it, yet pip will install it there. Build with maturin's repair step "
                   "(no `--auditwheel skip`) or run `auditwheel repair`.")
    return Diagnosis(
        title="the manylinux tag is false: glibc too new",
        advice=f"{ctx.check.detail}. Older systems the tag admits cannot load it. Build with "
               "`maturin build --zig --compatibility manylinux2014` (or in a manylinux2014 "
               "container) so the symbols match the tag.")


def _mingw(ctx: Context) -> Diagnosis:
    return Diagnosis(
        title="__init__.py depends on MINGW_BIN",
        advice="The package reads the MINGW_BIN environment variable at import; it exists only "
               "on the build machine, so every user's import fails. Guard it (`if os.name == "
               "'nt' and 'MINGW_BIN' in os.environ:`) or better, bundle the DLLs (delvewheel) "
               "and drop the variable.")


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
                   "Rebuild from a clean target directory (cargo clean) and check the wheel "
                   "holds only the new .so.")
    return Diagnosis(
        title="__version__ does not match the wheel",
        advice=f"{', '.join(f'{k} = {values[k]!r}' for k in wrong)} but the wheel's metadata "
               f"says {expected}. Don't hard-code it: derive __version__ from the extension "
               f"or from importlib.metadata.version({ctx.package.distribution!r}).")


def _overflowed(check: CheckResult) -> bool:
    """Right below 2^63/2^64, wrong at the first term that needs more bits."""
    before, at = check.data.get("max_bits_before_bad"), check.data.get("bits_at_bad")
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
               "right, so the big-integer path is broken: compute with GMP (or Python ints) "
               f"end to end, never through u64/i64. (Checked up to 2^{bits}.)")


#: each platform's tool that bundles a wheel's native libraries into it
REPAIR_TOOLS = {
    "win32": ("delvewheel", "delvewheel repair --add-path C:\\msys64\\mingw64\\bin -w fixed "
                            "WHEEL"),
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


def _dll_missing(ctx: Context) -> Diagnosis:
    """Windows: an extension's DLL was not found (the seed's pitfall 3 when not bundled)."""
    tool, command = REPAIR_TOOLS["win32"]
    shipped = _shipped(ctx)
    module = ctx.match["module"] or "the extension"
    if shipped:
        return Diagnosis(
            title="the bundled DLL is not on the DLL search path",
            advice=f"The wheel ships {', '.join(shipped)} but importing {module} cannot find "
                   "it: since Python 3.8 Windows looks for an extension's DLLs only next to "
                   "it, in Python's directory, System32 and directories added with "
                   f"os.add_dll_directory (not PATH). Repair with {tool}, which puts the DLLs "
                   f"in {_libs_dir(ctx, 'win32')} and makes __init__.py add that directory: "
                   f"`{command}`.")
    libs = ", ".join(f"lib{lib}" for lib in ctx.package.bundled_libraries) or "a"
    return Diagnosis(
        title=f"{libs} DLL is not bundled into the wheel",
        advice=f"Importing {module} fails because the DLL is not bundled; repair with "
               f"{tool}: `{command}` (--add-path: the directory holding the DLL on the build "
               f"machine), which copies it into {_libs_dir(ctx, 'win32')}. The usual cause is "
               "the seed's pitfall 3: __init__.py calls os.add_dll_directory(os.environ["
               "'MINGW_BIN']), a directory only the build machine has; remove that code once "
               "the DLL is bundled.")


def _dylib_missing(ctx: Context) -> Diagnosis:
    """macOS: dyld could not load a library the extension names."""
    tool, command = REPAIR_TOOLS["darwin"]
    wanted, shipped = ctx.match["path"], _shipped(ctx)
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
               "Repair the wheel (maturin's repair step / auditwheel) and rebuild.")


def _outside(ctx: Context) -> Diagnosis:
    return Diagnosis(
        title="the package was not imported from the installed wheel",
        advice=f"{ctx.check.detail}. Something on sys.path (source tree, working directory, "
               "PYTHONPATH, a .pth file) shadows the installed package.")


def _glibc(ctx: Context) -> Diagnosis:
    return Diagnosis(
        title=f"built against a newer glibc ({ctx.match['ver']})",
        advice=f"The extension needs GLIBC_{ctx.match['ver']} but this system has "
               f"{ctx.result.facts.get('glibc', '?')}. Build manylinux2014 with `maturin "
               "build --zig --compatibility manylinux2014`, and let the tag say the truth.")


_UNCLEAN_WHERE = {
    "win32": "A GMP DLL is reachable where the harness cannot remove it (Python's own "
             "directory, System32, the Windows directory, or through find_library): delete "
             "it there or use a clean runner. PATH was already scrubbed of MSYS2/MinGW, conda "
             "and every directory holding the DLL.",
    "darwin": "dyld finds the library by a bare name: /usr/local/lib is on its default "
              "fallback path, and Intel Homebrew keeps libraries there. Run `brew uninstall "
              "--ignore-dependencies gmp` on the runner first, or use an Apple-silicon runner "
              "(Homebrew in /opt/homebrew, off dyld's default path).",
    "linux": "Use an image whose libraries were scrubbed (images/), or a venv cell where the "
             "harness can hide them (Linux mount namespace; as an ordinary user, "
             "unprivileged user namespaces must be enabled).",
}


def _unclean(ctx: Context) -> Diagnosis:
    where = _UNCLEAN_WHERE.get(str(ctx.check.data.get("platform")), _UNCLEAN_WHERE["linux"])
    return Diagnosis(
        title="environment not clean: nothing was proven",
        advice=f"{ctx.check.detail}. A wheel that forgot to bundle the library would pass "
               f"here, so this cell cannot vouch for the wheel. {where}")


def _cpu_floor(ctx: Context) -> Diagnosis:
    """SIGILL on the emulated floor CPU: the instruction, the level, the build's fix."""
    fault = ctx.check.data.get("cpu_fault") or {}
    return Diagnosis(title=f"cpu-floor: built for a newer CPU than its tag promises "
                           f"({fault.get('needs')})", advice=floor.advice(fault, ctx.wheel))


_CPU_FLOOR = re.compile(r"^cpu-floor: ")
RULES: tuple[Rule, ...] = (
    Rule(checks=("sterility",), pattern=re.compile(r".+"), explain=_unclean),
    Rule(checks=("import", "version", "provenance", "exit"), pattern=_CPU_FLOOR,
         explain=_cpu_floor),
    Rule(checks=None, pattern=_CPU_FLOOR, explain=_cpu_floor),  # a declared check's call
    Rule(checks=("tags",), pattern=re.compile(r"must carry"), explain=_tags_missing),
    Rule(checks=("tags",), pattern=re.compile(r"auditwheel finds only|needs glibc"),
         explain=_tag_lie),
    Rule(checks=("install",), pattern=re.compile(r"not a supported wheel"), explain=_tag_refused),
    Rule(checks=("install",), pattern=re.compile(r"does not match (the )?filename|"
                                                 r"inconsistent version", re.I),
         explain=_renamed),
    Rule(checks=("import", "install"), pattern=re.compile(r"MINGW_BIN"), explain=_mingw),
    Rule(checks=("import",), pattern=re.compile(
        r"(?P<soname>[^\s:'\"]*lib(?P<lib>[A-Za-z0-9_+]+?)(-[0-9a-f]+)?\.so[.0-9]*): cannot "
        r"open shared "
        r"object file"), explain=_not_bundled),
    Rule(checks=("import",), pattern=re.compile(
        r"DLL load failed(?: while importing (?P<module>[\w.]+))?"), explain=_dll_missing),
    Rule(checks=("import",), pattern=re.compile(r"Library not loaded: '?(?P<path>[^\s'\"]+)"),
         explain=_dylib_missing),
    Rule(checks=("import",), pattern=re.compile(
        r"does not define module export function \(PyInit_(?P<name>\w+)\)"), explain=_pyinit),
    Rule(checks=("import",), pattern=re.compile(r"GLIBC_(?P<ver>[0-9.]+)' not found"),
         explain=_glibc),
    Rule(checks=("import",), pattern=re.compile(r"outside site-packages|RECORD"),
         explain=_outside),
    Rule(checks=("version",), pattern=re.compile(r".+"), explain=_version),
    Rule(checks=("provenance",), pattern=re.compile(r"outside the wheel"),
         explain=_provenance),
    Rule(checks=None, pattern=re.compile(r"term \d+"), explain=_overflow, when=_overflowed),
)


def _text(check: CheckResult) -> str:
    exc = check.data.get("exception") or {}
    return "\n".join([check.detail, str(exc.get("message", "")), str(exc.get("traceback", ""))])


def diagnose(result: CellResult, wheel: WheelInfo, package: Package) -> Diagnosis | None:
    """The first known signature in the first failing check, if any."""
    check = result.check("sterility") if result.verdict is Verdict.INVALID else None
    if result.verdict is Verdict.UNCOVERED:
        check = result.check("install")  # why pip refuses the wheel here, and the fix
    check = check or result.failed_check
    if check is None:
        return None
    text = _text(check)
    declared = {c.name for c in package.checks}
    for rule in RULES:
        applies = check.name in rule.checks if rule.checks else check.name in declared
        if applies and rule.when(check) and (m := rule.pattern.search(text)):
            return rule.explain(Context(check=check, text=text, match=m, result=result,
                                        wheel=wheel, package=package))
    return None


def explain(result: CellResult, wheel: WheelInfo, package: Package) -> CellResult:
    """Attach a diagnosis to FAIL and INVALID cells, and to UNCOVERED ones (why pip refuses
    ``wheel`` there: meant for a release of that one wheel)."""
    if result.verdict not in (Verdict.FAIL, Verdict.INVALID, Verdict.UNCOVERED):
        return result
    return replace(result, diagnosis=diagnose(result, wheel, package))
