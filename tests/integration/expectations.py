"""What each fixture wheel must do in each cell: (failing check, diagnosis title fragment).

``None`` means PASS.  Python versions are keys; the same table serves venv and container
cells, because a broken wheel must fail the same way on every clean machine.
"""

from __future__ import annotations

PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")

Expectation = tuple[str, str] | None


def _all(check: str, title: str) -> dict[str, Expectation]:
    return dict.fromkeys(PYTHONS, (check, title))


EXPECTED: dict[str, dict[str, Expectation]] = {
    "good": dict.fromkeys(PYTHONS, None),
    "nogmp": _all("import", "libgmp was not bundled"),
    "badmodule": _all("import", "module name mismatch"),
    "badversion": _all("version", "__version__ does not match"),
    "staleso": _all("version", "stale extension"),
    "mingwbin": _all("import", "MINGW_BIN"),
    "overflow": _all("partition_gf", "past 2^64"),
    # cp311-cp311: pip refuses it on every other Python; on 3.11 it breaks the abi3 promise.
    "noabi3": {**_all("install", "tag not accepted"),
               "3.11": ("tags", "break the release promise")},
    # cp311-abi3: refused below 3.11; installs on 3.11+ but breaks the cp39 floor promise.
    "abi3floor": {**dict.fromkeys(("3.9", "3.10"), ("install", "tag not accepted")),
                  **dict.fromkeys(("3.11", "3.12", "3.13"),
                                  ("tags", "break the release promise"))},
}


def python_of(cell: dict[str, object]) -> str:
    """'3.12' from the interpreter the cell reported."""
    interp = cell["interpreter"]
    assert isinstance(interp, dict), cell["reason"]
    return ".".join(str(interp["version"]).split(".")[:2])


def assert_cells_match(variant: str, cells: dict[str, dict[str, object]]) -> None:
    """Every cell's verdict, failing check and diagnosis are the expected ones."""
    problems = []
    for cell_id, cell in cells.items():
        want = EXPECTED[variant][python_of(cell)]
        checks = cell["checks"]
        assert isinstance(checks, list)
        failed = next((c["name"] for c in checks if c["status"] not in ("pass", "skip")
                       and c["name"] != "tags"), None) or next(
            (c["name"] for c in checks if c["status"] not in ("pass", "skip")), None)
        diag = cell["diagnosis"]
        title = diag["title"] if isinstance(diag, dict) else None
        if want is None:
            ok = cell["verdict"] == "PASS"
        else:
            ok = (cell["verdict"] == "FAIL" and failed == want[0]
                  and title is not None and want[1] in title)
        if not ok:
            problems.append(f"{cell_id}: want {want}, got {cell['verdict']} {failed} "
                            f"{title!r}: {cell['reason']}")
    assert not problems, "\n".join(problems)
