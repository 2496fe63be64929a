"""Judging a cell of a release set: which file the installer took, pip's pick, uncovered
cells, requirements (fakes of the probe's install observation, real picking rules)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from harness.checks import CheckStatus
from harness.verdict import ProbeRun, Verdict, judge
from harness.wheel import WheelInfo
from tests.unit.conftest import (
    FACTS_311,
    PACKAGE,
    install_observation,
    make_wheel,
    observed,
    passing_events,
    release_of,
)

ABI3 = dataclasses.replace(make_wheel(), sha256="a" * 64)
CP311 = dataclasses.replace(make_wheel("cp311-cp311-manylinux_2_17_x86_64"), sha256="b" * 64)
CP312 = dataclasses.replace(make_wheel("cp312-cp312-manylinux_2_17_x86_64"), sha256="c" * 64)
NO_TAGS = dataclasses.replace(PACKAGE, wheel_tags=())


AFTER_INSTALL = ("import", "version", "partition_gf", "partition_gf_small", "provenance", "exit")


def cell(install: dict[str, Any], *wheels: WheelInfo, sdist: Path | None = None,
         package: Any = NO_TAGS, facts: dict[str, Any] | None = None) -> Any:
    """Judge a cell of this set; after a failed install the probe observes nothing more."""
    after = dict.fromkeys(AFTER_INSTALL) if install.get("returncode") else {}
    return judge(ProbeRun(events=tuple(passing_events(facts, install=install, **after))),
                 cell_id="c", kind="venv", release=release_of(*wheels, sdist=sdist),
                 package=package)


def test_the_installers_pick_equal_to_pips_passes_and_is_reported() -> None:
    result = cell(install_observation(CP311, ABI3, CP311), ABI3, CP311)
    assert result.verdict is Verdict.PASS, result.reason
    assert (result.artifact_file, result.artifact_sha256) == (CP311.filename, "b" * 64)
    assert result.pick is not None and result.pick.file == CP311.filename
    assert result.pick.tag == "cp311-cp311-manylinux_2_17_x86_64"


def test_an_installer_that_picks_another_file_than_pip_is_an_error_naming_both() -> None:
    result = cell(install_observation(ABI3, ABI3, CP311), ABI3, CP311)
    assert result.verdict is Verdict.ERROR
    assert f"the cell's installer picked {ABI3.filename}" in result.reason
    assert f"pip's tag priority picks {CP311.filename}" in result.reason


def test_not_knowing_which_file_was_installed_is_an_error_never_a_pass() -> None:
    for matches in ([], [ABI3.filename, CP311.filename]):
        obs = {**install_observation(CP311, ABI3, CP311), "installed": None, "matches": matches}
        result = cell(obs, ABI3, CP311)
        assert result.verdict is Verdict.ERROR
        assert "could not tell which wheel of the set" in result.reason


def test_a_staged_file_with_another_sha256_is_an_error() -> None:
    obs = install_observation(CP311, ABI3, CP311)
    obs["staged"] = {**obs["staged"], ABI3.filename: "f" * 64}
    result = cell(obs, ABI3, CP311)
    assert result.verdict is Verdict.ERROR and ABI3.filename in result.reason


def test_no_wheel_fits_is_uncovered_with_the_fallback_not_a_fail(tmp_path: Path) -> None:
    failed = observed("install", returncode=1, output="No solution found", staged={
        CP312.filename: CP312.sha256}, installed=None, matches=[])
    result = cell(failed, CP312)
    assert result.verdict is Verdict.UNCOVERED
    assert result.pick is not None and not result.pick.covered and result.artifact_file is None
    assert "release has no sdist" in result.reason and "fails there" in result.reason
    statuses = {c.name: c.status for c in result.checks}
    assert statuses["install"] is statuses["import"] is CheckStatus.NOT_RUN
    assert statuses["sterility"] is CheckStatus.PASS
    sdist = tmp_path / "q_kangaroo-1.0.0.tar.gz"
    sdist.write_bytes(b"")  # unreadable: the fallback still names it
    assert "pip builds the sdist q_kangaroo-1.0.0.tar.gz from source (unproven: no cell built " \
        "it)" in cell(failed, CP312, sdist=sdist).reason


def test_a_covered_cell_whose_install_failed_is_a_fail() -> None:
    failed = {**install_observation(CP311, CP311), "returncode": 1, "installed": None,
              "output": "bad zip"}
    result = cell(failed, CP311)
    assert result.verdict is Verdict.FAIL and "bad zip" in result.reason


def test_requirements_without_a_wheelhouse_are_an_error_naming_them() -> None:
    needing = dataclasses.replace(CP311, requires_dist=(
        "tinydep>=1.0", "winonly; sys_platform == 'win32'", "extra-dep; extra == 'x'"))
    result = cell(install_observation(needing), needing)
    assert result.verdict is Verdict.ERROR
    assert "requires tinydep>=1.0 (Requires-Dist)" in result.reason
    assert "winonly" not in result.reason and "extra-dep" not in result.reason
    served = dataclasses.replace(NO_TAGS, dependencies_from=Path("/wheelhouse"))
    deps = {**install_observation(needing), "dependencies": {
        "returncode": 0, "requirements": ["tinydep>=1.0"], "output": ""}}
    assert cell(deps, needing, package=served).verdict is Verdict.PASS
    deps["dependencies"] = {"returncode": 1, "requirements": ["tinydep>=1.0"],
                            "output": "no tinydep"}
    broken = cell(deps, needing, package=served)
    assert broken.verdict is Verdict.ERROR and "could not be installed" in broken.reason


def test_only_markers_true_for_the_cell_count() -> None:
    needing = dataclasses.replace(CP311, requires_dist=("old; python_version < '3.10'",))
    assert cell(install_observation(needing), needing).verdict is Verdict.PASS
    facts = {**FACTS_311, "version": "3.9.2", "version_info": [3, 9, 2]}
    abi3 = dataclasses.replace(ABI3, requires_dist=needing.requires_dist)
    result = cell(install_observation(abi3), abi3, facts=facts)
    assert result.verdict is Verdict.ERROR and "requires old" in result.reason
