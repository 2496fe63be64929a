"""x86-64 instruction levels: which CPU an instruction or an ELF object needs.

Disassembly is iced-x86's (its per-instruction CPUID features); this module only maps those
features onto the x86-64 psABI levels (v1 baseline .. v4) and reads the level an object
declares in its GNU property note (pyelftools).  Two uses: naming the instruction a floor
cell died on (``classify``), and the audit's static evidence (``scan``), which is evidence,
not a verdict: fat libraries (GMP ``--enable-fat``, OpenSSL) carry code for newer CPUs that
they only run after asking the CPU.
"""

from __future__ import annotations

import bisect
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import iced_x86
from elftools.common.exceptions import ELFError
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

_FEATURE = {v: k for k, v in vars(iced_x86.CpuidFeature).items() if k.isupper()}
#: instructions every x86-64 CPU runs, or that older CPUs run as something harmless (hints
#: in NOP space: ENDBR64, PREFETCHW; multi-byte NOPs)
BASELINE = frozenset({
    "INTEL8086", "INTEL186", "INTEL286", "INTEL386", "INTEL486", "X64", "CMOV", "CX8", "FPU",
    "FPU287", "FPU387", "FXSR", "MMX", "SSE", "SSE2", "SYSCALL", "TSC", "CPUID", "PAUSE",
    "CLFSH", "SEP", "MULTIBYTENOP", "PREFETCHW", "PREFETCHWT1", "CET_IBT", "CET_SS", "RDPMC",
    "MSR", "MONITOR"})
LEVELS: dict[str, int] = {
    **dict.fromkeys(("CMPXCHG16B", "POPCNT", "SSE3", "SSSE3", "SSE4_1", "SSE4_2"), 2),
    **dict.fromkeys(("AVX", "AVX2", "BMI1", "BMI2", "F16C", "FMA", "LZCNT", "MOVBE", "XSAVE"),
                    3),
    **dict.fromkeys(("AVX512F", "AVX512BW", "AVX512CD", "AVX512DQ", "AVX512VL"), 4),
}
BEYOND = 5  # an extension no x86-64 level includes (ADX, AES-NI, SHA, ...)
#: run as BSF/BSR on CPUs without them (no SIGILL): compilers emit TZCNT for BSF on purpose
SILENT = frozenset({iced_x86.Mnemonic.TZCNT})


def level_name(level: int) -> str:
    """3 -> 'x86-64-v3'; BEYOND -> 'no x86-64 level'."""
    return f"x86-64-v{level}" if level < BEYOND else "no x86-64 level"


def feature_level(feature: str) -> int:
    """The lowest x86-64 level that includes an iced CPUID feature (BEYOND: none does)."""
    return 1 if feature in BASELINE else LEVELS.get(feature, BEYOND)


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """One decoded instruction and the CPU it needs."""

    address: int
    text: str  # GNU syntax, e.g. 'adcx %rax,%rax'
    extensions: tuple[str, ...]  # the features above the baseline, e.g. ('BMI2',)
    level: int  # 1..4, or BEYOND

    @property
    def needs(self) -> str:
        """'BMI2 (x86-64-v3)', 'ADX (in no x86-64 level)', 'baseline x86-64'."""
        if self.level == 1:
            return "baseline x86-64 (every x86-64 CPU has it)"
        where = "in no x86-64 level" if self.level == BEYOND else level_name(self.level)
        return f"{'+'.join(self.extensions)} ({where})"


_FORMATTER = iced_x86.Formatter(iced_x86.FormatterSyntax.GAS)


def _levels(ins: iced_x86.Instruction) -> tuple[tuple[str, ...], int]:
    names = [_FEATURE.get(f, str(f)) for f in ins.cpuid_features()]
    above = tuple(n for n in names if feature_level(n) > 1)
    return above, max((feature_level(n) for n in names), default=1)


def classify(code: bytes, address: int = 0) -> Instruction | None:
    """The first instruction in ``code`` (None when it does not decode)."""
    ins = iced_x86.Decoder(64, code, ip=address).decode()
    if ins.is_invalid:
        return None
    extensions, level = _levels(ins)
    return Instruction(address=address, text=_FORMATTER.format(ins), extensions=extensions,
                       level=level)


# ---------------------------------------------------------------- static evidence


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """What one x86-64 ELF object declares and contains, against a floor level."""

    declared: str | None  # the GNU property note's ISA level, None: declares none
    floor: int
    code_bytes: int
    above: dict[str, int] = field(default_factory=dict)  # extension -> instructions above floor
    examples: dict[str, list[str]] = field(default_factory=dict)  # extension -> 'sym+off: ins'
    highest: int = 1  # the highest level any instruction needs
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        """For reports."""
        return {"declared": self.declared, "floor": level_name(self.floor),
                "code_bytes": self.code_bytes, "highest": level_name(self.highest),
                "above_floor": dict(self.above), "examples": dict(self.examples),
                "seconds": round(self.seconds, 3)}


