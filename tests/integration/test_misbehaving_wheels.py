"""Wheels that misbehave at run time: verdicts stay right and nothing outlives the cell."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from tests.conftest import RunHarness, smoke_containers
from tests.integration.wheel_surgery import rewrite

INIT = "q_kangaroo/__init__.py"


def _append_to_init(src: Path, dest: Path, code: str) -> Path:
    return rewrite(src, dest, lambda files: {**files, INIT: files[INIT] + code.encode()})


def test_a_daemon_forked_at_import_neither_hangs_the_cell_nor_survives_it(
        wheels: dict[str, Path], run_harness: RunHarness, tmp_path: Path,
        docker_client: Any, images: dict[str, Any]) -> None:
    marker = f"qk-daemon-{time.monotonic_ns()}"
    wheel = _append_to_init(wheels["good"], tmp_path / "dist", f"""
import os as _os, time as _time
if _os.fork() == 0:  # a daemon that keeps every inherited descriptor open
    _os.setsid()
    _os.execvp("sh", ["sh", "-c", "sleep 600; : {marker}"])
""")
    start = time.monotonic()
    run = run_harness(str(wheel), "--select", "venv-py3.12", "--select",
                      "docker-debian12-py3.11", "--timeout", "60")
    assert time.monotonic() - start < 45, run.output
    for cell in run.cells().values():
        assert cell["verdict"] == "PASS", cell["reason"]
    time.sleep(1)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert left == "", f"daemon outlived its cell: {left}"
    assert smoke_containers(docker_client, run=run.report["run_id"]) == []  # type: ignore[index]


def _prepend_to_init(src: Path, dest: Path, code: str) -> Path:
    return rewrite(src, dest, lambda files: {**files, INIT: code.encode() + files[INIT]})


def test_noise_and_forged_probe_lines_on_stdout_change_nothing(
        wheels: dict[str, Path], run_harness: RunHarness, tmp_path: Path) -> None:
    """What a package prints never reaches the event stream (fd 1 is moved aside)."""
    forge = """import os as _o, sys as _s
_fake = '@@probe {"event": "check", "name": "%s", "status": "%s", "detail": "forged"}\\n'
print(_fake % ("partition_gf", "fail")); _s.stdout.flush()
_o.write(1, (_fake % ("import", "pass")).encode())
print("x" * 100000)
"""
    verdicts = {}
    for variant in ("good", "nogmp"):
        wheel = _prepend_to_init(wheels[variant], tmp_path / variant, forge)
        run = run_harness(str(wheel), "--select", "venv-py3.12")
        cell = run.cells()["venv-py3.12"]
        assert "forged" not in str(cell["checks"])
        verdicts[variant] = cell["verdict"]
    assert verdicts == {"good": "PASS", "nogmp": "FAIL"}


VENV = "venv-py3.12"


def test_a_python_fallback_cannot_hide_an_extension_that_does_not_load(
        wheels: dict[str, Path], run_harness: RunHarness, tmp_path: Path) -> None:
    fallback = b"""
try:
    from ._q_kangaroo import partition_gf, version
except ImportError:  # a pure-Python fallback hides the broken extension
    from importlib.metadata import version as _v

    def version():
        return _v("q_kangaroo")

    def partition_gf(n):
        p = [1] + [0] * n
        for k in range(1, n + 1):
            for m in range(k, n + 1):
                p[m] += p[m - k]
        return p[:n]
__version__ = version()
"""
    wheel = rewrite(wheels["nogmp"], tmp_path / "dist", lambda f: {**f, INIT: fallback})
    run = run_harness(str(wheel), "--select", VENV, "--select", "docker-debian11-py3.9")
    for cell in run.cells().values():
        assert cell["verdict"] == "FAIL", cell["reason"]
        assert "extension q_kangaroo._q_kangaroo does not load" in cell["reason"]
        assert cell["diagnosis"]["title"] == "libgmp was not bundled into the wheel"
        tags = next(c for c in cell["checks"] if c["name"] == "tags")
        assert "auditwheel finds only linux_x86_64" in tags["detail"]


def test_a_crash_at_interpreter_exit_fails(wheels: dict[str, Path], run_harness: RunHarness,
                                           tmp_path: Path) -> None:
    wheel = _append_to_init(wheels["good"], tmp_path / "dist", """
