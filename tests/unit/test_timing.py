"""The profile (harness.timing, the probe's timing event): off by default, judged as nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harness import probe, timing
from harness.verdict import Verdict
from tests.conftest import ROOT
from tests.unit.conftest import judge_one, passing_events

MARK = ("from harness import timing; timing.mark('one'); timing.begin('cell-a'); "
        "timing.mark('two'); timing.probe('cell-a', [{'event': 'timing', 'mode': 'cell', "
        "'marks': [['sterility', 1.5]]}]); timing.write(); print(timing.enabled())")


def _python(code: str, env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT, env={**os.environ, **env}).stdout.strip()


def test_profiling_is_off_by_default_and_writes_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != timing.ENV}
    assert subprocess.run([sys.executable, "-c", MARK], capture_output=True, text=True,
                          check=True, cwd=ROOT, env=env).stdout.strip() == "False"
    assert list(tmp_path.iterdir()) == []


def test_marks_per_thread_and_cell_with_the_probes_own(tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    assert _python(MARK, {timing.ENV: str(out)}) == "True"
    data = json.loads(out.read_text())
    marks = {(thread, cell, label) for thread, cell, label, _ in data["marks"]}
    assert marks == {("MainThread", "", "one"), ("MainThread", "cell-a", "begin"),
                     ("MainThread", "cell-a", "two"), ("probe:cell", "cell-a", "sterility")}
    assert data["started"] <= max(at for *_, at in data["marks"] if at != 1.5)


def test_the_probe_sends_its_timing_only_when_asked() -> None:
    spec = {"mode": "checks", "package": {"import_name": "json", "distribution": "nope",
            "libraries": [], "forbidden_env": [], "version_from": [], "checks": []}}
    source = Path(probe.__file__).read_text()

    def events(profile: bool) -> list[dict[str, object]]:
        out = subprocess.run([sys.executable, "-I", "-c", probe.BOOTSTRAP, source,
                              json.dumps({**spec, **({"profile": True} if profile else {})})],
                             capture_output=True, text=True, env={"PATH": os.defpath}).stdout
        return [json.loads(x[len(probe.MARKER):]) for x in out.splitlines()]

    assert "timing" not in [e["event"] for e in events(False)]
    timed = [e for e in events(True) if e["event"] == "timing"]
    assert len(timed) == 1 and timed[0]["mode"] == "checks"
    assert [m[0] for m in timed[0]["marks"]] == ["interpreter start", "import", "version",
                                                  "declared checks", "provenance"]
    assert [m[1] for m in timed[0]["marks"]] == sorted(m[1] for m in timed[0]["marks"])


def test_a_timing_event_is_no_evidence_and_no_forgery() -> None:
    events = passing_events()
    events.insert(3, {"event": "timing", "mode": "cell", "marks": [["facts", 1.0]]})
    assert judge_one(events).verdict is Verdict.PASS
