"""What this platform's native loader sees (probe side: stdlib only, Python 3.9+).

Linux, Windows and macOS answer the same questions differently: which native images this
process has loaded (``loaded_modules``: /proc/self/maps, EnumProcessModules, dyld's image
list), which bare names of a library the loader can still load (``try_load``), and which
``PATH`` entries hold a library or belong to a package manager (``library_dirs_on_path``).
``is_library`` is the one library-name rule, used by the probe and the host alike.

Observations only: harness/checks.py judges them.  This file is sent to the cell as source,
spliced into probe.py in place of its ``from harness.probe_native import ...``
(``harness.environments.base.probe_source``): nothing outside the standard library, no name
that probe.py also defines (a unit test holds both).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import sys
from typing import Any

#: environment variables that make the loader find or inject libraries
LOADER_VARIABLES = {
    "linux": ("LD_LIBRARY_PATH", "LD_PRELOAD"),
    "win32": (),
    "darwin": ("DYLD_LIBRARY_PATH", "DYLD_FALLBACK_LIBRARY_PATH", "DYLD_INSERT_LIBRARIES",
               "DYLD_FRAMEWORK_PATH", "DYLD_FALLBACK_FRAMEWORK_PATH", "DYLD_IMAGE_SUFFIX",
               "DYLD_VERSIONED_LIBRARY_PATH", "LD_LIBRARY_PATH"),
}

#: where package managers keep native libraries (either path separator; case-insensitive)
KNOWN_PREFIXES = {
    "linux": (r"(^|/)(ana|mini|mamba)?(conda|forge)3?(/|$)", r"^/opt/conda(/|$)"),
    "win32": (r"[\\/](msys64|msys32|msys2|mingw64|mingw32|ucrt64|clang64|clangarm64|"
              r"cygwin64|cygwin)([\\/]|$)",
              r"[\\/](ana|mini|mamba)?(conda|forge)3?([\\/]|$)",
              r"[\\/]Library[\\/](mingw-w64[\\/])?bin[\\/]?$",  # a conda env's DLL dir
              r"[\\/]Strawberry[\\/]c[\\/]bin[\\/]?$"),         # Strawberry Perl's MinGW
    "darwin": (r"^/opt/homebrew(/|$)", r"^/usr/local/(Cellar|opt|Homebrew)(/|$)",
               r"^/opt/local(/|$)", r"^/sw(/|$)",                 # MacPorts, Fink
               r"(^|/)(ana|mini|mamba)?(conda|forge)3?(/|$)"),
}

#: macOS places off dyld's default search path: only an absolute install name reaches them
#: (evidence for the report; provenance catches a load from there)
DARWIN_ABSOLUTE_ONLY = ("/opt/homebrew/lib", "/opt/homebrew/opt/%s/lib",
                        "/usr/local/opt/%s/lib", "/opt/local/lib")


def is_library(path: str, lib: str) -> bool:
    """Whether a file name (or SONAME) names ``lib<lib>``: libgmp.so.10, libgmp-1a2b.so.10,
    libgmp.so, libgmp.a, libgmp.10.dylib, libgmp-10.dll (any case), gmp.dll; not
    libgmpxx.so.4 nor gmpy2.dll.  The one library-name rule (host and probe)."""
    name = re.split(r"[\\/]", path)[-1]
    if name.lower().endswith(".dll"):  # Windows: case-insensitive, MSVC drops the lib prefix
        name = name.lower()
        name = name if name.startswith("lib") else "lib" + name
    stem = "lib" + lib
    return name.startswith(stem) and name[len(stem):len(stem) + 1] in (".", "-", "")


def library_stem(path: str) -> str:
    """'libgmp-1a2b3c4d.so.10' and 'libgmp.so.10.4.1' -> 'libgmp': a shared object's name
    without version and without the hash auditwheel's repair adds to a bundled copy."""
    name = re.split(r"[\\/]", path)[-1].split(".so", 1)[0]
    return re.sub(r"-[0-9a-f]{8}$", "", name)


def native_platform(name: str | None = None) -> str:
    """``win32``, ``darwin`` or ``linux`` (anything else is treated like Linux)."""
    name = (sys.platform if name is None else name).lower()
    if name.startswith(("win", "cygwin", "msys")):
        return "win32"
    if name == "darwin":
        return "darwin"
    return "linux"


def venv_interpreter(venv_dir: str, platform: str | None = None) -> str:
    """The interpreter of a venv (``Scripts\\python.exe`` on Windows, else ``bin/python``)."""
    if native_platform(platform) == "win32":
        return os.path.join(venv_dir, "Scripts", "python.exe")
    return os.path.join(venv_dir, "bin", "python")


