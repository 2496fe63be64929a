"""The nightly workflow, validated offline: actionlint and GitHub's workflow JSON schema."""

from __future__ import annotations

import os
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
