"""Host cells: allowlisted environment and PATH scrub, matrix entries -> cells -> runner,
ERROR on the wrong machine, the one probe source (spliced, packed), host diagnoses."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import cells, diagnosis, probe, probe_native, shard
from harness.environments import base, host
from harness.environments.base import ProbeSpec, Setup
from harness.errors import InfrastructureError, InputError
from harness.interpreters import Interpreter
from harness.kinds.host import HostEntry, system
from harness.matrix import load, validate
from harness.verdict import ProbeRun, Verdict, judge
from harness.wheel import WheelInfo
from tests.unit.conftest import PACKAGE, for_wheel, make_wheel, passing_events, release_of


def windows_source(tmp_path: Path) -> dict[str, str]:
    mingw = tmp_path / "msys-like" / "bin"
    mingw.mkdir(parents=True)
    (mingw / "libgmp-10.dll").write_bytes(b"MZ")
    return {"SystemRoot": "C:\\Windows", "WINDIR": "C:\\Windows", "COMSPEC": "cmd.exe",
            "PATHEXT": ".COM;.EXE", "PROCESSOR_ARCHITECTURE": "AMD64", "NUMBER_OF_PROCESSORS": "4",
            "PATH": ";".join(["C:\\Windows\\System32", str(mingw), "C:\\msys64\\usr\\bin",
                              "C:\\hostedtoolcache\\Python\\3.12.7\\x64"]),
            "MINGW_BIN": str(mingw), "PYTHONPATH": "C:\\src", "HTTP_PROXY": "http://p",
            "USERPROFILE": "C:\\Users\\runner", "TEMP": "C:\\Users\\runner\\Temp",
            "CONDA_PREFIX": "C:\\Miniconda", "VIRTUAL_ENV": "C:\\venv"}


def test_windows_environment_is_an_allowlist_with_path_scrubbed(tmp_path: Path) -> None:
    built = host.host_variables(platform="win32", source=windows_source(tmp_path), home="H",
                                tmp="T", libraries=["gmp"], pathsep=";")
    env = built.variables
    assert set(env) == {"SYSTEMROOT", "WINDIR", "COMSPEC", "PATHEXT", "PROCESSOR_ARCHITECTURE",
                        "NUMBER_OF_PROCESSORS", "PATH", "TEMP", "TMP", "USERPROFILE",
                        "APPDATA", "LOCALAPPDATA"}
    assert env["SYSTEMROOT"] == "C:\\Windows"  # found although spelled SystemRoot
    assert env["TEMP"] == env["TMP"] == "T" and env["USERPROFILE"] == "H"
    assert env["PATH"] == "C:\\Windows\\System32;C:\\hostedtoolcache\\Python\\3.12.7\\x64"
    assert built.removed_path == (str(tmp_path / "msys-like" / "bin"), "C:\\msys64\\usr\\bin")
    assert "MINGW_BIN" not in env and "PYTHONPATH" not in env


def test_macos_environment_has_four_variables_and_no_loader_ones() -> None:
    source = {"PATH": "/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin", "HOME": "/Users/r",
              "DYLD_LIBRARY_PATH": "/opt/homebrew/lib", "DYLD_FALLBACK_LIBRARY_PATH": "/x",
              "DYLD_INSERT_LIBRARIES": "/x.dylib", "MINGW_BIN": "x", "LANG": "de_DE.UTF-8"}
    built = host.host_variables(platform="darwin", source=source, home="/h", tmp="/t",
                                libraries=["gmp"], pathsep=":")
    assert dict(built.variables) == {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/h",
                                     "TMPDIR": "/t", "LANG": "en_US.UTF-8"}
    assert built.removed_path == ("/opt/homebrew/bin",)
    assert not set(built.variables) & set(probe_native.LOADER_VARIABLES["darwin"])


HOSTS = """
environments:
  host:
    - {python: "3.12"}
    - {python: "3.9", os: [macos], timeout: 60}
    - {python: 'C:\\\\Py\\\\python.exe', os: [windows]}
    - {python: "3.13", id: newest}
