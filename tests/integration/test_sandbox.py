"""The venv sandbox for real: every venv cell is isolated (mount, network, PID namespaces),
GMP is hidden wherever the loader looks (glibc-hwcaps, legacy subdirs), /etc/ld.so.preload
is neutralised, and a host that refuses namespaces gets ERROR, never an unisolated cell.

Tests that need a changed /etc or library directory make the change in a private mount
namespace of their own (root), so the host and other runs never see it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import checks, cli, probe, sandbox
from harness.environments.base import PROBE_SOURCE
from harness.runner import private_parent
from tests.conftest import ROOT, default_matrix_data
from tests.integration.wheel_surgery import rewrite

STERILITY = ("import json, runpy; g = runpy.run_path({path!r}); "
             "print(json.dumps(g['sterility'](['gmp'], [])))")
INIT = "q_kangaroo/__init__.py"
MULTIARCH = "/usr/lib/x86_64-linux-gnu"


def host_gmp() -> Path:
    """The host's real libgmp.so.10 (these tests need a host that has GMP)."""
    found = sandbox.library_files(["gmp"])
    paths = [Path(d, n) for d, names in found.items() for n in names if n == "libgmp.so.10"]
    assert paths, f"this host is expected to have libgmp.so.10: {found}"
    return paths[0].resolve()


def problems(observation: dict[str, Any]) -> list[str]:
    """What the host's sterility judge makes of the probe's observation."""
    return checks.sterility_problems(observation)


#: a cell's /tmp is its own, so a checkout or nox venv under /tmp is out of its sight: what
#: runs inside is the base interpreter (the sandbox exposes its prefix) and the whole probe
BASE_PYTHON = os.path.realpath(sys.executable)


def whole_probe(visible: Path) -> str:
    """The probe (probe_native spliced in) written where a cell can read it."""
    path = visible / "probe_whole.py"
    path.write_text(PROBE_SOURCE, encoding="utf-8")
    path.chmod(0o644)
    return str(path)


