"""probe_native with fakes: Windows/macOS module lists, load attempts, library names, PATH;
what it observes judged by harness/checks.py as the host does."""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path
from typing import Any

import pytest

from harness import probe_native as pn
from harness.checks import CheckStatus, Context, provenance, sterility
from tests.unit.conftest import PACKAGE, make_wheel

CTX = Context(wheel=make_wheel(), package=PACKAGE, facts={})


class FakeFn:
    """A ctypes foreign function stand-in: records argtypes/restype, calls ``impl``."""

    def __init__(self, impl: Any) -> None:
        self.impl, self.argtypes, self.restype = impl, None, None

    def __call__(self, *args: Any) -> Any:
        return self.impl(*args)


def fake_windows(monkeypatch: pytest.MonkeyPatch, paths: list[str], *, psapi: bool) -> None:
    def enum(process: int, handles: Any, size: int, needed: Any) -> int:
        assert process == 42
        room = size // ctypes.sizeof(ctypes.c_void_p)
        for i in range(min(room, len(paths))):
            handles[i] = i + 1
        needed.contents.value = len(paths) * ctypes.sizeof(ctypes.c_void_p)
        return 1

    def name_of(handle: int, buf: Any, size: int) -> int:
        buf.value = paths[handle - 1]
        return len(buf.value)

    class Kernel32:
        GetCurrentProcess = FakeFn(lambda: 42)
        GetModuleFileNameW = FakeFn(name_of)
        K32EnumProcessModules = FakeFn(enum)

    class Psapi:
        EnumProcessModules = FakeFn(enum)

    def win_dll(name: str, use_last_error: bool = False) -> Any:
        if name == "kernel32":
            return Kernel32()
        if name == "psapi" and psapi:
            return Psapi()
        raise OSError(f"no {name}")

    monkeypatch.setattr(ctypes, "WinDLL", win_dll, raising=False)


def provenance_obs(platform: str, mapped: list[str], in_record: list[str]) -> dict[str, Any]:
    return {"step": "provenance", "platform": platform, "mapped": mapped, "loader_log": [],
            "sonames": {}, "in_record": in_record}


@pytest.mark.parametrize("psapi", [True, False])
def test_windows_module_list_reads_every_module_even_past_the_first_buffer(
        monkeypatch: pytest.MonkeyPatch, psapi: bool) -> None:
    paths = [f"C:\\Windows\\System32\\mod{i}.dll" for i in range(600)]  # > first 512 slots
    paths.append("C:\\msys64\\mingw64\\bin\\libgmp-10.dll")
    fake_windows(monkeypatch, paths, psapi=psapi)
    got = pn.loaded_modules("win32")
    assert got == paths
    judged = provenance(provenance_obs("win32", got, []), CTX)
    assert judged.status is CheckStatus.FAIL
    assert judged.detail == "loaded from outside the wheel: C:\\msys64\\mingw64\\bin\\libgmp-10.dll"


def test_macos_module_list_is_dyld_image_list(monkeypatch: pytest.MonkeyPatch) -> None:
    images = [b"/usr/lib/libSystem.B.dylib", b"/opt/homebrew/opt/gmp/lib/libgmp.10.dylib",
              b"/v/site-packages/q_kangaroo/.dylibs/libgmp.10.dylib"]
    opened: list[str] = []

    class LibSystem:
        _dyld_image_count = FakeFn(lambda: len(images))
        _dyld_get_image_name = FakeFn(lambda i: images[i])

    def cdll(name: str, *a: Any, **kw: Any) -> Any:
        opened.append(name)
        return LibSystem()

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    got = pn.loaded_modules("darwin")
    assert opened == ["/usr/lib/libSystem.B.dylib"]
    assert got == [i.decode() for i in images]
    wheel_copy = images[2].decode()
    bad = provenance(provenance_obs("darwin", got, [wheel_copy]), CTX)
    assert bad.status is CheckStatus.FAIL and bad.detail.endswith(images[1].decode())
    good = provenance(provenance_obs("darwin", [got[0], wheel_copy], [wheel_copy]), CTX)
    assert good.status is CheckStatus.PASS and good.detail == wheel_copy


