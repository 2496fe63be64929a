"""Wheel checks of the native code: ELF architecture vs platform tag, auditwheel's platform
policy / external libraries / glibc symbol versions, the extensions' NEEDED entries vs the
libraries the wheel bundles, abi3 (abi3audit, the floor vs Requires-Python, file suffixes)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path, PurePosixPath

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from harness import tags
from harness import wheel as wheel_mod
from harness.audit.model import Collector, WheelAudit, WheelCheck, tool
from harness.probe_native import library_stem

_ARCH_OF_MACHINE = {"EM_X86_64": "x86_64", "EM_386": "i686", "EM_AARCH64": "aarch64",
                    "EM_ARM": "armv7l", "EM_PPC64": "ppc64le", "EM_S390": "s390x",
                    "EM_RISCV": "riscv64", "EM_LOONGARCH": "loongarch64"}


def _elf_machine(data: bytes) -> str | None:
    try:
        return str(ELFFile(io.BytesIO(data))["e_machine"])
    except (ELFError, KeyError, ValueError):
        return None


def check_elf(wheel: WheelAudit, out: Collector) -> None:
    """Each shared object's architecture against the platform tags; the objects readable."""
    if not wheel.elf_names:
        return
    arches = {a for t in wheel.dist.tags if (a := tags.linux_arch(t.platform))}
    for name in wheel.elf_names:
        machine = _elf_machine(wheel.files.data[name])
        arch = _ARCH_OF_MACHINE.get(machine or "", machine)
        if arch and arches and arch not in arches:
            out.add("arch-mismatch", f"{name} is {arch} code but the tags say "
                    f"{', '.join(sorted(arches))}: no machine the tag admits can load it",
                    "build on (or cross-compile for) the tagged architecture, or fix the tag")
    if wheel.info is None:
        out.error("elf-unreadable", f"could not read the wheel's shared objects: "
                  f"{wheel.inspected}", "rebuild the wheel")


def check_auditwheel(wheel: WheelAudit, out: Collector) -> None:
    """auditwheel's verdict (glibc, or musl for musllinux tags) against the platform tags."""
    info, dist = wheel.info, wheel.dist
    if not wheel.elf_names or info is None:
        return
    if any(tags.promised_musl(t.platform) for t in dist.tags):
        _check_musllinux(wheel, out)
    if info.audit is None:
        return
    if info.audit.error:
        out.error("auditwheel-failed", f"auditwheel could not analyse the wheel: "
                  f"{info.audit.error}", "check the wheel's architecture tag and ELF files")
        return
    if info.audit.external:
        out.add("external-library", "needs libraries that are neither bundled nor allowed by "
                f"its manylinux tag: {', '.join(info.audit.external)}",
                wheel.fix("bundle", lib="them"))
    claimed = max((g for t in dist.tags if (g := tags.promised_glibc(t.platform))),
                  default=None)
    meets = tags.promised_glibc(info.audit.policy)
    if claimed and (meets is None or meets > claimed) and not (
            meets is None and info.audit.external):  # the external libraries say why
        why = f"its newest glibc symbol is GLIBC_{info.audit.glibc}" if info.audit.glibc else ""
        out.add("platform-tag-unmet", f"tagged for glibc {claimed[0]}.{claimed[1]} but "
                f"auditwheel finds it only meets {info.audit.policy}"
                + (f" ({why})" if why else ""),
                f"{wheel.fix('glibc')}, or tag what it meets")


def _check_musllinux(wheel: WheelAudit, out: Collector) -> None:
    """auditwheel's musl analysis (``auditwheel show`` reads the libc from the musllinux
    tag): a musllinux tag on glibc-linked objects is a lie."""
    shown = wheel_mod.auditwheel_show(wheel.dist.path)
    if shown.not_platform is not None:
        out.add("libc-mismatch", "tagged musllinux but no shared object in it is linked "
                "against musl (auditwheel ignores them all): a musl system cannot load them",
                wheel.fix("musl"))
        return
    if shown.failed is not None:
        out.error("auditwheel-failed", f"auditwheel (musl) could not analyse the wheel: "
                  f"{shown.failed}", "check the wheel's tags and ELF files")
        return
    external = sorted({*shown.external_libs, *(lib for libs in shown.upgrades.values()
                                               for lib in libs)})
    if shown.overall_tag.startswith("linux") and external:
        out.add("external-library", "needs libraries that are neither bundled nor allowed by "
                f"its musllinux tag: {', '.join(external)}", wheel.fix("bundle", lib="them"))


def check_needed(wheel: WheelAudit, out: Collector) -> None:
    """A bundled copy the extension does not use, and libraries the matrix says must be
    bundled but are taken from the system."""
    info = wheel.info
    if not wheel.elf_names or info is None:
        return
    _needed(info, wheel, out)