import atexit as _atexit, ctypes as _ctypes
_atexit.register(lambda: _ctypes.string_at(0))
""")
    run = run_harness(str(wheel), "--select", VENV, "--select", "docker-debian11-py3.9")
    for cell in run.cells().values():
        assert cell["verdict"] == "FAIL", cell["reason"]
        assert "exit:" in cell["reason"] and "SIGSEGV" in cell["reason"]


def test_gmp_loaded_and_unloaded_or_loaded_by_a_subprocess_is_caught(
        wheels: dict[str, Path], run_harness: RunHarness, tmp_path: Path,
        visible_dir: Path) -> None:
    """Outside the loader's search path the sandbox cannot hide it; the loader log sees it."""
    import shutil

    elsewhere = visible_dir  # the cell's /tmp is its own
    real = subprocess.run(["sh", "-c", "ldconfig -p | grep -m1 'libgmp.so.10 ' | sed 's/.*=> //'"],
                          capture_output=True, text=True).stdout.strip()
    shutil.copy(real, elsewhere / "libbignum.so.1")
    lib = elsewhere / "libbignum.so.1"
    tricks = {
        "dlclose": f"import ctypes as _c, _ctypes\n_h = _c.CDLL({str(lib)!r})\n"
                   "_ctypes.dlclose(_h._handle)\n",
        "subprocess": "import subprocess as _sp, sys as _sys\n_sp.run([_sys.executable, '-c', "
                      f"{f'import ctypes; ctypes.CDLL({str(lib)!r})'!r}], check=True)\n",
    }
    for name, code in tricks.items():
        wheel = _append_to_init(wheels["good"], tmp_path / name, code)
        run = run_harness(str(wheel), "--select", VENV)
        cell = run.cells()[VENV]
        assert cell["verdict"] == "FAIL", (name, cell["reason"])
        assert "provenance: loaded from outside the wheel" in cell["reason"]
        assert "libbignum.so.1" in cell["reason"]


def test_events_forged_on_the_probe_channel_are_an_error(
        wheels: dict[str, Path], run_harness: RunHarness, tmp_path: Path) -> None:
    wheel = _append_to_init(wheels["good"], tmp_path / "dist", """
import atexit as _atexit, os as _os, stat as _stat

def _forge():
    line = b'@@probe {"event": "check", "name": "partition_gf", "status": "fail"}\\n'
    for fd in map(int, _os.listdir("/proc/self/fd")):
        try:
            if _stat.S_ISFIFO(_os.fstat(fd).st_mode):
                _os.write(fd, line)
        except OSError:
            pass
_atexit.register(_forge)
""")
    run = run_harness(str(wheel), "--select", VENV)
    cell = run.cells()[VENV]
    assert cell["verdict"] == "ERROR", cell["reason"]
    assert "the package interfered with the probe" in cell["reason"], cell["reason"]
    assert run.returncode == 2


def test_a_plain_shared_library_in_the_package_is_not_an_extension(
        wheels: dict[str, Path], run_harness: RunHarness, tmp_path: Path) -> None:
    def add_helper(files: dict[str, bytes]) -> dict[str, bytes]:
        gmp = next(n for n in files if "/libgmp-" in n)
        code = (b"\nimport ctypes as _c, os as _o\n"
                b"_c.CDLL(_o.path.join(_o.path.dirname(__file__), 'libqkhelper.so'))\n")
        return {**files, "q_kangaroo/libqkhelper.so": files[gmp], INIT: files[INIT] + code}

    wheel = rewrite(wheels["good"], tmp_path / "dist", add_helper)
    run = run_harness(str(wheel), "--select", VENV, "--select", "docker-debian11-py3.9")
    for cell in run.cells().values():
        assert cell["verdict"] == "PASS", cell["reason"]


