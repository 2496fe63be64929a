"""Code under test cannot touch the host, for real: the `escape` fixture wheel tries every way
out of a venv cell run as root (the unprivileged user's run is in test_rootless_venv.py).

Each lock of the sandbox stops at least one attempt: the uid switch (a root-only 0600 file),
the read-only host (a directory everybody may write), the emptied /tmp (a file there), the
PID namespace and fresh /proc (a host pid), the network namespace (a host listener), no
capabilities (CapEff, setns into the host's network namespace) and no further user
namespaces (unshare).  Removing any of them makes the cell FAIL here.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness import cli
from tests.conftest import ROOT, default_matrix_data


@dataclass(frozen=True, kw_only=True)
class Targets:
    """What the escape wheel tries, and the host paths that must stay untouched."""

    token: str
    write: list[str]
    read: list[str]
    pids: list[int]
    ports: list[int]
    netns: list[str]

    def matrix(self, python: str) -> dict[str, Any]:
        """The default matrix, one venv cell, plus the check that runs the attempts in the
        package's process (expected: nothing worked)."""
        attempts = {"token": self.token, "write": self.write, "read": self.read,
                    "pids": self.pids, "ports": self.ports, "netns": self.netns}
        data = default_matrix_data()
        data["package"]["checks"].append({"name": "escape", "expected": "[]",  # as text:
                                          "expr": f"str(q_kangaroo._escape({attempts!r}))"})
        data["environments"] = {"venv": [{"python": python}]}
        return data

    def written(self) -> list[str]:
        """Write targets that exist on the host afterwards (none may)."""
        return [p for p in self.write if os.path.lexists(p)]


@contextmanager
def escape_targets(*, write: tuple[str, ...] = (), read: tuple[str, ...] = ()
                   ) -> Iterator[Targets]:
    """Real things to reach on this host (as root): a root-only 0600 file and a directory
    anybody may write, both in a directory anybody may enter; a file in the host's /tmp; a
    process; a listener on 127.0.0.1; the host's network namespace bound to a file."""
    assert os.geteuid() == 0, "the escape targets (a root-only file, a netns mount) need root"
    token = f"qk-escape-{os.getpid()}-{time.monotonic_ns()}"
    with ExitStack() as stack:
        visible = Path(tempfile.mkdtemp(prefix="qk-escape-", dir="/var/lib"))
        stack.callback(shutil.rmtree, visible, True)
        visible.chmod(0o755)
        secret = visible / "secret"
        secret.write_text("secret\n")
        secret.chmod(0o600)
        (visible / "open").mkdir(mode=0o777)
        (visible / "open").chmod(0o777)
        in_tmp = Path("/tmp", f"{token}-visible")
        in_tmp.write_text("host /tmp\n")
        in_tmp.chmod(0o644)
        stack.callback(in_tmp.unlink)
        netns = visible / "netns"
        netns.touch()
        subprocess.run(["mount", "--bind", "/proc/self/ns/net", str(netns)], check=True)
        stack.callback(subprocess.run, ["umount", str(netns)], check=False)
        sleeper = subprocess.Popen(["sh", "-c", f"sleep 600; : {token}"])
        stack.callback(sleeper.wait)
        stack.callback(sleeper.kill)
        server = stack.enter_context(socket.socket())
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # reachable from the host
        # (the cell's own /tmp is an empty tmpfs: writing there works and reaches nothing)
        # the checkout too, unless it lives under an emptied directory (a clone in /tmp)
        checkout = [] if str(ROOT).startswith(("/tmp/", "/var/tmp/", "/run/")) else [
            str(ROOT / token)]
        writes = [str(visible / "open" / "written"), f"/etc/{token}", *checkout, *write]
        for path in writes:
            stack.callback(lambda p=path: os.path.lexists(p) and os.unlink(p))
        yield Targets(token=token, write=writes, read=[str(secret), "/etc/shadow",
                                                       str(in_tmp), *read],
                      pids=[sleeper.pid, os.getpid()], ports=[port], netns=[str(netns)])


