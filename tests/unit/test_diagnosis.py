"""Known signatures -> the pitfall and its fix; unknown failures get no made-up diagnosis.

Every rule of harness.diagnosis.RULES has a case here (a test says so), so deleting or
breaking one fails; fixes are worded for the wheel's build backend."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import pytest

from harness import advice, diagnosis
from harness.checks import CODES, CheckCode, CheckResult, CheckStatus
from harness.diagnosis import RULES, explain
from harness.verdict import CellResult, Verdict
from harness.wheel import Audit, WheelInfo
from tests.unit.conftest import FACTS_311, PACKAGE, judge_one, make_wheel, passing_events

BULLSEYE_39 = {**FACTS_311, "version": "3.9.2", "version_info": [3, 9, 2], "glibc": "2.31"}
SETUPTOOLS = "setuptools (75.1.0)"
RUST_WORDS = re.compile(r"pyo3|maturin|cargo|#\[pymodule\]|rust", re.I)


def judged(wheel: WheelInfo | None = None, facts: dict[str, Any] | None = None) -> CellResult:
    """The cell as the host judges a passing probe run for ``wheel``."""
    return judge_one(passing_events(facts), wheel or make_wheel())


def failing(name: str, code: CheckCode, wheel: WheelInfo | None = None, *,
            verdict: Verdict = Verdict.FAIL, detail: str = "", **data: Any) -> CellResult:
    """A cell whose check ``name`` failed with ``code``, ``detail`` and ``data``."""
    cell = judged(wheel)
    bad = CheckResult(name=name, status=CheckStatus.FAIL, code=code, detail=detail, data=data)
    return dataclasses.replace(cell, checks=tuple(bad if c.name == name else c
                                                  for c in cell.checks), verdict=verdict)


def raised(kind: str, message: str, traceback: str = "") -> dict[str, Any]:
    """An import's exception, as the probe reports it."""
    return {"exception": {"type": kind, "message": message, "traceback": traceback}}


def lying_wheel(external: tuple[str, ...], generator: str = "maturin (1.16.0)") -> WheelInfo:
    audit = Audit(policy="linux_x86_64" if external else "manylinux_2_34_x86_64",
                  glibc=None if external else "2.34", external=external)
    return dataclasses.replace(make_wheel(generator=generator), audit=audit)


def without_libs(wheel: WheelInfo) -> WheelInfo:
    return dataclasses.replace(wheel, files=tuple(f for f in wheel.files if ".libs/" not in f))