def library_names(lib: str, platform: str | None = None) -> list[str]:
    """Bare names a package would ask the loader for (no directory: the search path decides)."""
    plat = native_platform(platform)
    versions = range(0, 16)
    if plat == "win32":
        return ([f"lib{lib}-{n}.dll" for n in versions] + [f"lib{lib}.dll", f"{lib}.dll"]
                + [f"{lib}-{n}.dll" for n in versions])
    if plat == "darwin":
        return [f"lib{lib}.dylib"] + [f"lib{lib}.{n}.dylib" for n in versions]
    return [f"lib{lib}.so"] + [f"lib{lib}.so.{n}" for n in versions]


def library_files(directory: str, lib: str) -> list[str]:
    """The files of ``lib`` in one directory."""
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return []
    return [os.path.join(directory, e) for e in entries if is_library(e, lib)]


def under_known_prefix(entry: str, platform: str | None = None) -> bool:
    """Whether a directory belongs to MSYS2/MinGW, Homebrew, MacPorts, conda and the like."""
    patterns = KNOWN_PREFIXES[native_platform(platform)]
    return any(re.search(p, entry, re.IGNORECASE) for p in patterns)


def library_dirs_on_path(path: str, lib: str, platform: str | None = None,
                         pathsep: str = os.pathsep) -> list[str]:
    """PATH entries a cell must not have: they (or, on macOS, their sibling ``lib``) hold a
    file of ``lib``, or they lie under a known package-manager prefix."""
    plat = native_platform(platform)
    out: list[str] = []
    for entry in path.split(pathsep):
        if not entry or entry in out:
            continue
        places = [entry]
        if plat == "darwin":
            places.append(os.path.join(os.path.dirname(entry.rstrip("/")), "lib"))
        if under_known_prefix(entry, plat) or any(library_files(p, lib) for p in places):
            out.append(entry)
    return out


# ---------------------------------------------------------------- loaded modules


