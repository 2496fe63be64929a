"""Libraries the interpreter needs stay visible; the package is proven file by file; optional
parts of Python make an extension skipped-optional (issue 17)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import checks, gate, needs, probe
from harness.checks import CheckStatus, Context
from harness.environments.base import PROBE_SOURCE
from tests.unit.conftest import (
    FACTS_311,
    GMP_IN_WHEEL,
    PACKAGE,
    SITE,
    good_observations,
    make_wheel,
    observed,
)

PKG = dataclasses.replace(PACKAGE, bundled_libraries=("gmp", "z"))
CTX = Context(wheel=make_wheel(), package=PKG, facts=FACTS_311)
EXT = f"{SITE}/q_kangaroo/_q_kangaroo.abi3.so"
Z_IN_WHEEL = f"{SITE}/q_kangaroo.libs/libz-7e2a72b4.so.1"
SYSTEM_Z = "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13"


def provenance(needed: list[str], mapped: list[str], *, loads: list[list[str]] | None = None,
               kept: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """A provenance observation: the extension (NEEDing ``needed``) and ``mapped``."""
    in_wheel = [p for p in [EXT, *mapped] if p.startswith(SITE)]
    sonames = {GMP_IN_WHEEL: "libgmp-1a2b3c4d.so.10", Z_IN_WHEEL: "libz-7e2a72b4.so.1",
               SYSTEM_Z: "libz.so.1"}
    return observed("provenance", platform="linux", mapped=["/usr/bin/python3", EXT, *mapped],
                    loader_log=[], loads=loads or [],
                    sonames={p: n for p, n in sonames.items() if p in mapped},
                    in_record=in_wheel, package_elf={EXT: {"needed": needed}},
                    interpreter_needs=kept or {})


def test_a_bundled_copy_beside_the_interpreters_own_passes_per_file() -> None:
    obs = provenance(["libgmp-1a2b3c4d.so.10", "libz-7e2a72b4.so.1", "libc.so.6"],
                     [SYSTEM_Z, GMP_IN_WHEEL, Z_IN_WHEEL], kept={"z": [SYSTEM_Z]})
    result = checks.provenance(obs, CTX)
    assert result.status is CheckStatus.PASS, result.detail
    assert {r["path"] for r in result.data["resolutions"]} == {GMP_IN_WHEEL, Z_IN_WHEEL}
    assert "resolved every bundled library inside the wheel" in result.detail


def test_a_bundled_name_reused_from_the_system_copy_fails() -> None:
    obs = provenance(["libgmp-1a2b3c4d.so.10", "libz.so.1"], [SYSTEM_Z, GMP_IN_WHEEL],
                     kept={"z": [SYSTEM_Z]})
    result = checks.provenance(obs, CTX)
    assert result.status is CheckStatus.FAIL
    assert result.detail == (f"_q_kangaroo.abi3.so NEEDs libz.so.1, resolved to {SYSTEM_Z}, "
                             "outside the wheel")


def test_the_loader_log_decides_which_copy_a_file_got() -> None:
    obs = provenance(["libz.so.1"], [SYSTEM_Z, Z_IN_WHEEL], kept={"z": [SYSTEM_Z]},
                     loads=[[EXT, "libz.so.1", Z_IN_WHEEL]])
    obs["sonames"][Z_IN_WHEEL] = "libz.so.1"
    assert checks.provenance(obs, CTX).status is CheckStatus.PASS
    obs["loads"] = [[EXT, "libz.so.1", SYSTEM_Z]]
    assert checks.provenance(obs, CTX).status is CheckStatus.FAIL


def test_a_hidden_library_mapped_from_outside_still_fails() -> None:
    obs = provenance(["libc.so.6"], ["/usr/lib/libgmp.so.10", SYSTEM_Z], kept={"z": [SYSTEM_Z]})
    result = checks.provenance(obs, CTX)
    assert result.status is CheckStatus.FAIL
    assert result.detail == "loaded from outside the wheel: /usr/lib/libgmp.so.10"


def test_sterility_keeps_what_the_interpreter_needs_and_nothing_else() -> None:
    reachable = {"find_library": "libz.so.1", "ldconfig": [], "dlopen": [], "files": [SYSTEM_Z]}
    obs = observed("sterility", env_set=[], evidence={
        "z": reachable, "gmp": {**reachable, "find_library": None, "files": ["/lib/libgmp.so"]}},
        interpreter={"needs": {"z": [SYSTEM_Z]}})
    result = checks.sterility(obs, CTX)
    assert result.status is CheckStatus.FAIL
    assert result.data["problems"] == ["/lib/libgmp.so exists in a library search directory"]
    del obs["evidence"]["gmp"]
    clean = checks.sterility(obs, CTX)
    assert clean.status is CheckStatus.PASS
    assert clean.detail == f"libz stays visible: the interpreter needs {SYSTEM_Z}"


TK_FAILS = {"module": "q_kangaroo._tk", "exception": {
    "type": "ImportError", "message": "libtk8.6.so: cannot open shared object file",
    "traceback": ""}, "optional": {"module": "tkinter", "reason": "ImportError: libtk8.6.so: "
                                   "cannot open shared object file",
                                   "missing_libraries": ["libtk8.6.so"]}}


def test_an_extension_missing_an_optional_part_of_python_is_skipped_optional() -> None:
    base = good_observations()["import"]
    obs = dict(base, extensions=[*base["extensions"], TK_FAILS])
    result = checks.import_(obs, CTX)
    assert result.status is CheckStatus.PASS
    assert result.data["notes"] == [
        "q_kangaroo._tk skipped-optional: this Python's tkinter does not import (ImportError: "
        "libtk8.6.so: cannot open shared object file; libtk8.6.so not found)"]
    required = Context(wheel=CTX.wheel, facts=FACTS_311, package=dataclasses.replace(
        PKG, require_extensions=("q_kangaroo._*",)))
    assert checks.import_(obs, required).status is CheckStatus.ERROR
    broken = dict(TK_FAILS, optional=None)
    assert checks.import_(dict(base, extensions=[broken]), CTX).status is CheckStatus.FAIL


def _probe_needs(python: str, libraries: list[str]) -> dict[str, Any]:
    spec = json.dumps({"mode": "needs", "libraries": libraries})
    out = subprocess.run([python, "-I", "-S", "-c", probe.BOOTSTRAP, PROBE_SOURCE, spec],
                         capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith(probe.MARKER))
    return dict(json.loads(line[len(probe.MARKER):]))


def test_the_probe_finds_what_this_interpreter_needs() -> None:
    """Real: this Python's zlib needs libz (or has it built in); nothing needs libgmp."""
    event = _probe_needs(sys.executable, ["z", "gmp", "nosuchlibrary"])
    assert "gmp" not in event["needs"] and "nosuchlibrary" not in event["needs"]
    split = needs.split(("gmp", "z", "nosuchlibrary"), [Path(sys.executable)])
    assert split.hidden[0] == "gmp" and "nosuchlibrary" in split.hidden
    assert ("z" in split.kept) == ("z" in event["needs"])


