"""The venv sandbox for real: root and user-namespace modes hide GMP; no sandbox -> INVALID."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import cli, probe, sandbox

STERILITY = ("import json, runpy; g = runpy.run_path({path!r}); "
             "print(json.dumps(g['sterility'](['gmp'], [])))")


def sterility_inside(sb: sandbox.Sandbox) -> dict[str, object]:
    code = STERILITY.format(path=probe.__file__)
    out = subprocess.run(sb.wrap([sys.executable, "-I", "-c", code]), capture_output=True,
                         text=True, env={"PATH": "/usr/bin:/bin"}, check=True)
    return dict(json.loads(out.stdout))


@pytest.mark.parametrize("euid", [0, 1000], ids=["root-mount-namespace", "user-namespace"])
def test_sandbox_makes_gmp_unloadable_and_unlisted(euid: int, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert probe.sterility(["gmp"], [])["ok"] is False  # the host itself has GMP
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    sb = sandbox.prepare(tmp_path, ["gmp"])
    assert sb is not None
    assert ("--user" in sb.launcher) == (euid != 0)
    assert any(h.endswith("libgmp.so.10") for h in sb.hidden)
    result = sterility_inside(sb)
    assert result["ok"] is True, result["problems"]


def test_no_sandbox_means_invalid_never_pass(wheels: dict[str, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def unavailable(*args: object, **kw: object) -> None:
        raise sandbox.SandboxUnavailable("unprivileged user namespaces are disabled")

    monkeypatch.setattr(sandbox, "prepare", unavailable)
    code = cli.main([str(wheels["nogmp"]), "--select", "venv-py3.12", "--report-dir",
                     str(tmp_path)])
    report = json.loads((tmp_path / "smoke.json").read_text())
    cell = report["cells"][0]
    assert cell["verdict"] == "INVALID", cell["reason"]
    assert "could not hide gmp" in cell["reason"]
    assert code == 1


def test_without_uv_the_venvs_own_pip_installs(wheels: dict[str, Path], tmp_path: Path) -> None:
    """Images from a registry may lack uv: the cell falls back to pip, same verdicts."""
    from harness import interpreters, matrix
    from harness.environments.base import ProbeSpec
    from harness.environments.venv import VenvEnvironment
    from harness.verdict import Verdict, judge
    from harness.wheel import inspect

    package = matrix.load(Path(__file__).resolve().parents[2] / "matrix.yaml").package
    sb = sandbox.prepare(tmp_path / "sandbox", ["gmp"])
    interp = interpreters.find("3.12")
    for variant, verdict in (("good", Verdict.PASS), ("nogmp", Verdict.FAIL)):
        wheel = inspect(wheels[variant])
        with VenvEnvironment(python=interp.executable, run_root=tmp_path, sandbox=sb,
                             uv="/nonexistent/uv", cell_id=variant) as env:
            run = env.run(ProbeSpec(package=package, wheel=wheel), 300)
        result = judge(run, cell_id=variant, kind="venv", wheel=wheel, package=package)
        assert result.verdict is verdict, result.reason
        install = result.check("install")
        assert install is not None and "pip" in install.data["command"][1:3]
    assert [p.name for p in tmp_path.iterdir()] == ["sandbox"]  # cell dirs removed


def test_killed_run_leaves_no_venv_process_and_its_dir_is_reaped(
        wheels: dict[str, Path], tmp_path: Path) -> None:
    """SIGKILL of the harness: cell processes die with it; the next run removes its dir."""
    import signal
    import time

    import yaml

    root = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((root / "matrix.yaml").read_text())
    marker = f"hang-{os.getpid()}-{time.monotonic_ns()}"
    data["package"]["checks"].append({"name": "hang", "expected": None,
                                      "expr": f"__import__('time').sleep(600) or {marker!r}"})
    data["environments"] = {"venv": [{"python": "3.12"}]}
    data["package"]["reference"] = str(root / data["package"]["reference"])
    matrix_path = tmp_path / "m.yaml"
    matrix_path.write_text(yaml.safe_dump(data))
    proc = subprocess.Popen([sys.executable, "-m", "harness", str(wheels["good"]), "--matrix",
                             str(matrix_path), "--report-dir", str(tmp_path / "r")], cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cell_processes() -> list[str]:
        out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
        return [p for p in out.split() if int(p) != proc.pid]

    deadline = time.monotonic() + 60
    while not cell_processes():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    run_dirs = {p for p in Path("/tmp/q-kangaroo-smoke").glob("run-*")
                if (p / "owner.pid").read_text() == str(proc.pid)}
    assert len(run_dirs) == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while cell_processes():
        assert time.monotonic() < deadline, "cell processes outlived the killed harness"
        time.sleep(0.1)
    assert run_dirs.pop().exists()  # left behind by SIGKILL ...
    assert cli.main([str(wheels["good"]), "--select", "venv-py3.12", "--report-dir",
                     str(tmp_path / "r2")]) == 0
    assert not [p for p in Path("/tmp/q-kangaroo-smoke").glob("run-*")
                if (p / "owner.pid").exists() and (p / "owner.pid").read_text() == str(proc.pid)]