def declared_level(elf: ELFFile) -> str | None:
    """The x86 ISA level a GNU property note declares as needed (or used), if any."""
    best: int | None = None
    for section in elf.iter_sections():
        if section.name != ".note.gnu.property":
            continue
        for note in section.iter_notes():  # type: ignore[attr-defined]
            for prop in note["n_desc"] if note["n_type"] == "NT_GNU_PROPERTY_TYPE_0" else ():
                if prop.pr_type in ("GNU_PROPERTY_X86_ISA_1_NEEDED", 0xC0008002,
                                    "GNU_PROPERTY_X86_ISA_1_USED", 0xC0010002) and prop.pr_data:
                    best = max(best or 0, int(prop.pr_data).bit_length())
    return level_name(best) if best else None


def _symbols(elf: ELFFile) -> list[tuple[int, int, str]]:
    """Function symbols (address, size, name) by address (.symtab, else .dynsym)."""
    for name in (".symtab", ".dynsym"):
        table = elf.get_section_by_name(name)
        if isinstance(table, SymbolTableSection):
            found = sorted((s["st_value"], s["st_size"], s.name) for s in table.iter_symbols()
                           if s["st_info"]["type"] == "STT_FUNC" and s["st_value"])
            if found:
                return found
    return []


def _where(symbols: list[tuple[int, int, str]], address: int) -> str:
    """'function+0x12' when a function symbol covers the address, else ''."""
    i = bisect.bisect_right(symbols, (address, 1 << 64, "")) - 1
    if i >= 0 and symbols[i][0] <= address < symbols[i][0] + max(symbols[i][1], 1):
        start, _size, name = symbols[i]
        return f"{name}+{address - start:#x}"
    return ""


def _code_sections(elf: ELFFile) -> Iterator[tuple[int, bytes]]:
    for section in elf.iter_sections():
        if section["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and section["sh_type"] == "SHT_PROGBITS":
            yield section["sh_addr"], section.data()


def is_x86_64(data: bytes) -> bool:
    """An x86-64 ELF object."""
    return data[:4] == b"\x7fELF" and data[4] == 2 and data[18:20] == b"\x3e\x00"


def scan(data: bytes, floor: int = 1, *, examples: int = 3) -> Evidence:
    """Linear-sweep disassembly of an x86-64 ELF's code: instructions above ``floor``."""
    start = time.monotonic()
    elf = ELFFile(io.BytesIO(data))
    symbols = _symbols(elf)
    by_code: dict[int, tuple[tuple[str, ...], int]] = {}
    above: dict[str, int] = {}
    shown: dict[str, list[str]] = {}
    size, highest = 0, 1
    for address, code in _code_sections(elf):
        size += len(code)
        for ins in iced_x86.Decoder(64, code, ip=address):
            key = ins.code
            if key not in by_code:
                by_code[key] = ((), 1) if ins.mnemonic in SILENT else _levels(ins)
            extensions, level = by_code[key]
            if level <= floor or ins.is_invalid:
                continue
            highest = max(highest, level)
            name = "+".join(extensions) or "?"
            above[name] = above.get(name, 0) + 1
            if len(shown.setdefault(name, [])) < examples:
                at = _where(symbols, ins.ip) or f"{ins.ip:#x}"
                shown[name].append(f"{at}: {_FORMATTER.format(ins)}")
    return Evidence(declared=declared_level(elf), floor=floor, code_bytes=size, above=above,
                    examples=shown, highest=highest, seconds=time.monotonic() - start)


def file_offset(data: bytes, vaddr: int) -> int | None:
    """The file offset of a virtual address through the object's PT_LOAD segments."""
    try:
        elf = ELFFile(io.BytesIO(data))
        for seg in elf.iter_segments(type="PT_LOAD"):
            if seg["p_vaddr"] <= vaddr < seg["p_vaddr"] + seg["p_filesz"]:
                return int(vaddr - seg["p_vaddr"] + seg["p_offset"])
    except ELFError:
        return None
    return None


def symbol_at(data: bytes, vaddr: int) -> str:
    """'function+0x12' for an address in an ELF object ('' when no symbol covers it)."""
    try:
        return _where(_symbols(ELFFile(io.BytesIO(data))), vaddr)
    except ELFError:
        return ""