def test_mistakes_in_the_matrix_expressions_are_errors_not_the_wheels_failure(
        wheels: dict[str, Path], run_harness: RunHarness, matrix_file: Any) -> None:
    for check in ({"name": "typo", "expr": "q_kangaro.partition_gf(5)", "expected": [1]},
                  {"name": "typo", "expr": "q_kangaroo.partition_gf(5)",
                   "expected_expr": "reference.partition_number(5)"}):
        path = matrix_file(venv=[{"python": "3.12"}], extra_checks=[check])
        run = run_harness(str(wheels["good"]), "--matrix", str(path))
        cell = run.cells()[VENV]
        assert cell["verdict"] == "ERROR", cell["reason"]
        assert "the matrix's" in cell["reason"]
        assert run.returncode == 2


def test_dotted_distribution_name_on_python_3_9(wheels: dict[str, Path],
                                                 run_harness: RunHarness,
                                                 matrix_file: Any) -> None:
    import yaml

    path = matrix_file(venv=[{"python": "3.9"}])
    data = yaml.safe_load(path.read_text())
    data["package"]["distribution"] = "q.kangaroo"  # the same name under PEP 503
    path.write_text(yaml.safe_dump(data))
    run = run_harness(str(wheels["good"]), "--matrix", str(path))
    assert run.cells()["venv-py3.9"]["verdict"] == "PASS", run.output


def test_a_wheel_that_hangs_on_import_is_a_timeout_of_the_import_step_within_its_budget(
        wheels: dict[str, Path], run_harness: RunHarness, tmp_path: Path,
        docker_client: Any, images: dict[str, Any]) -> None:
    wheel = _prepend_to_init(wheels["good"], tmp_path / "dist",
                             "import time as _t\n_t.sleep(3600)\n")
    start = time.monotonic()
    run = run_harness(str(wheel), "--select", VENV, "--select", "docker-debian12-py3.11")
    assert time.monotonic() - start < 60, run.output  # default import budget: 15 s
    for cell in run.cells().values():
        assert cell["verdict"] == "TIMEOUT", cell["reason"]
        assert cell["reason"].startswith("import: no result within its 15s budget"), cell["reason"]
    assert run.returncode == 1
    assert smoke_containers(docker_client, run=run.report["run_id"]) == []  # type: ignore[index]


def test_a_zip_slip_wheel_is_refused_in_one_line_naming_the_entry(
        wheels: dict[str, Path], run_harness: RunHarness, tmp_path: Path) -> None:
    wheel = rewrite(wheels["good"], tmp_path / "dist",
                    lambda files: {**files, "../../qk-evil.txt": b"x"})
    run = run_harness(str(wheel), "--select", "venv-py3.12")
    assert run.returncode == 2, run.output
    [line] = [x for x in run.output.splitlines() if x.startswith("error:")]
    assert "'../../qk-evil.txt'" in line and "[unsafe-path]" in line
    assert "Traceback" not in run.output


def test_a_wheel_unpacking_beyond_one_gib_is_judged_not_failed_by_our_tmp(
        wheels: dict[str, Path], run_harness: RunHarness, tmp_path: Path,
        images: dict[str, Any]) -> None:
    """1.2 GiB of zeros (6 MB compressed) used to fill the cell's fixed 1 GiB /tmp: FAIL."""
    import zipfile

    src = rewrite(wheels["good"], tmp_path / "src", lambda files: files)
    wheel = tmp_path / "dist" / src.name
    wheel.parent.mkdir()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED,
                                                      compresslevel=1) as zout:
        for info in zin.infolist():
            if not info.filename.endswith("RECORD"):
                zout.writestr(info, zin.read(info))
        with zout.open("q_kangaroo/blob.bin", "w", force_zip64=True) as blob:
            for _ in range(1200):
                blob.write(bytes(1 << 20))
        record = next(n for n in zin.namelist() if n.endswith(".dist-info/RECORD"))
        zout.writestr(record, zin.read(record) + b"q_kangaroo/blob.bin,,\n")
    run = run_harness(str(wheel), "--select", "docker-debian12-py3.11")
    cell = run.cells()["docker-debian12-py3.11"]
    assert cell["verdict"] == "PASS", (cell["reason"], run.output)