def sterility_inside(sb: sandbox.Sandbox, visible: Path,
                     outer: list[str] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    code = STERILITY.format(path=whole_probe(visible))
    out = subprocess.run([*outer, *sb.wrap([BASE_PYTHON, "-I", "-S", "-c", code])],
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_sandbox_makes_gmp_unloadable_and_unlisted(tmp_path: Path, visible_dir: Path) -> None:
    assert problems(probe.sterility(["gmp"], []))  # the host itself has GMP
    sb = sandbox.prepare(tmp_path, ["gmp"])
    assert "--user" not in sb.launcher  # root: no user namespace needed
    assert any(h.endswith("libgmp.so.10") for h in sb.hidden)
    result = sterility_inside(sb, visible_dir)
    assert not problems(result), problems(result)


def test_nothing_to_hide_still_gets_namespaces(tmp_path: Path) -> None:
    sb = sandbox.prepare(tmp_path, ["nosuchlib"])
    assert sb.hidden == ()
    assert "--mount" in sb.launcher
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--as-pid-1"):
        assert flag in sb.jail
    out = subprocess.run(sb.wrap([BASE_PYTHON, "-I", "-c",
                                  "import os, socket; print(os.getpid(), "
                                  "[n for _, n in socket.if_nameindex()])"]),
                         capture_output=True, text=True, check=True)
    assert out.stdout.split(None, 1) == ["1", "['lo']\n"], out  # own PID and net namespace


# ------------------------------------------------- isolation of every venv cell, end to end


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP port on the host's loopback that accepts connections."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # reachable from the host: a refused connection in a cell means isolation
        yield port


def isolation_matrix(tmp_path: Path, libraries: list[str], port: int) -> Path:
    data = default_matrix_data()
    data["package"]["bundled_libraries"] = libraries
    data["package"]["checks"] += [
        {"name": "network_interfaces", "expected": ["lo"],
         "expr": "[n for _, n in __import__('socket').if_nameindex()]"},
        {"name": "host_loopback_unreachable", "expected": True,
         "expr": f"__import__('socket').socket().connect_ex(('127.0.0.1', {port})) != 0"},
    ]
    data["environments"] = {"venv": [{"python": "3.12"}]}
    path = tmp_path / f"matrix-{'-'.join(libraries)}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("libraries", [["gmp"], ["nosuchlib"]],
                         ids=["gmp-hidden", "nothing-to-hide"])
def test_every_venv_cell_has_no_network_and_its_daemons_die(
        libraries: list[str], listener: int, wheels: dict[str, Path], tmp_path: Path) -> None:
    marker = f"qk-sandbox-daemon-{os.getpid()}-{time.monotonic_ns()}"
    wheel = rewrite(wheels["good"], tmp_path / "dist", lambda files: {
        **files, INIT: files[INIT] + f"""
import os as _os
if _os.fork() == 0:  # a daemon in its own session, every descriptor closed
    _os.setsid()
    _fd = _os.open(_os.devnull, _os.O_RDWR)
    for _n in (0, 1, 2):
        _os.dup2(_fd, _n)
    _os.execvp("sh", ["sh", "-c", "sleep 600; : {marker}"])
""".encode()})
    report_dir = tmp_path / "report"
    code = cli.main([str(wheel), "--matrix", str(isolation_matrix(tmp_path, libraries, listener)),
                     "--report-dir", str(report_dir)])
    cell = json.loads((report_dir / "smoke.json").read_text())["cells"][0]
    assert cell["verdict"] == "PASS", cell["reason"]
    assert code == 0
    checks = {c["name"]: c["status"] for c in cell["checks"]}
    assert checks["network_interfaces"] == checks["host_loopback_unreachable"] == "pass"
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert left == "", f"a daemon outlived its venv cell: {left}"


# Root that may not mount (as in a container); it keeps CAP_SETFCAP, which mapping root
# into a user namespace needs (Linux >= 5.12), so the user namespace is its way out.
CANNOT_MOUNT = ["setpriv", "--bounding-set", "-all,+setfcap", "--inh-caps", "-all,+setfcap",
                "--ambient-caps", "+setfcap", "--securebits",
                "+noroot,+noroot_locked,+no_setuid_fixup,+no_setuid_fixup_locked", "--"]
NO_USER_NAMESPACES = ["unshare", "--user", "--map-root-user", "--", "/bin/sh", "-c",
                      'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', "limit"]


@pytest.mark.parametrize(("prefix", "why"), [
    (CANNOT_MOUNT, "CAP_SYS_ADMIN"),
    (NO_USER_NAMESPACES + CANNOT_MOUNT, "CAP_SYS_ADMIN"),  # no way at all
], ids=["root-that-cannot-mount", "no-namespaces-allowed"])
def test_root_without_mount_rights_gets_error_never_a_weaker_cell(
        prefix: list[str], why: str, wheels: dict[str, Path], tmp_path: Path) -> None:
    """Like root in an unprivileged container, and like a host whose user namespaces are
    disabled (a limit of 0, set inside a user namespace of the test's own): a user
    namespace alone would leave the cell uid 0 outside (root's files readable), so ERROR."""
    expected = {"good": "ERROR", "nogmp": "ERROR"}
    assert os.geteuid() == 0, "dropping capabilities needs root"
    verdicts = {}
    for variant in expected:
        reports = tmp_path / variant
        proc = subprocess.run([*prefix, sys.executable, "-m", "harness", str(wheels[variant]),
                               "--select", "venv-py3.12", "--report-dir", str(reports)],
                              capture_output=True, text=True, cwd=ROOT, timeout=600,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        cell = json.loads((reports / "smoke.json").read_text())["cells"][0]
        verdicts[variant] = cell["verdict"]
        if cell["verdict"] == "ERROR":
            assert "cannot isolate venv cells" in cell["reason"], cell["reason"]
            assert why in cell["reason"], cell["reason"]
            assert {c["status"] for c in cell["checks"]} == {"not run"}
            assert proc.returncode == 2, proc.stderr
        else:
            assert cell["checks"][1]["name"] == "sterility"
            assert cell["checks"][1]["status"] == "pass", cell["reason"]
    assert verdicts == expected


# ----------------------------------- a changed /etc or library dir, in a namespace of its own


OuterRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def outer(tmp_path: Path) -> OuterRun:
    """Run argv as root in a private mount namespace after a setup script (the host is
    untouched): e.g. an overlay adding /etc/ld.so.preload or a glibc-hwcaps copy of GMP."""
    assert os.geteuid() == 0, "these tests change /etc in a private mount namespace: run as root"

    def run(setup: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
             f'set -eu\n{setup}\nexec "$@"', "outer", *argv],
            capture_output=True, text=True, cwd=ROOT, timeout=600,
            env={**os.environ, "PYTHONPATH": str(ROOT)})

    return run


def overlay(layer: Path, target: str) -> str:
    return f"mount -t overlay overlay -o lowerdir={layer}:{target} {target}"


def harness_verdicts(outer: OuterRun, setup: str, wheels: dict[str, Path],
                     tmp_path: Path) -> dict[str, str]:
    verdicts = {}
    for variant in ("good", "nogmp"):
        reports = tmp_path / f"report-{variant}"
        proc = outer(setup, [sys.executable, "-m", "harness", str(wheels[variant]), "--select",
                             "venv-py3.12", "--report-dir", str(reports)])
        cell = json.loads((reports / "smoke.json").read_text())["cells"][0]
        assert cell["verdict"] in ("PASS", "FAIL"), (cell["reason"], proc.stderr)
        if cell["verdict"] == "FAIL":
            assert "libgmp.so.10" in cell["reason"], cell["reason"]
        verdicts[variant] = cell["verdict"]
    return verdicts


def test_ld_so_preload_is_neutralised_and_observed(
        outer: OuterRun, wheels: dict[str, Path], tmp_path: Path, visible_dir: Path) -> None:
    layer = tmp_path / "etc"
    layer.mkdir()
    (layer / "ld.so.preload").write_text(f"{host_gmp()}\n")
    setup = overlay(layer, "/etc")
    sterile = ("import json, runpy; print(json.dumps(runpy.run_path("
               f"{probe.__file__!r})['sterility'](['nosuchlib'], [])))")
    # Outside the sandbox: every process gets GMP, and the probe says so.
    seen = outer(setup, [sys.executable, "-I", "-c", sterile])
    result = json.loads(seen.stdout)
    assert f"/etc/ld.so.preload preloads {host_gmp()}" in problems(result), result
    # Inside: nothing preloaded, and the unbundled wheel cannot borrow the preloaded GMP.
    inner = ("import json, runpy; print(json.dumps(runpy.run_path("
             f"{whole_probe(visible_dir)!r})['sterility'](['nosuchlib'], [])))")
    inside = outer(setup, [sys.executable, "-c", f"""
import json, sys
from pathlib import Path
from harness import sandbox
sb = sandbox.prepare(Path({str(tmp_path / 'sb')!r}), ['nosuchlib'])
import subprocess
print(subprocess.run(sb.wrap([{BASE_PYTHON!r}, '-I', '-S', '-c', {inner!r}]),
                     capture_output=True, text=True, check=True).stdout)
"""])
    assert inside.returncode == 0, inside.stderr
    result = json.loads(inside.stdout)
    assert not problems(result) and result["preload"] == [], result
    assert harness_verdicts(outer, setup, wheels, tmp_path) == {"good": "PASS", "nogmp": "FAIL"}


@pytest.mark.parametrize(("subdir", "also_top_level"), [
    ("glibc-hwcaps/x86-64-v2", False),   # only there: the loader still finds it
    ("glibc-hwcaps/x86-64-v3", True),    # there and in the directory itself: one overlay
    ("tls", False),                      # a legacy subdirectory (glibc < 2.37)
])
def test_gmp_in_loader_subdirectories_is_found_and_hidden(
        subdir: str, also_top_level: bool, outer: OuterRun, wheels: dict[str, Path],
        tmp_path: Path) -> None:
    gmp = host_gmp()
    assert str(gmp.parent) == MULTIARCH, gmp
    layer = tmp_path / "lib"
    (layer / subdir).mkdir(parents=True)
    (layer / subdir / "libgmp.so.10").write_bytes(gmp.read_bytes())
    if not also_top_level:  # whiteouts: the only GMP left is the one in the subdirectory
        for name in os.listdir(MULTIARCH):
            if name.startswith(("libgmp.", "libgmp-")):
                os.mknod(layer / name, 0o20600, os.makedev(0, 0))
    setup = overlay(layer, MULTIARCH)
    mapped = outer(setup, [sys.executable, "-I", "-c",
                           "import ctypes; ctypes.CDLL('libgmp.so.10');"
                           "print(open('/proc/self/maps').read())"])
    where = {ln.split()[-1] for ln in mapped.stdout.splitlines() if "libgmp" in ln}
    expected = {f"{MULTIARCH}/{subdir}/libgmp.so.10"} if not also_top_level else where
    assert where == expected and where, (where, mapped.stderr)  # the loader does use it
    listed = outer(setup, [sys.executable, "-c",
                           "from harness import sandbox; print(sandbox.library_files(['gmp']))"])
    assert f"{MULTIARCH}/{subdir}" in listed.stdout, listed
    assert harness_verdicts(outer, setup, wheels, tmp_path) == {"good": "PASS", "nogmp": "FAIL"}



# ------------------------------------------------------------------ cells in the sandbox


def test_without_uv_the_venvs_own_pip_installs(wheels: dict[str, Path], tmp_path: Path) -> None:
    """Images from a registry may lack uv: the cell falls back to pip, same verdicts."""
    from harness import interpreters, matrix
    from harness.environments.base import ProbeSpec
    from harness.environments.venv import VenvEnvironment
    from harness.verdict import Verdict, judge
    from harness.wheel import read_release, resolve

    package = matrix.load(Path(__file__).resolve().parents[2] / "matrix.yaml").package
    sb = sandbox.prepare(tmp_path / "sandbox", ["gmp"])
    interp = interpreters.find("3.12")
    for variant, verdict in (("good", Verdict.PASS), ("nogmp", Verdict.FAIL)):
        release = read_release(resolve([wheels[variant]], package))
        with VenvEnvironment(python=interp.executable, run_root=tmp_path, sandbox=sb,
                             uv="/nonexistent/uv", cell_id=variant) as env:
            run = env.run(ProbeSpec(package=package, release=release), 300)
        result = judge(run, cell_id=variant, kind="venv", release=release, package=package)
        assert result.verdict is verdict, result.reason
        install = result.check("install")
        assert install is not None and "pip" in install.data["command"][1:3]
    assert [p.name for p in tmp_path.iterdir()] == ["sandbox"]  # cell dirs removed


def _run_dirs_of(pid: int) -> set[Path]:
    """The run directories whose owner is ``pid`` (other runs' may come and go meanwhile)."""
    found = set()
    for run_dir in private_parent().glob("run-*"):
        try:
            if (run_dir / "owner.pid").read_text() == str(pid):
                found.add(run_dir)
        except OSError:
            continue
    return found


def test_killed_run_leaves_no_venv_process_and_its_dir_is_reaped(
        wheels: dict[str, Path], tmp_path: Path) -> None:
    """SIGKILL of the harness: cell processes die with it; the next run removes its dir."""
    import signal
    import time

    import yaml

    root = Path(__file__).resolve().parents[2]
    data = default_matrix_data()
    marker = f"hang-{os.getpid()}-{time.monotonic_ns()}"
    data["package"]["checks"].append({"name": "hang", "expected": None,
                                      "expr": f"__import__('time').sleep(600) or {marker!r}"})
    data["environments"] = {"venv": [{"python": "3.12"}]}
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
    run_dirs = _run_dirs_of(proc.pid)
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
    assert not _run_dirs_of(proc.pid)
