"""The pre-publish gate on real fixture releases: audit + real cells + cross-check.

The good per-Python release is go; broken copies are no-go with the right blocker (`nogmp` by
both halves: the audit and the cell); each blocker names its file and fix, the report names
the file each cell tested, and the audit runs beside the cells (its seconds are printed).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import audit, gate, policy, release, report, wheel
from tests.conftest import RunHarness, _load_builder, default_matrix_data

BROKEN = {
    "nogmp": {"unbundled-library", "external-library", "cell-fail"},  # both halves
    "neededunchanged": {"bundled-but-system-needed", "cell-fail"},
    "fakeabi3": {"abi3-extension-suffix"},
    "abi3floor": {"abi3-floor-above-requires-python"},
    "metamismatch": {"metadata-version-mismatch"},
    "oversize": {"size"},
}


@pytest.fixture(scope="module")
def built() -> dict[str, Path]:
    builder = _load_builder()
    files = dict(builder.build_variants([*BROKEN, "wrongtag", "sdist"]))
    files["perpython"] = builder.build_release_set("perpython")
    return files


def _release_dir(tmp_path: Path, *files: Path) -> Path:
    out = tmp_path / "dist"
    out.mkdir()
    for f in files:
        shutil.copy(f, out / f.name)
    return out


def _blockers(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["code"]: b for b in data["decision"]["blockers"]}


def test_per_python_release_is_go(built: dict[str, Path], run_harness: RunHarness,
                                  tmp_path: Path) -> None:
    """Real cells on the file pip picks for CPython 3.11 (a venv and a container), the audit
    and the cross-check of the whole per-Python release: go."""
    per_python = release.collect([built["perpython"]], "q_kangaroo")
    cp311 = next(w for w in per_python.wheels if "-cp311-cp311-" in w.filename)
    started = time.monotonic()
    data = default_matrix_data()
    del data["package"]["wheel_tags"]  # the default matrix requires one abi3 wheel
    matrix = tmp_path / "perpython.yaml"
    matrix.write_text(yaml.safe_dump(data))
    run = run_harness("--prepublish", str(cp311.path), "--matrix", str(matrix), "-k",
                      "venv-py3.11,docker-debian12-py3.11")
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.output
    assert run.report is not None and run.report["decision"]["go"], run.output
    print(f"prepublish, 2 cells: {seconds:.1f} s, audit {run.report['audit']['seconds']} s "
          "(beside the cells)")
    assert "GO:" in run.output and "promises CPython 3.11" in run.output
    assert {c["id"]: c["verdict"] for c in run.report["cells"]} == {
        "venv-py3.11": "PASS", "docker-debian12-py3.11": "PASS"}
    # the whole release: its audit and the same cells' report, decided together
    findings = audit.audit_release(per_python, audit.AuditOptions(bundled_libraries=("gmp",)))
    decision = gate.decide(per_python, findings, run.report, policy.ReleasePolicy(),
                           bundled_libraries=("gmp",))
    assert decision.go, gate.decision_lines(decision)
    untested = {w.file for w in decision.warnings if w.code == "wheel-untested"}
    assert len(untested) == 4 and cp311.filename not in untested
    cov = next(c for c in decision.coverage if c.file == cp311.filename)
    assert cov.passed == 2  # CPython 3.11 promised and tested; the old glibc side was not:
    assert cov.untested == ("glibc 2.17-2.35 (oldest tested 2.36)",)
    # the cross-check really compared: the bundled GMP copy was seen mapped in both cells
    facts = findings.wheels[cp311.filename]
    (copy,) = facts.bundled
    for cell in run.report["cells"]:
        seen = gate.observation(cell)
        assert seen is not None and seen.has_wheel_file(copy)


@pytest.mark.parametrize("variant", sorted(BROKEN))
def test_broken_copy_is_no_go_with_its_blocker(built: dict[str, Path], run_harness: RunHarness,
                                               tmp_path: Path, variant: str) -> None:
    dist = _release_dir(tmp_path, built[variant], built["sdist"])
    run = run_harness("--prepublish", str(dist), "-k", "venv-py3.11")
    assert run.returncode == 1, run.output
    assert run.report is not None and not run.report["decision"]["go"]
    blockers = _blockers(run.report)
    assert BROKEN[variant] <= set(blockers), sorted(blockers)
    for code in BROKEN[variant]:
        assert blockers[code]["file"] == built[variant].name and blockers[code]["fix"]
    assert run.report["decision"]["tested"][0]["file"] == built[variant].name
    text = (tmp_path / "reports" / "smoke.md").read_text()  # where run_harness writes
    assert "**NO-GO**" in text and all(f"**{code}**" in text for code in BROKEN[variant])
    assert "NO-GO:" in run.output


def test_wrong_tag_is_no_go_without_any_cell(built: dict[str, Path], tmp_path: Path) -> None:
    """An aarch64-tagged copy of x86-64 code: no cell here can install it; the audit alone
    blocks it."""
    rs = release.collect([_release_dir(tmp_path, built["wrongtag"], built["sdist"])],
                         "q_kangaroo")
    findings = audit.audit_release(rs, audit.AuditOptions(bundled_libraries=("gmp",)))
    no_cells = report.to_json(report.RunInfo(
        run_id="r", matrix="m.yaml", release=wheel.read_release(rs), started=0.0,
        finished=0.0, interrupted=False, exit_code=2, selected=()), [])
    decision = gate.decide(rs, findings, no_cells, policy.ReleasePolicy())
    assert not decision.go and decision.exit_code == 1
    arch = next(b for b in decision.blockers if b.code == "arch-mismatch")
    assert arch.file == built["wrongtag"].name and "aarch64" in arch.message
    cov = decision.coverage[0]
    assert cov.cells == () and "aarch64" in cov.promises and "aarch64 machines" in cov.untested