def test_an_unreadable_module_list_is_an_error_not_a_skip() -> None:
    judged = provenance({"step": "provenance", "mapped": None, "platform": "win32",
                         "error": "EnumProcessModules failed (error 5)"}, CTX)
    assert judged.status is CheckStatus.ERROR and "error 5" in judged.detail


def test_linux_module_list_has_this_process_libraries() -> None:
    assert any("python" in p or "libc" in p for p in pn.loaded_modules("linux"))


@pytest.mark.parametrize(("name", "expected"), [
    ("libgmp-10.dll", True), ("LIBGMP-10.DLL", True), ("gmp.dll", True), ("GMP-10.dll", True),
    ("libgmp-10-4a5b6c.dll", True), ("gmpy2.dll", False), ("libgmpxx-4.dll", False),
    ("gmpxx.dll", False), ("libgmp.10.dylib", True), ("libgmp.dylib", True),
    ("libgmpxx.4.dylib", False), ("libgmp.so.10", True), ("libgmp-1a2b3c4d.so.10", True),
    ("LIBGMP.so.10", False), ("C:\\msys64\\mingw64\\bin\\libgmp-10.dll", True),
    ("/opt/homebrew/lib/libgmp.10.dylib", True),
])
def test_one_library_name_rule_for_every_platform(name: str, expected: bool) -> None:
    assert pn.is_library(name, "gmp") is expected


def test_path_scrub_finds_library_dirs_by_file_and_by_prefix(tmp_path: Path) -> None:
    mingw, clean, gmpy, gmpxx = (tmp_path / n for n in ("mingw-like/bin", "tools", "gmpy", "xx"))
    for d in (mingw, clean, gmpy, gmpxx):
        d.mkdir(parents=True)
    (mingw / "libgmp-10.dll").write_bytes(b"MZ")
    (gmpy / "gmpy2.dll").write_bytes(b"MZ")
    (gmpxx / "libgmpxx-4.dll").write_bytes(b"MZ")
    path = ";".join([str(clean), str(mingw), str(gmpy), str(gmpxx), "C:\\msys64\\usr\\bin",
                     "C:\\Windows\\System32", "C:\\Miniconda3\\Library\\bin"])
    got = pn.library_dirs_on_path(path, "gmp", "win32", pathsep=";")
    assert got == [str(mingw), "C:\\msys64\\usr\\bin", "C:\\Miniconda3\\Library\\bin"]


def test_path_scrub_on_macos_looks_at_the_sibling_lib_dir(tmp_path: Path) -> None:
    (tmp_path / "brew/bin").mkdir(parents=True)
    (tmp_path / "brew/lib").mkdir()
    (tmp_path / "brew/lib/libgmp.10.dylib").write_bytes(b"\xcf\xfa")
    (tmp_path / "plain/bin").mkdir(parents=True)
    path = ":".join([str(tmp_path / "plain/bin"), str(tmp_path / "brew/bin"),
                     "/opt/homebrew/bin", "/opt/local/bin", "/usr/bin"])
    assert pn.library_dirs_on_path(path, "gmp", "darwin", pathsep=":") == [
        str(tmp_path / "brew/bin"), "/opt/homebrew/bin", "/opt/local/bin"]