def _needed(info: wheel_mod.WheelInfo, wheel: WheelAudit, out: Collector) -> None:
    bundled = {PurePosixPath(f).name: f for f in info.files if ".libs/" in f or ".so" in f}
    bundled_stems = {library_stem(n): n for n in bundled if re.search(r"\.libs/", bundled[n])}
    needed_anywhere = {n for e in info.elf for n in e.needed}
    for elf in info.elf:
        for needed in elf.needed:
            if needed in bundled:
                continue
            stem = library_stem(needed)
            if stem in bundled_stems:
                copy = bundled_stems[stem]
                out.add("bundled-but-system-needed",
                        f"{elf.path} NEEDs the system's {needed} although the wheel carries "
                        f"{bundled[copy]}: on a machine without {needed} the import fails, "
                        "and elsewhere the system's copy is used, not the bundled one",
                        f"repair the wheel again so NEEDED names the bundled copy "
                        f"(`auditwheel repair`), or `patchelf --replace-needed {needed} "
                        f"{copy} {PurePosixPath(elf.path).name}` before packing")
            elif stem.removeprefix("lib") in wheel.options.bundled_libraries:
                out.add("unbundled-library",
                        f"{elf.path} NEEDs {needed} from the system; the matrix says "
                        f"{stem} must be bundled", wheel.fix("bundle", lib=needed))
    for name, path in bundled.items():  # ELF only: a dylib's or DLL's users are not read here
        if ".libs/" in path and ".so" in name and name not in needed_anywhere:
            out.add("bundled-unused", f"{path} is bundled but no shared object in the wheel "
                    "NEEDs it", "drop it, or fix the extension's NEEDED to point at it")


def check_abi3(wheel: WheelAudit, out: Collector) -> None:
    """An abi3 wheel: file suffixes, the floor against Requires-Python, abi3audit."""
    dist, requires_python = wheel.dist, wheel.requires_python
    floors = sorted({t.interpreter for t in dist.tags if t.abi == "abi3"})
    if not floors:
        return
    floor = min(floors, key=lambda i: int(i[3:]) if i[3:].isdigit() else 0)
    minor = int(floor[3:]) if floor.startswith("cp3") and floor[3:].isdigit() else 9
    for name in wheel.files.names:
        suffix = re.search(r"\.(cpython-\d+[^.]*)\.so$", name)
        if suffix:
            out.add("abi3-extension-suffix", f"tagged abi3 but {name} carries the "
                    f"version-specific suffix {suffix[1]}: only that CPython imports it",
                    f"{wheel.fix('abi3', minor=minor)} so the file is `*.abi3.so`, or tag the "
                    "wheel for that one Python")
    version = f"{floor[2]}.{floor[3:]}" if floor.startswith("cp") else ""
    try:
        spec = SpecifierSet(requires_python) if requires_python else None
    except InvalidSpecifier:
        spec = None
    if version and spec is not None:
        lower = [f"3.{m}" for m in range(0, int(floor[3:])) if f"3.{m}" in spec]
        if lower:
            out.add("abi3-floor-above-requires-python",
                    f"tagged {floor}-abi3 but Requires-Python is {requires_python}: Python "
                    f"{', '.join(lower)} get no wheel from it (the abi3 floor is the build "
                    "interpreter's version, not the package's minimum)",
                    f"{wheel.fix('abi3', minor=int(lower[0].split('.')[1]))}, or raise "
                    "Requires-Python")
    _run_abi3audit(wheel, minor, out)


def _run_abi3audit(wheel: WheelAudit, minor: int, out: Collector) -> None:
    dist = wheel.dist
    exe = tool("abi3audit")
    if exe is None:
        out.error("abi3audit-failed", "abi3audit is not installed", "pip install abi3audit")
        return
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        proc = subprocess.run([exe, "--report", "--output", str(report), str(dist.path)],
                              capture_output=True, text=True, check=False, timeout=300,
                              env={**os.environ, "NO_COLOR": "1", "TERM": "dumb"})
        text = report.read_text() if report.exists() else ""
    try:
        specs = json.loads(text)["specs"]
        results = [r for spec in specs.values() for r in spec.get("wheel", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        tail = " ".join((proc.stderr or proc.stdout).split())[-300:]
        out.error("abi3audit-failed", f"abi3audit gave no report (exit {proc.returncode}): "
                  f"{tail}", "run `abi3audit -v WHEEL` by hand")
        return
    for entry in results:
        result = entry.get("result", {})
        if result.get("non_abi3_symbols"):
            symbols = sorted(result["non_abi3_symbols"])
            out.add("abi3-violation", f"{entry.get('name')} uses CPython symbols outside the "
                    f"stable ABI: {', '.join(symbols[:6])}{' ...' if len(symbols) > 6 else ''}",
                    f"{wheel.fix('abi3', minor=minor)}, or tag the wheel for one Python "
                    "(cp3X-cp3X)")
        if not result.get("is_abi3_baseline_compatible", True):
            out.add("abi3-version-mismatch", f"{entry.get('name')} needs the stable ABI of "
                    f"Python {result.get('computed')} but is tagged for {result.get('baseline')}",
                    f"raise the abi3 tag to cp{str(result.get('computed')).replace('.', '')} "
                    "or avoid the newer API")


CHECKS: dict[str, WheelCheck] = {
    "elf": check_elf,
    "auditwheel": check_auditwheel,
    "needed": check_needed,
    "abi3": check_abi3,
}