def test_ldd_parses_the_closure_and_missing_names(tmp_path: Path) -> None:
    closure, error = probe.ldd([sys.executable])
    assert error == "" and any(n.startswith("libc.so") for n in closure[sys.executable])
    dyn = probe.elf_dynamic(os.path.realpath(sys.executable))
    assert dyn is not None and "libc.so.6" in dyn["needed"]
    text = tmp_path / "not-elf"
    text.write_text("x")
    assert probe.elf_dynamic(str(text)) is None


def test_the_gate_blames_shadowing_only_where_a_file_of_the_package_resolved_outside() -> None:
    cell: dict[str, Any] = {"id": "venv-py3.12", "checks": [
        {"name": "import", "status": "pass"},
        {"name": "provenance", "status": "pass", "data": {
            "platform": "linux", "mapped": [SYSTEM_Z, Z_IN_WHEEL], "loader_log": [],
            "sonames": {}, "in_record": [Z_IN_WHEEL], "package_elf": {EXT: {}},
            "resolutions": [{"file": EXT, "needed": "libz-7e2a72b4.so.1", "path": Z_IN_WHEEL,
                             "how": "loaded", "inside": True}]}}]}
    seen = gate.observation(cell)
    assert seen is not None and seen.shadowing("libz-7e2a72b4.so.1") == []
    cell["checks"][1]["data"]["resolutions"][0].update(path=SYSTEM_Z, inside=False,
                                                       needed="libz.so.1")
    seen = gate.observation(cell)
    assert seen is not None
    assert seen.shadowing("libz.so.1") == [f"_q_kangaroo.abi3.so -> {SYSTEM_Z}"]