#: one case per rule: (cell, wheel) -> the title it must give and words its advice must hold
Case = tuple[Callable[[str], tuple[CellResult, WheelInfo]], str, tuple[str, ...]]
CASES: dict[str, Case] = {
    "unclean": (lambda g: (failing("sterility", "sterility-leak", make_wheel(generator=g),
                                   verdict=Verdict.INVALID,
                                   detail="dlopen(libgmp.so.10) succeeded"),
                           make_wheel(generator=g)),
                "not clean", ("images/",)),
    "cpu-floor": (lambda g: (failing("import", "cpu-fault", make_wheel(generator=g),
                                     detail="cpu-floor: SIGILL at q_kangaroo/_q_kangaroo.abi3.so",
                                     cpu_fault={"file": "q_kangaroo/_q_kangaroo.abi3.so",
                                                "kind": "above-floor",
                                                "instruction": "vaddps %ymm0,%ymm1,%ymm2",
                                                "needs": "AVX", "offset": "0x1de83"}),
                             make_wheel(generator=g)),
                  "built for a newer CPU", ("vaddps", "target-cpu")),  # maturin: Rust
    "tags-missing": (lambda g: (judged(make_wheel("cp311-cp311-manylinux2014_x86_64",
                                                  generator=g)),
                                make_wheel("cp311-cp311-manylinux2014_x86_64", generator=g)),
                     "break the release promise", ("cp311",)),
    "tag-lie": (lambda g: (failing("tags", "tags-lie", lying_wheel(("libgmp.so.10",), g),
                                   detail="tagged manylinux2014_x86_64 but ..."),
                           lying_wheel(("libgmp.so.10",), g)),
                "libraries not bundled", ("libgmp.so.10", "auditwheel repair")),
    "tag-refused": (lambda g: (judged(make_wheel("cp39-abi3-manylinux_2_34_x86_64",
                                                 generator=g), BULLSEYE_39),
                               make_wheel("cp39-abi3-manylinux_2_34_x86_64", generator=g)),
                    "tag not accepted", ("manylinux_2_34", "glibc 2.31", "manylinux2014")),
    "pip-refused": (lambda g: (failing("install", "install-failed", make_wheel(generator=g),
                                       output="ERROR: q_kangaroo-1.0.0-cp311-cp311-manylinux"
                                              "2014_x86_64.whl is not a supported wheel on this "
                                              "platform."),
                               make_wheel("cp311-cp311-manylinux2014_x86_64", generator=g)),
                    "tag not accepted", ("cp311",)),
    "renamed": (lambda g: (failing("install", "install-failed", make_wheel(generator=g),
                                   output="ERROR: Wheel 'q-kangaroo' located at x.whl is "
                                          "invalid: metadata version 1.0.1 does not match "
                                          "filename"),
                           make_wheel(generator=g)), "file name and metadata", ("rename",)),
    "environment": (lambda g: (failing("import", "import-raised", make_wheel(generator=g),
                                       **raised("KeyError", "'MINGW_BIN'",
                                                "os.environ['MINGW_BIN']")),
                               make_wheel(generator=g)), "$MINGW_BIN", ("Guard it",)),
    "not-bundled": (lambda g: (failing("import", "import-raised", make_wheel(generator=g),
                                       **raised("ImportError", "libgmp.so.10: cannot open "
                                                "shared object file: No such file")),
                               make_wheel(bundled=False, generator=g)),
                    "libgmp was not bundled", ("libgmp.so.10", "auditwheel repair", "manylinux")),
    "dll": (lambda g: (failing("import", "import-raised", make_wheel(generator=g),
                               **raised("ImportError", "DLL load failed while importing "
                                        "_q_kangaroo: The specified module could not be found")),
                       without_libs(make_wheel(generator=g))),
            "DLL is not bundled", ("delvewheel", "_q_kangaroo")),
    "dylib": (lambda g: (failing("import", "import-raised", make_wheel(generator=g),
                                 **raised("ImportError", "dlopen(x.so, 2): Library not loaded: "
                                          "/opt/homebrew/opt/gmp/lib/libgmp.10.dylib")),
                         make_wheel(generator=g)), "dylib is not bundled", ("delocate",)),
    "pyinit": (lambda g: (failing("import", "import-raised", make_wheel(generator=g),
                                  **raised("ImportError", "dynamic module does not define module "
                                           "export function (PyInit__q_kangaroo)")),
                          make_wheel(pyinit="PyInit_q_kangaroo", generator=g)),
               "module name mismatch", ("PyInit__q_kangaroo", "PyInit_q_kangaroo")),
    "glibc": (lambda g: (failing("import", "import-extension-failed", make_wheel(generator=g),
                                 **raised("ImportError", "/lib/x86_64-linux-gnu/libc.so.6: "
                                          "version `GLIBC_2.34' not found")),
                         make_wheel(generator=g)), "newer glibc (2.34)", ("manylinux2014",)),
    "outside": (lambda g: (failing("import", "import-outside-site-packages",
                                   make_wheel(generator=g), detail="imported from outside "
                                   "site-packages (/v): /src/q_kangaroo/__init__.py"),
                           make_wheel(generator=g)), "not imported from the installed wheel",
                ("sys.path",)),
    "version": (lambda g: (failing("version", "version-mismatch", make_wheel(generator=g),
                                   expected="1.0.0", values={"metadata": "1.0.0",
                                                             "__version__": "1.0.0",
                                                             "version()": "0.9.1"}),
                           make_wheel(generator=g)), "stale extension", ("0.9.1",)),
    "provenance": (lambda g: (failing("provenance", "provenance-outside",
                                      make_wheel(generator=g), detail="loaded from outside the "
                                      "wheel: /usr/lib/libgmp.so.10"),
                              make_wheel(generator=g)), "outside the wheel", ("RPATH",)),
    "overflow": (lambda g: (failing("partition_gf", "check-wrong", make_wheel(generator=g),
                                    first_bad_index=417, bits_at_bad=65,
                                    max_bits_before_bad=64),
                            make_wheel(generator=g)), "past 2^64", ("417",)),
}


def _rule_of(cell: CellResult, wheel: WheelInfo) -> diagnosis.Rule | None:
    found = diagnosis.match(cell, wheel, PACKAGE)
    return found[0] if found is not None else None


@pytest.mark.parametrize("case", CASES)
def test_each_rule(case: str) -> None:
    make, title, words = CASES[case]
    cell, wheel = make("maturin (1.16.0)")
    d = explain(cell, wheel, PACKAGE).diagnosis
    assert d is not None and title in d.title, d
    for word in words:
        assert word in d.advice, (word, d.advice)


def test_every_rule_has_a_case_and_every_code_is_known() -> None:
    hit = [_rule_of(*make("maturin (1.16.0)")) for make, _, _ in CASES.values()]
    assert all(r is not None for r in hit)
    assert {id(r) for r in hit} == {id(r) for r in RULES}
    assert {c for r in RULES for c in r.codes} <= CODES


