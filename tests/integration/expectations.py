"""What each fixture wheel must do in a cell: (failing check, diagnosis title fragment).

``None`` means PASS.  The same rules serve venv and container cells: a broken wheel must
fail the same way on every clean machine, depending only on the cell's Python and glibc.
"""

from __future__ import annotations

from typing import Any

Expectation = tuple[str, str] | None

REFUSED = ("install", "tag not accepted")  # no wheel fits: UNCOVERED, with pip's reason
PROMISE = ("tags", "break the release promise")

SAME_EVERYWHERE: dict[str, Expectation] = {
    "good": None,
    "nogmp": ("import", "libgmp was not bundled"),
    "badmodule": ("import", "module name mismatch"),
    "badversion": ("version", "__version__ does not match"),
    "staleso": ("version", "stale extension"),
    "mingwbin": ("import", "MINGW_BIN"),
    "overflow": ("partition_gf", "past 2^64"),
}
VARIANTS = (*SAME_EVERYWHERE, "noabi3", "abi3floor", "newglibc")


def expected(variant: str, python: tuple[int, int], glibc: tuple[int, int]) -> Expectation:
    """The expected outcome of ``variant`` on this Python and glibc."""
    if variant in SAME_EVERYWHERE:
        return SAME_EVERYWHERE[variant]
    if variant == "noabi3":  # cp311-cp311: only 3.11 takes it; there it breaks the promise
        return PROMISE if python == (3, 11) else REFUSED
    if variant == "abi3floor":  # cp311-abi3: refused below 3.11
        return PROMISE if python >= (3, 11) else REFUSED
    if variant == "newglibc":  # manylinux_2_34: refused where glibc < 2.34
        return PROMISE if glibc >= (2, 34) else REFUSED
    raise KeyError(variant)


def _pair(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def outcome(cell: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(verdict, the check the verdict is about, diagnosis title)."""
    bad = [c["name"] for c in cell["checks"] if c["status"] not in ("pass", "skip")]
    failed = next((n for n in bad if n != "tags"), bad[0] if bad else None)
    diagnosis = cell["diagnosis"]
    return cell["verdict"], failed, diagnosis["title"] if diagnosis else None


def assert_cells_match(variant: str, cells: dict[str, dict[str, Any]]) -> None:
    """Every cell's verdict, failing check and diagnosis are the expected ones."""
    problems = []
    for cell_id, cell in cells.items():
        interp = cell["interpreter"]
        assert interp, f"{cell_id}: {cell['reason']}"
        want = expected(variant, _pair(interp["version"]), _pair(interp["glibc"]))
        verdict, failed, title = outcome(cell)
        ok = verdict == "PASS" if want is None else (
            verdict == ("UNCOVERED" if want is REFUSED else "FAIL") and failed == want[0]
            and title is not None and want[1] in title)
        if not ok:
            problems.append(f"{cell_id}: want {want}, got {verdict} {failed} {title!r}: "
                            f"{cell['reason']}")
    assert not problems, "\n".join(problems)
