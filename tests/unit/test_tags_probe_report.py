"""Tag rules, the probe's own pure functions, and report formats."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from packaging.tags import parse_tag

from harness import checks, probe, report, tags
from harness.verdict import Verdict
from tests.unit.conftest import (
    FACTS_311,
    P20,
    PACKAGE,
    judge_one,
    make_wheel,
    observed,
    passing_events,
    release_of,
)

ROOT = Path(__file__).resolve().parents[2]


def _reference() -> Any:
    """q_kangaroo's reference module, which ships beside matrix.yaml."""
    spec = importlib.util.spec_from_file_location("reference", ROOT / "q_kangaroo_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_manylinux_platforms_follow_glibc() -> None:
    bullseye = {**FACTS_311, "version_info": [3, 9, 2], "glibc": "2.31"}
    assert tags.compatible(parse_tag("cp39-abi3-manylinux2014_x86_64"), bullseye)
    assert not tags.compatible(parse_tag("cp39-abi3-manylinux_2_34_x86_64"), bullseye)
    assert not tags.compatible(parse_tag("cp311-abi3-manylinux2014_x86_64"), bullseye)
    assert not tags.compatible(parse_tag("cp311-cp311-manylinux2014_x86_64"), bullseye)
    assert tags.compatible(parse_tag("cp39-abi3-manylinux2014_x86_64"), FACTS_311)
    assert not tags.compatible(parse_tag("cp39-abi3-manylinux2014_aarch64"), FACTS_311)


def test_platform_tag_promises_and_arches() -> None:
    assert tags.promised_glibc("manylinux2014_x86_64") == (2, 17)
    assert tags.promised_glibc("manylinux_2_28_aarch64") == (2, 28)
    assert tags.promised_musl("musllinux_1_2_x86_64") == (1, 2)
    assert tags.promised_musl("manylinux_2_28_x86_64") is None
    arches = {p: tags.linux_arch(p) for p in ("manylinux1_i686", "manylinux2014_aarch64",
              "manylinux_2_17_ppc64le", "musllinux_1_1_x86_64", "linux_armv7l", "win_amd64")}
    assert arches == {"manylinux1_i686": "i686", "manylinux2014_aarch64": "aarch64",
                      "manylinux_2_17_ppc64le": "ppc64le", "musllinux_1_1_x86_64": "x86_64",
                      "linux_armv7l": "armv7l", "win_amd64": None}


def test_reference_partition_numbers() -> None:
    p = _reference().partition_numbers(1000)
    assert p[:20] == P20
    assert p[100] == 190569292
    assert p[405] < 2**63 <= p[406] and p[416] < 2**64 <= p[417]
    assert p[999] == 23127843459154899464880444632250


def test_compare_reports_first_wrong_term_and_magnitudes() -> None:
    expected = _reference().partition_numbers(500)
    got = [v % 2**64 for v in expected]
    ok, detail, data = checks.compare(got, expected)
    assert not ok and detail.startswith("term 417:")
    assert data["bits_at_bad"] == 65 and data["max_bits_before_bad"] == 64
    assert checks.compare(expected, expected)[0]
    assert "got 3 terms" in checks.compare([1, 1, 2], expected)[1]


def test_host_itself_is_not_sterile_without_the_sandbox() -> None:
    """This host ships libgmp: the probe must say so (the reason cells need hiding)."""
    evidence = probe.sterility(["gmp"], ["MINGW_BIN"])
    result = checks.sterility(observed("sterility", **evidence), None)  # type: ignore[arg-type]
    assert result.status is checks.CheckStatus.FAIL
    assert "libgmp" in result.detail


def test_probe_runs_on_its_own_from_source_and_reports_events(tmp_path: object) -> None:
    spec = {"mode": "checks", "package": {"import_name": "json", "distribution": "nope",
            "libraries": [], "forbidden_env": [], "version_from": [],
            "expected_version": "0", "checks": []}}
    source = Path(probe.__file__).read_text()
    out = subprocess.run([sys.executable, "-I", "-c", probe.BOOTSTRAP, source,
                          json.dumps(spec)], capture_output=True, text=True,
                         env={"PATH": os.defpath})
    lines = [json.loads(x[len(probe.MARKER):]) for x in out.stdout.splitlines()]
    assert [e["event"] for e in lines[:3]] == ["environment", "started", "observed"]
    assert lines[2]["step"] == "import" and "status" not in lines[2]  # observations only
    ctx = checks.Context(wheel=make_wheel(), facts={}, package=dataclasses.replace(
        PACKAGE, import_name="json"))
    result = checks.import_(lines[2], ctx)
    assert result.status is checks.CheckStatus.FAIL
    assert "outside site-packages" in result.detail  # json comes from the stdlib


def test_json_and_junit_reports(tmp_path: object) -> None:
    good = judge_one(passing_events(), cell_id="a")
    bad_events = passing_events(**{"import": observed("import", exception={
        "type": "ImportError", "message": "boom", "traceback": ""})})
    bad = judge_one(bad_events, cell_id="b")
    info = report.RunInfo(run_id="r", matrix="m.yaml", release=release_of(make_wheel()),
                          started=0.0,
                          finished=1.0, interrupted=False, exit_code=1, selected=("a", "b"))
    paths = report.write(Path(str(tmp_path)), info, [good, bad])
    data = json.loads(paths["json"].read_text())
    assert data["wheel"]["sha256"] == "0" * 64
    assert data["summary"][Verdict.PASS.value] == 1 and data["summary"]["FAIL"] == 1
    assert data["cells"][0]["libraries_mapped"]["gmp"][0].endswith("libgmp-1a2b3c4d.so.10")
    assert data["cells"][0]["checks"][0]["status"] == "pass"
    root = ET.parse(paths["junit"]).getroot()
    suites = {s.get("name"): s for s in root}
    assert suites["a"].get("failures") == "0" and suites["a"].get("tests") == "8"
    failing = [c.get("name") for c in suites["b"] if c.find("failure") is not None]
    assert failing == ["import"]


def test_musl_cells_accept_musllinux_tags() -> None:
    alpine = {**FACTS_311, "glibc": "", "musl": "1.2.4"}
    assert tags.compatible(parse_tag("cp39-abi3-musllinux_1_2_x86_64"), alpine)
    assert tags.compatible(parse_tag("cp39-abi3-musllinux_1_1_x86_64"), alpine)
    assert not tags.compatible(parse_tag("cp39-abi3-manylinux2014_x86_64"), alpine)
    assert not tags.compatible(parse_tag("cp39-abi3-musllinux_1_2_x86_64"), FACTS_311)
    assert "musl 1.2.4" in tags.describe(alpine)


def test_glibc_a_manylinux_tag_promises() -> None:
    assert tags.promised_glibc("manylinux2014_x86_64") == (2, 17)
    assert tags.promised_glibc("manylinux1_i686") == (2, 5)
    assert tags.promised_glibc("manylinux_2_34_aarch64") == (2, 34)
    assert tags.promised_glibc("musllinux_1_2_x86_64") is None
    assert tags.promised_glibc("linux_x86_64") is None
    assert tags.manylinux_arch("manylinux2010_x86_64") == "x86_64"
    assert tags.manylinux_arch("manylinux_2_17_aarch64") == "aarch64"
    assert tags.manylinux_platforms("x86_64", "2.17")[:3] == [
        "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_16_x86_64"]
    assert tags.manylinux_platforms("aarch64", "2.17") == [
        "manylinux_2_17_aarch64", "manylinux2014_aarch64"]  # packaging: 2.17 is arm's floor


def test_library_names_are_matched_one_way() -> None:
    for name in ("libgmp.so.10", "/usr/lib/libgmp.so", "libgmp-1a2b3c4d.so.10", "libgmp.a"):
        assert probe.is_library(name, "gmp"), name
    for name in ("libgmpxx.so.4", "libgmp10.so", "gmp.so", "libmpfr.so.6", ""):
        assert not probe.is_library(name, "gmp"), name


def test_only_shared_objects_with_pyinit_are_extension_modules() -> None:
    import dataclasses

    from harness.wheel import ElfFacts

    wheel = make_wheel()
    helper = ElfFacts(path="q_kangaroo/libqkhelper.so", needed=(), rpath=(), runpath=(),
                      pyinit=())
    misnamed = ElfFacts(path="q_kangaroo/_fast.abi3.so", needed=(), rpath=(), runpath=(),
                        pyinit=("PyInit_fast",))
    wheel = dataclasses.replace(wheel, elf=(*wheel.elf, helper, misnamed))
    assert wheel.extension_modules() == ["q_kangaroo._fast", "q_kangaroo._q_kangaroo"]


def test_values_are_normalised_deeply_like_yaml() -> None:
    from fractions import Fraction

    got = probe._normalise({1: (2, 3), "k": [(4, 5)], "g": (x for x in range(2))})
    assert got == {"1": [2, 3], "k": [[4, 5]], "g": [0, 1]}
    assert probe._normalise([Fraction(3, 1), True]) == [3.0, True]


def test_junit_text_is_always_well_formed_and_a_bad_cell_never_green(tmp_path: Path) -> None:
    nasty = "a\x00b\x1b[2Jc\udc80d"
    assert report.xml_text(nasty) == "a\ufffdb\ufffd[2Jc\ufffdd"
    forged = [*passing_events(), observed("import", exception={
        "type": "ImportError", "message": nasty, "traceback": ""})]
    cell = judge_one(forged, cell_id="f")
    assert cell.verdict is Verdict.ERROR
    info = report.RunInfo(run_id="r", matrix="m", release=release_of(make_wheel()),
                          started=0, finished=1,
                          interrupted=False, exit_code=2, selected=("f",))
    paths = report.write(tmp_path, info, [cell])
    suite = ET.parse(paths["junit"]).getroot()[0]
    assert suite.get("errors") == "1"


def test_manylinux_walk_matches_packaging_on_this_host() -> None:
    """The walk for another machine equals packaging's own for this one (public sys_tags)."""
    import platform

    from packaging.tags import sys_tags
    glibc = platform.libc_ver()[1]
    ours = tags.manylinux_platforms("x86_64", glibc)
    theirs = list(dict.fromkeys(t.platform for t in sys_tags()
                                if t.platform.startswith("manylinux")))
    assert platform.machine() == "x86_64" and glibc and ours == theirs