def assert_contained(cell: dict[str, Any], targets: Targets) -> None:
    """The cell PASSed, nothing the escape check tried worked, and no host path changed."""
    checks = {c["name"]: c for c in cell["checks"]}
    escape = checks["escape"]
    assert escape["status"] == "pass", (escape["status"], escape["detail"], cell["reason"])
    assert cell["verdict"] == "PASS", cell["reason"]
    assert targets.written() == []


def test_a_root_run_venv_cell_cannot_reach_the_host(wheels: dict[str, Path],
                                                     tmp_path: Path) -> None:
    from tests.conftest import _load_builder

    escape = _load_builder().build_variants(["escape"])["escape"]
    with escape_targets() as targets:
        matrix = tmp_path / "matrix.yaml"
        matrix.write_text(yaml.safe_dump(targets.matrix("3.12")))
        reports = tmp_path / "reports"
        code = cli.main([str(escape), "--matrix", str(matrix), "--report-dir", str(reports)])
        cell = json.loads((reports / "smoke.json").read_text())["cells"][0]
        assert_contained(cell, targets)
        assert cell["interpreter"]["executable"].startswith("/root/")  # reached through /root
        assert code == 0


# ------------------------------------------------ verdicts the package's process cannot write


def test_a_wheel_that_reports_every_step_itself_is_error_not_pass(tmp_path: Path) -> None:
    """The `forged` wheel's extension cannot load; its __init__ reports every step as passed
    through the probe's own functions and imitates the probe's end.  The probe, looking at
    its process from outside, sees the extension never mapped: ERROR, exit 2."""
    from tests.conftest import _load_builder

    forged = _load_builder().build_variants(["forged"])["forged"]
    reports = tmp_path / "reports"
    code = cli.main([str(forged), "--select", "venv-py3.12", "--report-dir", str(reports)])
    cell = json.loads((reports / "smoke.json").read_text())["cells"][0]
    assert cell["verdict"] == "ERROR", cell["reason"]
    assert "the package interfered with the probe" in cell["reason"], cell["reason"]
    assert "never mapped" in cell["reason"], cell["reason"]
    assert code == 2


REACH = '''
import os as _os
_reached = []
for _pid in {_os.getppid(), 1}:
    for _what in ("mem", "environ", "maps"):
        try:
            with open("/proc/%d/%s" % (_pid, _what), "rb") as _fh:
                _fh.read(1)
            _reached.append("read /proc/%d/%s" % (_pid, _what))
        except OSError:
            pass
    for _n in range(16):
        try:
            _fd = _os.open("/proc/%d/fd/%d" % (_pid, _n), _os.O_WRONLY)
        except OSError:
            continue
        _os.write(_fd, b'@@probe {"event": "observed", "step": "exit", "returncode": 0}\\n')
        _os.close(_fd)
        _reached.append("write /proc/%d/fd/%d" % (_pid, _n))
'''


def test_the_packages_process_cannot_reach_the_probes_memory_or_channel(
        wheels: dict[str, Path], tmp_path: Path) -> None:
    """The probe's cell process (the package's parent, pid 1 of the sandbox) is not
    dumpable: no /proc/PID/mem, environ, maps or fd/N of it opens from the package."""
    from tests.integration.wheel_surgery import rewrite

    init = "q_kangaroo/__init__.py"
    wheel = rewrite(wheels["good"], tmp_path / "dist",
                    lambda files: {**files, init: files[init] + REACH.encode()})
    data = default_matrix_data()
    data["package"]["checks"].append({"name": "reach", "expected": "[]",
                                      "expr": "str(q_kangaroo._reached)"})
    data["environments"] = {"venv": [{"python": "3.12"}]}
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(yaml.safe_dump(data))
    reports = tmp_path / "reports"
    code = cli.main([str(wheel), "--matrix", str(matrix), "--report-dir", str(reports)])
    cell = json.loads((reports / "smoke.json").read_text())["cells"][0]
    assert cell["verdict"] == "PASS", cell["reason"]
    assert code == 0
