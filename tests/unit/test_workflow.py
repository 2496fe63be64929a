"""The nightly workflow, validated offline: actionlint and GitHub's workflow JSON schema."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert found, f"{name} missing: pip install --group test (pip >= 25.1), or nox -s tests"
    return found


def test_actionlint_accepts_the_nightly_workflow() -> None:
    proc = subprocess.run([tool("actionlint"), "-no-color", str(WORKFLOW)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_github_workflow_schema_accepts_it() -> None:
    proc = subprocess.run([tool("check-jsonschema"), "--builtin-schema",
                           "vendor.github-workflows", str(WORKFLOW)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_is_not_a_rubber_stamp(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text().replace("needs.list.outputs.cells",
                                                   "needs.lst.outputs.cells"))
    proc = subprocess.run([tool("actionlint"), "-no-color", str(broken)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1 and "lst" in proc.stdout


def test_workflow_shape() -> None:
    data = yaml.safe_load(WORKFLOW.read_text())
    triggers = data[True]  # YAML 1.1 reads the key `on` as True
    assert "schedule" in triggers and "workflow_dispatch" in triggers
    assert set(triggers["workflow_dispatch"]["inputs"]["source"]["options"]) == {
        "index", "artifact", "url"}
    jobs = data["jobs"]
    assert "fromJSON(needs.list.outputs.cells)" in str(jobs["cell"]["strategy"]["matrix"])
    assert jobs["cell"]["runs-on"] == "${{ matrix.runner }}"
    assert "${{ matrix.id }}" in str(jobs["cell"]["steps"])  # unique artifact names
    assert "harness merge" in str(jobs["merge"]["steps"])
    extra = data["env"]["EXTRA_IMAGES"].split()
    from harness.imaging import load_recipes

    recipes = load_recipes()
    assert all(recipes[name].extra for name in extra)
    assert {r.base for r in (recipes[n] for n in extra)} >= {
        "quay.io/pypa/manylinux2014_x86_64", "python:3.12-alpine"}


def test_workflow_is_what_github_users_expect() -> None:
    """A red cell is a red job while the merge still runs; one run per branch at a time;
    every job bounded in time; actions pinned by commit (tag in a comment); JUnit published."""
    text = WORKFLOW.read_text()
    data = yaml.safe_load(text)
    assert data["concurrency"]["group"]
    for name, job in data["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), f"{name}: no timeout-minutes"
    uses = re.findall(r"uses: (\S+)(.*)", text)
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r"\s+# v\d+(\.\d+)*", comment), f"{action}: tag comment"
    cell_steps = "\n".join(str(s.get("run", "")) for s in data["jobs"]["cell"]["steps"])
    assert "python -m harness" in cell_steps and "||" not in cell_steps  # exit code kept
    merge = data["jobs"]["merge"]
    assert merge["if"].startswith("always()")
    junit = [s for s in merge["steps"] if "junit" in str(s.get("uses", ""))]
    assert junit and "smoke.junit.xml" in junit[0]["with"]["report_paths"]
    assert merge["permissions"]["checks"] == "write"