"""


def write_matrix(tmp_path: Path, environments: str) -> Path:
    path = tmp_path / "matrix.yaml"
    path.write_text("package: {distribution: q_kangaroo, import: q_kangaroo}\n" + environments)
    return path


def test_host_entries_expand_to_one_cell_per_system_with_its_runner(tmp_path: Path) -> None:
    expanded = cells.expand(load(write_matrix(tmp_path, HOSTS)))
    assert [(c.id, system(c), shard.runner(c), c.timeout) for c in expanded] == [
        ("host-windows-py3.12", "windows", "windows-latest", 300.0),
        ("host-macos-py3.12", "macos", "macos-latest", 300.0),
        ("host-macos-py3.9", "macos", "macos-latest", 60),
        ("host-windows-python.exe", "windows", "windows-latest", 300.0),
        ("newest-windows", "windows", "windows-latest", 300.0),
        ("newest-macos", "macos", "macos-latest", 300.0)]
    assert expanded[0].kind == "host" and expanded[0].matches("py3.12-windows")
    jobs = shard.job_list(expanded)
    assert [j["runner"] for j in jobs][:2] == ["windows-latest", "macos-latest"]
    assert jobs[0]["system"] == "windows" and jobs[0]["python"] == "3.12"


def test_host_ids_must_differ(tmp_path: Path) -> None:
    twice = "environments:\n  host:\n    - {python: '3.12'}\n    - {python: '3.12'}\n"
    with pytest.raises(InputError, match=r"host-windows-py3\.12"):
        cells.expand(load(write_matrix(tmp_path, twice)))


@pytest.mark.parametrize("entry", [{"python": "3.12", "os": ["linux"]},
                                   {"python": "3.12", "image": "x"}, {"os": ["windows"]},
                                   {"python": "3.12", "os": []}])
def test_host_schema_rejects_unknown_systems_and_keys(entry: dict[str, Any]) -> None:
    data = {"package": {"distribution": "d", "import": "d"}, "environments": {"host": [entry]}}
    errors = validate(data, "m.yaml")
    assert errors and all(e.startswith("m.yaml: environments.host[0]") for e in errors)


def host_cell(system: str = "windows") -> cells.Cell:
    return cells.Cell(id=f"host-{system}-py3.12", kind="host",
                      entry=HostEntry(python="3.12", os=(system,)), timeout=60)


def test_a_host_cell_on_the_wrong_machine_is_an_error_not_a_skip(tmp_path: Path) -> None:
    found = Interpreter(executable=Path(sys.executable), version="3.12.1")
    res = host.HostResources(root=tmp_path, uv="uv", libraries=("gmp",),
                             interpreters={"3.12": found}, platform="linux")
    with pytest.raises(InfrastructureError, match=r"runs only on windows .*windows CI runner"):
        res.environment(host_cell())
    assert host.wrong_machine(host_cell(), "win32") is None
    assert host.wrong_machine(host_cell("macos"), "win32") is not None
    mac = host.HostResources(root=tmp_path, uv="uv", libraries=("gmp",),
                             interpreters={"3.12": "no Python 3.12 found"}, platform="darwin")
    with pytest.raises(InfrastructureError, match=r"no Python 3\.12 found"):
        mac.environment(host_cell("macos"))
    ready = host.HostResources(root=tmp_path, uv="uv", libraries=("gmp",),
                               interpreters={"3.12": found}, platform="darwin")
    with ready.environment(host_cell("macos")) as env:
        assert isinstance(env, host.HostEnvironment) and env.workdir.is_dir()
    assert not env.workdir.exists()


def test_prepare_looks_for_no_interpreter_on_the_wrong_machine(tmp_path: Path) -> None:
    logs: list[str] = []
    setup = Setup(run_id="r", root=tmp_path, package=PACKAGE, uv="uv", log=logs.append)
    res = host.prepare(setup, [host_cell("windows"), host_cell("macos")])
    assert res.interpreters == {} and logs == []  # this Linux machine runs neither


def test_an_overlong_windows_command_line_is_an_error(tmp_path: Path) -> None:
    env = host.HostEnvironment(python=Path("C:/py/python.exe"), run_root=tmp_path, uv="uv",
                               cell_id="w", libraries=["gmp"], source_env={}, platform="win32")
    spec = ProbeSpec(package=PACKAGE, release=release_of(make_wheel()))
    argv = env.command(spec, "")
    assert argv[4] == probe.BOOTSTRAP and argv[5].startswith("zlib:")
    assert host.command_line_length(argv) < host.WINDOWS_COMMAND_LINE
    big = ProbeSpec(package=PACKAGE.__class__(**{**vars(PACKAGE), "absent_env": (
        "X" * 40000,)}), release=release_of(make_wheel()))
    with env:
        run = env.run(big, timeout=5)
    assert run.infra_error and "more than Windows' 32767" in run.infra_error


# ---------------------------------------------------------------- the probe source


def _top_level_names(source: str) -> set[str]:
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def test_probe_native_defines_nothing_probe_defines() -> None:
    native = Path(probe_native.__file__).read_text(encoding="utf-8")
    own = Path(probe.__file__).read_text(encoding="utf-8")
    assert not _top_level_names(native) & _top_level_names(own)


def test_probe_native_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(probe_native.__file__).read_text(encoding="utf-8"))
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
               for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
    assert modules <= set(sys.stdlib_module_names)


def test_one_probe_source_for_every_kind_with_probe_native_spliced_in() -> None:
    source = base.probe_source()
    tree = ast.parse(source, feature_version=(3, 9))
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [n for n in imports if n.module and n.module.startswith("harness")]
    futures = [i for i, n in enumerate(tree.body)
               if isinstance(n, ast.ImportFrom) and n.module == "__future__"]
    assert futures == [1]  # after the docstring, once
    assert _top_level_names(Path(probe_native.__file__).read_text()) <= _top_level_names(source)
    spec = ProbeSpec(package=PACKAGE, release=release_of(make_wheel()))
    assert spec.argv("py", wheel_dir="w", uv="u", workdir="d")[5] == source  # venv, container
    packed = spec.argv("py", packed=True, wheel_dir="w", uv="u", workdir="d")[5]
    import base64
    import zlib

    assert zlib.decompress(base64.b64decode(packed[5:])).decode() == source


def _checks_spec() -> str:
    spec = json.loads(ProbeSpec(package=PACKAGE, release=release_of(make_wheel())).to_json(
        wheel_dir="w", uv="u", workdir="d"))
    spec["mode"] = "checks"
    spec["package"]["import_name"] = "no_such_module_here"
    return json.dumps(spec)


@pytest.mark.parametrize("packed", [False, True])
def test_the_spliced_probe_runs_on_python_39_plain_and_packed(packed: bool) -> None:
    from harness import interpreters

    py39 = interpreters.find("3.9").executable
    source = base.pack(base.PROBE_SOURCE) if packed else base.PROBE_SOURCE
    out = subprocess.run([str(py39), "-I", "-S", "-c", probe.BOOTSTRAP, source,
                          _checks_spec()], capture_output=True, text=True, timeout=60,
                         check=False)
    events = [json.loads(line[len(probe.MARKER):]) for line in out.stdout.splitlines()
              if line.startswith(probe.MARKER)]
    imp = [e for e in events if e.get("step") == "import" and e["event"] == "observed"]
    assert imp and imp[0]["exception"]["type"] == "ModuleNotFoundError", out.stderr


# ---------------------------------------------------------------- judged and diagnosed

WIN_FACTS = {"version": "3.12.7", "version_info": [3, 12, 7], "implementation": "cpython",
             "machine": "AMD64", "glibc": "", "abiflags": "", "sys_platform": "win32",
             "sysconfig_platform": "win-amd64", "system": "Windows"}
WIN_SITE = "C:\\v\\Lib\\site-packages"


def windows_wheel(*, dll: bool, tag: str = "cp39-abi3-win_amd64") -> WheelInfo:
    from dataclasses import replace

    from packaging.tags import parse_tag

    files = ["q_kangaroo/__init__.py", "q_kangaroo/_q_kangaroo.pyd"]
    files += ["q_kangaroo.libs/libgmp-10-4f2a.dll"] if dll else []
    return replace(make_wheel(), files=tuple(files), elf=(),
                   path=Path(f"/w/q_kangaroo-1.0.0-{tag}.whl"), tags=frozenset(parse_tag(tag)))


def windows_cell(wheel: WheelInfo, facts: dict[str, Any] = WIN_FACTS,
                 **replace: dict[str, Any]) -> Any:
    init = f"{WIN_SITE}\\q_kangaroo\\__init__.py"
    pyd = f"{WIN_SITE}\\q_kangaroo\\_q_kangaroo.pyd"
    dll = f"{WIN_SITE}\\q_kangaroo.libs\\libgmp-10-4f2a.dll"
    good = {
        "sterility": {"platform": "win32", "evidence": {"gmp": {
            "find_library": [], "dlopen": [], "files": [], "path_dirs": [],
            "absolute_only": []}}, "env_set": [], "preload": []},
        "import": {"exception": None, "file": init, "site_packages": [WIN_SITE],
                   "modules": {"q_kangaroo": init, "q_kangaroo._q_kangaroo": pyd},
                   "in_record": [init, pyd],
                   "extensions": [{"module": "q_kangaroo._q_kangaroo", "exception": None}]},
        "provenance": {"platform": "win32", "mapped": ["C:\\py\\python.exe", pyd, dll],
                       "loader_log": [], "sonames": {}, "in_record": [pyd, dll]},
    }
    events = for_wheel(passing_events(facts, **{**good, **replace}), wheel)
    package = PACKAGE.__class__(**{**vars(PACKAGE), "wheel_tags": ("cp39-abi3-*",)})
    result = judge(ProbeRun(events=tuple(events)), cell_id="host-windows-py3.12", kind="host",
                   release=release_of(wheel), package=package)
    return result, diagnosis.explain(result, wheel, package).diagnosis


def test_a_good_windows_cell_passes_with_its_dll_from_the_wheel() -> None:
    result, _ = windows_cell(windows_wheel(dll=True))
    assert result.verdict is Verdict.PASS, [(c.name, c.detail) for c in result.checks]
    assert "libgmp-10-4f2a.dll" in result.check("provenance").detail


def test_windows_dll_from_msys2_fails_provenance_and_names_delvewheel() -> None:
    msys = "C:\\msys64\\mingw64\\bin\\libgmp-10.dll"
    result, d = windows_cell(windows_wheel(dll=False), provenance={
        "platform": "win32", "mapped": ["C:\\py\\python.exe", msys], "loader_log": [],
        "sonames": {}, "in_record": []})
    assert result.verdict is Verdict.FAIL and result.failed_check.name == "provenance"
    assert msys in d.advice and "delvewheel repair" in d.advice
    assert "q_kangaroo.libs/" in d.advice


def test_windows_sterility_failure_is_invalid_with_windows_advice() -> None:
    result, d = windows_cell(windows_wheel(dll=True), sterility={
        "platform": "win32", "env_set": [], "preload": [], "evidence": {"gmp": {
            "find_library": ["C:\\py\\gmp.dll"], "dlopen": [], "files": [], "path_dirs": []}}})
    assert result.verdict is Verdict.INVALID
    assert "System32" in d.advice and "nothing was proven" in d.title


def test_windows_dll_not_bundled_names_delvewheel_and_the_environment_cause() -> None:
    exc = {"type": "ImportError", "message": "DLL load failed while importing _q_kangaroo: "
           "The specified module could not be found.", "traceback": ""}
    _, d = windows_cell(windows_wheel(dll=False), **{"import": {"exception": exc}})
    assert d.title == "libgmp DLL is not bundled into the wheel"
    assert "delvewheel repair --add-path" in d.advice
    assert "os.add_dll_directory(os.environ" in d.advice and "pitfall" not in d.advice
    _, d = windows_cell(windows_wheel(dll=True), **{"import": {"exception": exc}})
    assert d.title == "the bundled DLL is not on the DLL search path"
    assert "q_kangaroo.libs/libgmp-10-4f2a.dll" in d.advice


def test_macos_homebrew_install_name_names_delocate() -> None:
    exc = {"type": "ImportError", "traceback": "", "message": "dlopen(/v/q_kangaroo/"
           "_q_kangaroo.abi3.so, 0x0002): Library not loaded: /opt/homebrew/opt/gmp/lib/"
           "libgmp.10.dylib\n  Referenced from: ..."}
    mac = {**WIN_FACTS, "sys_platform": "darwin", "mac_version": "14.5", "machine": "arm64"}
    result, d = windows_cell(windows_wheel(dll=False, tag="cp39-abi3-macosx_11_0_arm64"), mac,
                             **{"import": {"exception": exc}})
    assert result.failed_check.name == "import"
    assert "absolute path" in d.advice and "/opt/homebrew/opt/gmp/lib/libgmp.10.dylib" in d.advice
    assert "delocate-wheel" in d.advice and "q_kangaroo/.dylibs/" in d.advice


def test_a_windows_wheel_is_refused_by_a_linux_cell_and_taken_by_a_windows_one() -> None:
    from harness import tags

    wheel = windows_wheel(dll=True)
    assert tags.compatible(wheel.tags, WIN_FACTS)
    assert not tags.compatible(wheel.tags, {**WIN_FACTS, "sys_platform": "linux",
                                            "glibc": "2.36", "machine": "x86_64"})
    mac = {**WIN_FACTS, "sys_platform": "darwin", "mac_version": "14.5", "machine": "arm64"}
    assert "macosx_11_0_arm64" in tags.platforms(mac)