def _linux_modules() -> list[str]:
    """Files mapped into this process (/proc/self/maps)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return []
    paths: list[str] = []
    for ln in lines:
        parts = ln.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/") and parts[5] not in paths:
            paths.append(parts[5])
    return paths


def _windows_modules() -> list[str]:
    """EnumProcessModules + GetModuleFileNameW on this process (psapi, else kernel32's K32)."""
    from ctypes import wintypes

    win_dll: Any = getattr(ctypes, "WinDLL")  # noqa: B009 (typeshed: Windows only)
    kernel32 = win_dll("kernel32", use_last_error=True)
    try:
        enum = win_dll("psapi", use_last_error=True).EnumProcessModules
    except (OSError, AttributeError):
        enum = kernel32.K32EnumProcessModules
    kernel32.GetCurrentProcess.restype = wintypes.HANDLE
    enum.argtypes = [wintypes.HANDLE, ctypes.POINTER(wintypes.HMODULE), wintypes.DWORD,
                     ctypes.POINTER(wintypes.DWORD)]
    enum.restype = wintypes.BOOL
    name_of = kernel32.GetModuleFileNameW
    name_of.argtypes = [wintypes.HMODULE, wintypes.LPWSTR, wintypes.DWORD]
    name_of.restype = wintypes.DWORD
    process = kernel32.GetCurrentProcess()
    size = 512
    while True:
        handles = (wintypes.HMODULE * size)()
        needed = wintypes.DWORD(0)
        if not enum(process, handles, ctypes.sizeof(handles), ctypes.pointer(needed)):
            error = getattr(ctypes, "get_last_error")()  # noqa: B009 (Windows only)
            raise OSError(f"EnumProcessModules failed (error {error})")
        count = needed.value // ctypes.sizeof(wintypes.HMODULE)
        if count <= size:
            break
        size = count  # more modules than room: ask again with enough
    paths: list[str] = []
    for handle in list(handles)[:count]:
        buf = ctypes.create_unicode_buffer(32768)
        if handle and name_of(handle, buf, len(buf)) and buf.value not in paths:
            paths.append(buf.value)
    return paths


def _darwin_modules() -> list[str]:
    """dyld's image list (_dyld_image_count / _dyld_get_image_name from libSystem)."""
    system = ctypes.CDLL("/usr/lib/libSystem.B.dylib")
    system._dyld_image_count.restype = ctypes.c_uint32
    system._dyld_get_image_name.argtypes = [ctypes.c_uint32]
    system._dyld_get_image_name.restype = ctypes.c_char_p
    paths: list[str] = []
    for i in range(system._dyld_image_count()):
        raw = system._dyld_get_image_name(i)
        name = raw.decode("utf-8", "replace") if raw else ""
        if name and name not in paths:
            paths.append(name)
    return paths


def loaded_modules(platform: str | None = None) -> list[str]:
    """Every native image this process has loaded now (paths); OSError when the system's
    list cannot be read (Windows, macOS)."""
    plat = native_platform(platform)
    if plat == "win32":
        return _windows_modules()
    if plat == "darwin":
        return _darwin_modules()
    return _linux_modules()


# ---------------------------------------------------------------- trying to load


def _load_attempts(name: str, plat: str) -> list[tuple[str, Any]]:
    """(how, loader call) pairs: on Windows the safe default search and the classic one
    (winmode=0: application dir, System32, Windows, cwd, PATH) that some packages use."""
    if plat == "win32":
        return [("LoadLibraryEx default dirs", lambda: ctypes.CDLL(name)),
                ("LoadLibrary search order (PATH)", lambda: ctypes.CDLL(name, winmode=0))]
    return [("dlopen", lambda: ctypes.CDLL(name))]


def try_load(lib: str, platform: str | None = None) -> list[dict[str, Any]]:
    """Load every bare name of ``lib`` the way a package would; one entry per success, with
    the files of ``lib`` loaded afterwards.  Nothing loaded is the sterile answer."""
    plat = native_platform(platform)
    hits: list[dict[str, Any]] = []
    for name in library_names(lib, plat):
        for how, attempt in _load_attempts(name, plat):
            try:
                attempt()
            except OSError:
                continue
            try:
                paths = [p for p in loaded_modules(plat) if is_library(p, lib)]
            except OSError:
                paths = []
            hits.append({"soname": name, "how": how, "paths": paths})
    return hits


def find_library_hits(lib: str, platform: str | None = None) -> list[str]:
    """What ``ctypes.util.find_library`` answers for the library's stems (Windows searches
    PATH for NAME.dll; macOS asks dyld with its fallback paths)."""
    stems = [lib]
    if native_platform(platform) == "win32":
        stems += ["lib" + lib] + [f"lib{lib}-{n}" for n in range(0, 16)]
    out: list[str] = []
    for stem in stems:
        found = ctypes.util.find_library(stem)
        if found and found not in out:
            out.append(found)
    return out


def search_dirs(platform: str | None = None, environ: Any = None) -> list[str]:
    """Directories Windows' or macOS's loader searches for a bare name by default (besides
    PATH on Windows, which ``library_dirs_on_path`` covers)."""
    plat = native_platform(platform)
    env = os.environ if environ is None else environ
    dirs: list[str] = []
    if plat == "win32":
        root = env.get("SYSTEMROOT") or env.get("WINDIR") or "C:\\Windows"
        dirs += [os.path.dirname(sys.executable), sys.base_prefix,
                 os.path.join(sys.base_prefix, "DLLs"), os.path.join(root, "System32"), root,
                 os.getcwd()]
    elif plat == "darwin":
        home = env.get("HOME", "")
        dirs += ([os.path.join(home, "lib")] if home else []) + ["/usr/local/lib", "/usr/lib",
                                                                 os.getcwd()]
    seen: list[str] = []
    for d in dirs:
        if d not in seen and os.path.isdir(d):
            seen.append(d)
    return seen


def host_sterility(libraries: list[str], forbidden_env: list[str],
                   platform: str | None = None) -> dict[str, Any]:
    """Windows/macOS: every way the libraries could still be found or loaded, and which
    forbidden or loader variables are set (the same shape as the Linux observation)."""
    plat = native_platform(platform)
    dirs = search_dirs(plat)
    evidence: dict[str, Any] = {}
    for lib in libraries:
        absolute = [d % lib if "%s" in d else d for d in DARWIN_ABSOLUTE_ONLY]
        evidence[lib] = {
            "find_library": find_library_hits(lib, plat),
            "dlopen": try_load(lib, plat),
            "files": [f for d in dirs for f in library_files(d, lib)],
            "path_dirs": library_dirs_on_path(os.environ.get("PATH", ""), lib, plat),
            "absolute_only": ([f for d in absolute for f in library_files(d, lib)]
                              if plat == "darwin" else []),
        }
    names = list(forbidden_env) + list(LOADER_VARIABLES[plat])
    return {"platform": plat, "evidence": evidence, "searched_dirs": dirs, "preload": [],
            "env_set": [n for n in dict.fromkeys(names) if n in os.environ]}
