"""Known signatures -> the pitfall and its fix; unknown failures get no made-up diagnosis."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from harness.checks import CheckResult, CheckStatus
from harness.diagnosis import explain
from harness.verdict import Verdict
from harness.wheel import WheelInfo
from tests.unit.conftest import FACTS_311, PACKAGE, judge_one, make_wheel, passing_events


def diagnose(name: str, wheel: WheelInfo | None = None, facts: dict[str, Any] | None = None,
             *, detail: str | None = None, **data: Any) -> Any:
    """The diagnosis of a cell whose check ``name`` failed with this detail and data (else
    as the host judged it)."""
    wheel = wheel or make_wheel()
    cell = judge_one(passing_events(facts), wheel)
    if detail is None:
        return explain(cell, wheel, PACKAGE).diagnosis
    failed = CheckResult(name=name, status=CheckStatus.FAIL, detail=detail, data=data)
    cell = dataclasses.replace(
        cell, checks=tuple(failed if c.name == name else c for c in cell.checks),
        verdict=Verdict.INVALID if name == "sterility" else Verdict.FAIL)
    return explain(cell, wheel, PACKAGE).diagnosis


def test_gmp_not_bundled_names_the_library_the_tag_lie_and_the_fix() -> None:
    d = diagnose("import", wheel=make_wheel(bundled=False),
                 detail="ImportError: libgmp.so.10: cannot open shared object file: No such "
                        "file or directory")
    assert d.title == "libgmp was not bundled into the wheel"
    assert "libgmp.so.10" in d.advice and "auditwheel repair" in d.advice
    assert "manylinux" in d.advice  # the tag promises what the wheel does not keep


def test_pyinit_mismatch_names_both_symbols() -> None:
    d = diagnose("import", wheel=make_wheel(pyinit="PyInit_q_kangaroo"),
                 detail="ImportError: dynamic module does not define module export function "
                        "(PyInit__q_kangaroo)")
    assert "PyInit__q_kangaroo" in d.advice and "PyInit_q_kangaroo" in d.advice
    assert "module-name" in d.advice


def test_tag_refused_names_tag_glibc_and_fix() -> None:
    facts = {**FACTS_311, "version": "3.9.2", "version_info": [3, 9, 2], "glibc": "2.31"}
    d = diagnose("install", wheel=make_wheel("cp39-abi3-manylinux_2_34_x86_64"), facts=facts)
    assert d.title == "wheel tag not accepted by this interpreter"
    assert "manylinux_2_34" in d.advice and "glibc 2.31" in d.advice
    assert "manylinux2014" in d.advice


def test_mingw_bin() -> None:
    d = diagnose("import", detail="KeyError: 'MINGW_BIN'")
    assert "MINGW_BIN" in d.title


@pytest.mark.parametrize(("values", "title"), [
    ({"metadata": "1.0.0", "__version__": "0.9.0", "version()": "1.0.0"}, "__version__"),
    ({"metadata": "1.0.0", "__version__": "1.0.0", "version()": "0.9.1"}, "stale extension"),
])
def test_version_mismatch_says_which_source_is_stale(values: dict[str, str],
                                                     title: str) -> None:
    d = diagnose("version", detail="expected 1.0.0", expected="1.0.0",
                 values=values)
    assert title in d.title


def test_overflow_right_below_2_64_wrong_above() -> None:
    d = diagnose("partition_gf", detail="term 417: got 5, expected 6",
                 first_bad_index=417, bits_at_bad=65, max_bits_before_bad=64)
    assert "2^64" in d.title and "417" in d.advice


def test_an_early_wrong_value_is_not_called_overflow() -> None:
    d = diagnose("partition_gf", detail="term 3: got 2, expected 3",
                 first_bad_index=3, bits_at_bad=2, max_bits_before_bad=2)
    assert d is None


def test_provenance_outside_the_wheel() -> None:
    d = diagnose("provenance",
                 detail="loaded from outside the wheel: /usr/lib/libgmp.so.10")
    assert "outside the wheel" in d.title


def test_unclean_environment_is_explained() -> None:
    d = diagnose("sterility", detail="dlopen(libgmp.so.10) succeeded")
    assert "not clean" in d.title and "images/" in d.advice


def test_package_loading_the_system_gmp_itself() -> None:
    d = diagnose("import", detail="OSError: /usr/lib/x86_64-linux-gnu/"
                 "libgmp.so.10: cannot open shared object file: No such file or directory")
    assert d.title == "the package loads the system's libgmp itself"


def test_bundled_copy_removed_after_repair() -> None:
    wheel = make_wheel()
    wheel = type(wheel)(**{**wheel.__dict__, "files": tuple(
        f for f in wheel.files if ".libs/" not in f)})
    d = diagnose("import", wheel=wheel, detail="ImportError: "
                 "libgmp-1a2b3c4d.so.10: cannot open shared object file: No such file")
    assert d.title == "the bundled libgmp is missing from the wheel"


def test_signed_overflow_wording() -> None:
    d = diagnose("partition_gf", detail="term 406: got -5, expected 6",
                 first_bad_index=406, bits_at_bad=64, max_bits_before_bad=63)
    assert "signed 64-bit" in d.advice