@pytest.mark.parametrize("case", CASES)
def test_setuptools_wheel_gets_no_rust_advice(case: str) -> None:
    """A gmpy2-like C extension built by setuptools: no PyO3/maturin/cargo words."""
    make, title, _ = CASES[case]
    cell, wheel = make(SETUPTOOLS)
    d = explain(cell, wheel, PACKAGE).diagnosis
    assert d is not None and title in d.title
    assert not RUST_WORDS.search(d.advice), d.advice


def test_abi3_fix_per_backend() -> None:
    wheel = make_wheel("cp311-abi3-manylinux2014_x86_64")
    cell = judged(wheel, BULLSEYE_39)
    words = {"maturin (1.16.0)": "abi3-py39", SETUPTOOLS: "py_limited_api",
             "meson": "limited_api: '3.9'", "scikit-build-core 0.10.7": "wheel.py-api",
             "hatchling 1.25.0": "stable ABI"}
    for generator, word in words.items():
        d = explain(cell, dataclasses.replace(wheel, generator=generator), PACKAGE).diagnosis
        assert d is not None and word in d.advice, (generator, d.advice)


def test_backend_from_generator_and_sdist() -> None:
    assert advice.backend_of("maturin (1.16.0)") == "maturin"
    assert advice.backend_of("bdist_wheel (0.43.0)") == "setuptools"
    assert advice.backend_of("setuptools (75.1.0)") == "setuptools"
    assert advice.backend_of("meson") == "meson-python"
    assert advice.backend_of("scikit-build-core 0.10.7") == "scikit-build-core"
    assert advice.backend_of("pdm-backend (2.4.3)") == "pdm-backend"
    assert advice.backend_of("flit 3.9.0") == "flit"
    assert advice.backend_of("setuptools (75.1.0)", advice.Source(rust=True)) == "setuptools-rust"
    assert advice.backend_of("", advice.Source(build_backend="mesonpy")) == "meson-python"
    assert advice.backend_of("") == "unknown"
    assert all("any" in texts for texts in advice.FIXES.values())


def test_unknown_failures_get_no_diagnosis() -> None:
    cell = failing("import", "import-raised", **raised("RuntimeError", "something new"))
    assert explain(cell, make_wheel(), PACKAGE).diagnosis is None


def test_harness_prose_is_not_matched() -> None:
    """A rule keys on codes: the harness's own words in a detail explain nothing."""
    cell = failing("provenance", "provenance-ok", detail="loaded from outside the wheel")
    assert explain(cell, make_wheel(), PACKAGE).diagnosis is None


@pytest.mark.parametrize(("values", "title"), [
    ({"metadata": "1.0.0", "__version__": "0.9.0", "version()": "1.0.0"}, "__version__"),
    ({"metadata": "1.0.0", "__version__": "1.0.0", "version()": "0.9.1"}, "stale extension"),
])
def test_version_mismatch_says_which_source_is_stale(values: dict[str, str],
                                                     title: str) -> None:
    cell = failing("version", "version-mismatch", expected="1.0.0", values=values)
    d = explain(cell, make_wheel(), PACKAGE).diagnosis
    assert d is not None and title in d.title


def test_an_early_wrong_value_is_not_called_overflow() -> None:
    cell = failing("partition_gf", "check-wrong", first_bad_index=3, bits_at_bad=2,
                   max_bits_before_bad=2)
    assert explain(cell, make_wheel(), PACKAGE).diagnosis is None


def test_signed_overflow_wording() -> None:
    cell = failing("partition_gf", "check-wrong", first_bad_index=406, bits_at_bad=64,
                   max_bits_before_bad=63)
    d = explain(cell, make_wheel(), PACKAGE).diagnosis
    assert d is not None and "signed 64-bit" in d.advice


def test_package_loading_the_system_library_itself() -> None:
    cell = failing("import", "import-raised", **raised(
        "OSError", "/usr/lib/x86_64-linux-gnu/libgmp.so.10: cannot open shared object file"))
    d = explain(cell, make_wheel(), PACKAGE).diagnosis
    assert d is not None and d.title == "the package loads the system's libgmp itself"


def test_bundled_copy_removed_after_repair() -> None:
    cell = failing("import", "import-raised", **raised(
        "ImportError", "libgmp-1a2b3c4d.so.10: cannot open shared object file: No such file"))
    d = explain(cell, without_libs(make_wheel()), PACKAGE).diagnosis
    assert d is not None and d.title == "the bundled libgmp is missing from the wheel"
