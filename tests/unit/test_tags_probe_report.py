"""Tag rules, the probe's own pure functions, and report formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from packaging.tags import parse_tag

from harness import probe, report, tags
from harness.verdict import ProbeRun, Verdict, judge
from tests.unit.conftest import FACTS_311, PACKAGE, ev_check, make_wheel, passing_events

P = [1, 1, 2, 3, 5, 7, 11, 15, 22, 30, 42, 56, 77, 101, 135, 176, 231, 297, 385, 490]


def test_manylinux_platforms_follow_glibc() -> None:
    bullseye = {**FACTS_311, "version_info": [3, 9, 2], "glibc": "2.31"}
    assert tags.compatible(parse_tag("cp39-abi3-manylinux2014_x86_64"), bullseye)
    assert not tags.compatible(parse_tag("cp39-abi3-manylinux_2_34_x86_64"), bullseye)
    assert not tags.compatible(parse_tag("cp311-abi3-manylinux2014_x86_64"), bullseye)
    assert not tags.compatible(parse_tag("cp311-cp311-manylinux2014_x86_64"), bullseye)
    assert tags.compatible(parse_tag("cp39-abi3-manylinux2014_x86_64"), FACTS_311)
    assert not tags.compatible(parse_tag("cp39-abi3-manylinux2014_aarch64"), FACTS_311)


def test_reference_partition_numbers() -> None:
    p = probe.partition_numbers(1000)
    assert p[:20] == P
    assert p[100] == 190569292
    assert p[405] < 2**63 <= p[406] and p[416] < 2**64 <= p[417]
    assert p[999] == 23127843459154899464880444632250


def test_compare_reports_first_wrong_term_and_magnitudes() -> None:
    expected = probe.partition_numbers(500)
    got = [v % 2**64 for v in expected]
    ok, detail, data = probe._compare(got, expected)
    assert not ok and detail.startswith("term 417:")
    assert data["bits_at_bad"] == 65 and data["max_bits_before_bad"] == 64
    assert probe._compare(expected, expected)[0]
    assert "got 3 terms" in probe._compare([1, 1, 2], expected)[1]


def test_host_itself_is_not_sterile_without_the_sandbox() -> None:
    """This host ships libgmp: the probe must say so (the reason cells need hiding)."""
    result = probe.sterility(["gmp"], ["MINGW_BIN"])
    assert result["ok"] is False
    assert any("libgmp" in p for p in result["problems"])


def test_probe_runs_on_its_own_from_source_and_reports_events(tmp_path: object) -> None:
    spec = {"mode": "checks", "package": {"import_name": "json", "distribution": "nope",
            "libraries": [], "forbidden_env": [], "version_from": [],
            "expected_version": "0", "checks": []}}
    source = Path(probe.__file__).read_text()
    out = subprocess.run([sys.executable, "-I", "-c", probe.BOOTSTRAP, source,
                          json.dumps(spec)], capture_output=True, text=True,
                         env={"PATH": os.defpath})
    lines = [json.loads(x[len(probe.MARKER):]) for x in out.stdout.splitlines()]
    assert lines[0]["event"] == "environment"
    assert (lines[1]["event"], lines[1]["name"], lines[1]["status"]) == ("check", "import", "fail")
    assert "outside site-packages" in lines[1]["detail"]  # json comes from the stdlib


def test_json_and_junit_reports(tmp_path: object) -> None:
    good = judge(ProbeRun(events=tuple(passing_events())), cell_id="a", kind="venv",
                 wheel=make_wheel(), package=PACKAGE)
    bad_events = [ev_check("import", status="fail", detail="ImportError: boom")
                  if e.get("name") == "import" else e for e in passing_events()]
    bad = judge(ProbeRun(events=tuple(bad_events)), cell_id="b", kind="venv",
                wheel=make_wheel(), package=PACKAGE)
    info = report.RunInfo(run_id="r", matrix="m.yaml", wheel=make_wheel(), started=0.0,
                          finished=1.0, interrupted=False, exit_code=1, selected=("a", "b"))
    paths = report.write(Path(str(tmp_path)), info, [good, bad])
    data = json.loads(paths["json"].read_text())
    assert data["wheel"]["sha256"] == "0" * 64
    assert data["summary"][Verdict.PASS.value] == 1 and data["summary"]["FAIL"] == 1
    assert data["cells"][0]["libraries_mapped"]["gmp"][0].endswith("libgmp-1a.so.10")
    root = ET.parse(paths["junit"]).getroot()
    suites = {s.get("name"): s for s in root}
    assert suites["a"].get("failures") == "0" and suites["a"].get("tests") == "8"
    failing = [c.get("name") for c in suites["b"] if c.find("failure") is not None]
    assert failing == ["import"]


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
    got = probe._normalise({1: (2, 3), "k": [(4, 5)], "g": (x for x in range(2))})
    assert got == {"1": [2, 3], "k": [[4, 5]], "g": [0, 1]}


def test_junit_text_is_always_well_formed_and_a_bad_cell_never_green(tmp_path: Path) -> None:
    nasty = "a\x00b\x1b[2Jc\udc80d"
    assert report.xml_text(nasty) == "a\ufffdb\ufffd[2Jc\ufffdd"
    forged = [*passing_events(), ev_check("import", detail=nasty)]
    cell = judge(ProbeRun(events=tuple(forged)), cell_id="f", kind="venv", wheel=make_wheel(),
                 package=PACKAGE)
    assert cell.verdict is Verdict.ERROR
    info = report.RunInfo(run_id="r", matrix="m", wheel=make_wheel(), started=0, finished=1,
                          interrupted=False, exit_code=2, selected=("f",))
    paths = report.write(tmp_path, info, [cell])
    suite = ET.parse(paths["junit"]).getroot()[0]
    assert suite.get("errors") == "1"