@pytest.mark.parametrize("source, value", [("__version__", "1.0"), ("version()", "1.0"),
                                           ("meta.version", "2.0"), ("meta.get()", "2.0")])
def test_dotted_version_from(source: str, value: str) -> None:
    import types

    module = types.SimpleNamespace(__version__="1.0", version=lambda: "1.0",
                                   meta=types.SimpleNamespace(version="2.0", get=lambda: "2.0"))
    assert probe._version_value(module, source) == value


def test_a_value_differing_only_in_type_is_the_matrixs_error() -> None:
    ctx = Context(wheel=CTX.wheel, facts=FACTS_311, package=PACKAGE)
    result = checks.declared(observed("partition_gf", got="2", expected=2), ctx)
    assert result.status is CheckStatus.ERROR
    assert "gave '2' (str), expected 2 (int): the values differ only in type" in result.detail
    listed = checks.declared(observed("partition_gf", got=[1, "2"], expected=[1, 2]), ctx)
    assert listed.status is CheckStatus.ERROR
    wrong = checks.declared(observed("partition_gf", got=[1, 3], expected=[1, 2]), ctx)
    assert wrong.status is CheckStatus.FAIL


def test_an_exception_inside_the_reference_module_is_the_matrixs() -> None:
    namespace: dict[str, Any] = {}
    exec(compile("def f():\n    return 1 / 0\n", "ref.py", "exec"), namespace)
    try:
        eval("f()", namespace)
    except ZeroDivisionError as exc:
        assert probe._raised_in_expression(exc, "ref.py")
        assert not probe._raised_in_expression(exc, "")
    try:
        eval("undefined_name", {})
    except NameError as exc:
        assert probe._raised_in_expression(exc)


def test_advice_names_the_libs_directory_as_auditwheel_does() -> None:
    import types

    from harness import diagnosis

    wheel = dataclasses.replace(make_wheel(), path=Path(
        "/w/python_flint-0.7.1-cp312-cp312-manylinux_2_17_x86_64.whl"))
    ctx: Any = types.SimpleNamespace(wheel=wheel, package=dataclasses.replace(
        PACKAGE, import_name="flint"))
    assert diagnosis._auditwheel_libs(ctx) == "python_flint.libs"


def test_one_finding_per_cause() -> None:
    unbundled = [gate.Issue(source="audit", code="unbundled-library", severity="blocker",
                            file="f.whl", fix="repair", message=f"flint/{m}.so NEEDs "
                            "libgmp.so.10 from the system; the matrix says libgmp must be "
                            "bundled") for m in ("_a", "_b", "_c")]
    other_lib = dataclasses.replace(unbundled[0], message="flint/_a.so NEEDs libflint.so.19 "
                                    "from the system")
    cell = [gate.Issue(source="cell", code="cell-fail", severity="blocker", file="f.whl",
                       fix="same advice", cells=(c,), message=f"{c}: FAIL: provenance: x")
            for c in ("venv-py3.12", "venv-py3.9")]
    in_a_library = dataclasses.replace(unbundled[0], message="flint.libs/libflint-1a2b3c4d.so"
                                       ".19 NEEDs libgmp.so.10 from the system; the matrix "
                                       "says libgmp must be bundled")
    unbundled.append(in_a_library)
    out = gate.grouped([*unbundled, other_lib, *cell])
    assert len(out) == 3
    assert out[0].message.endswith("(the same in 3 more: flint/_b.so, flint/_c.so, "
                                   "flint.libs/libflint-1a2b3c4d.so.19)")
    assert out[1] == other_lib
    assert out[2].message == "venv-py3.12, venv-py3.9: FAIL: provenance: x"
    assert out[2].cells == ("venv-py3.12", "venv-py3.9")


def test_coverage_words_name_os_and_free_threading() -> None:
    from packaging.tags import parse_tag

    ft = gate._python_promises(parse_tag("cp313-cp313t-manylinux_2_17_x86_64"))
    assert [gate._python_words(p) for p in ft] == ["free-threaded CPython 3.13t"]
    assert gate._python_gaps(ft, {(3, 13)}) == [
        "free-threaded CPython 3.13t (no free-threaded cell; a CPython 3.13 cell cannot "
        "install it)"]
    assert gate._python_gaps(ft, set(), {(3, 13)}) == []
    assert gate._os_words("win_amd64") == "Windows x86-64 (win_amd64)"
    assert gate._os_words("macosx_11_0_arm64") == "macOS ≥ 11.0 arm64 (macosx_11_0_arm64)"