def test_windows_load_attempts_catch_a_dll_found_only_through_path(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []

    def cdll(name: str, *a: Any, **kw: Any) -> object:
        calls.append((name, kw.get("winmode")))
        if name == "libgmp-10.dll" and kw.get("winmode") == 0:
            return object()
        raise OSError(f"{name}: not found")

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    loaded = ["C:\\python\\python.exe", "C:\\msys64\\mingw64\\bin\\libgmp-10.dll"]
    monkeypatch.setattr(pn, "_windows_modules", lambda: loaded)
    hits = pn.try_load("gmp", "win32")
    assert hits == [{"soname": "libgmp-10.dll", "how": "LoadLibrary search order (PATH)",
                     "paths": ["C:\\msys64\\mingw64\\bin\\libgmp-10.dll"]}]
    tried = {n for n, _ in calls}
    assert {"libgmp-10.dll", "gmp.dll", "libgmp.dll"} <= tried
    assert ("libgmp-10.dll", None) in calls and ("libgmp-10.dll", 0) in calls


def test_macos_sterility_fails_when_dyld_loads_a_bare_name(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def cdll(name: str, *a: Any, **kw: Any) -> object:
        if name == "libgmp.10.dylib":
            return object()
        raise OSError(f"dlopen({name}): image not found")

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    monkeypatch.setattr(pn, "_darwin_modules", lambda: ["/usr/local/lib/libgmp.10.dylib"])
    monkeypatch.setattr(ctypes.util, "find_library",
                        lambda n: "/usr/local/lib/libgmp.dylib" if n == "gmp" else None)
    monkeypatch.setattr(pn, "search_dirs", lambda *a: [])
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("DYLD_LIBRARY_PATH", "/opt/homebrew/lib")
    monkeypatch.setenv("MINGW_BIN", "C:\\x")
    obs = pn.host_sterility(["gmp"], ["MINGW_BIN"], "darwin")
    judged = sterility(obs, CTX)
    assert judged.status is CheckStatus.FAIL
    problems = judged.data["problems"]
    assert "dlopen(libgmp.10.dylib) succeeded (/usr/local/lib/libgmp.10.dylib)" in problems
    assert "ctypes.util.find_library('gmp') = '/usr/local/lib/libgmp.dylib'" in problems
    assert "environment variable DYLD_LIBRARY_PATH is set" in problems
    assert "environment variable MINGW_BIN is set" in problems
    assert judged.data["platform"] == "darwin"


def test_windows_sterility_names_the_path_dir_and_the_search_order(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "libgmp-10.dll").write_bytes(b"MZ")
    monkeypatch.setattr(pn, "try_load", lambda lib, plat: [{
        "soname": "libgmp-10.dll", "how": "LoadLibrary search order (PATH)",
        "paths": [str(tmp_path / "libgmp-10.dll")]}])
    monkeypatch.setattr(ctypes.util, "find_library", lambda n: None)
    monkeypatch.setattr(pn, "search_dirs", lambda *a: [])
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("MINGW_BIN", raising=False)
    judged = sterility(pn.host_sterility(["gmp"], ["MINGW_BIN"], "win32"), CTX)
    assert judged.status is CheckStatus.FAIL
    assert judged.data["problems"] == [
        f"LoadLibrary search order (PATH)(libgmp-10.dll) succeeded ({tmp_path}/libgmp-10.dll)",
        f"PATH holds {tmp_path}, which has libgmp or belongs to a package manager"]


def test_sterile_when_nothing_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def cdll(name: str, *a: Any, **kw: Any) -> object:
        raise OSError(name)

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    monkeypatch.setattr(ctypes.util, "find_library", lambda n: None)
    monkeypatch.setattr(pn, "search_dirs", lambda *a: [])
    for name in ("DYLD_LIBRARY_PATH", "MINGW_BIN", "DYLD_INSERT_LIBRARIES", "LD_LIBRARY_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    obs = pn.host_sterility(["gmp"], ["MINGW_BIN"], "darwin")
    assert obs["evidence"]["gmp"]["dlopen"] == []
    assert sterility(obs, CTX).status is CheckStatus.PASS


def test_absolute_only_files_are_evidence_not_a_problem() -> None:
    obs = {"step": "sterility", "platform": "darwin", "env_set": [], "preload": [],
           "evidence": {"gmp": {"find_library": [], "dlopen": [], "files": [], "path_dirs": [],
                                "absolute_only": ["/opt/homebrew/lib/libgmp.10.dylib"]}}}
    assert sterility(obs, CTX).status is CheckStatus.PASS


def test_venv_interpreter_per_platform() -> None:
    assert pn.venv_interpreter("V", "win32") == pn.os.path.join("V", "Scripts", "python.exe")
    assert pn.venv_interpreter("V", "darwin") == pn.os.path.join("V", "bin", "python")
    assert pn.venv_interpreter("V", "linux") == pn.os.path.join("V", "bin", "python")
