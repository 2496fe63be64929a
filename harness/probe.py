"""The probe: stdlib-only code that runs *inside* the cell's Python (3.9-compatible).

It is started as ``python -I -S -c BOOTSTRAP PROBE_SOURCE SPEC_JSON`` (the checks process
without -S: it needs the venv's site-packages) so it needs no file on the target and never
imports from a working directory.  Two modes:

``cell``   (base interpreter of the cell)  facts -> sterility -> venv -> install -> checks child
``checks`` (the new venv's interpreter)    import -> version -> declared checks -> provenance

Every observation is one JSON line on stdout, prefixed by ``MARKER``; anything else a
package prints goes to stderr.  The probe only observes (what it found, loaded, mapped,
computed): ``started`` when a step begins, ``observed`` with the step's facts when it ends.
The host alone judges them (harness/checks.py).  The cell mode enforces per-step time
budgets on the checks process (``budgets`` in the spec) and reports a step that overran.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import sysconfig
import threading
import time
import traceback
from typing import Any

from harness.probe_native import (  # sent as source: base.probe_source splices it in here
    host_sterility,
    is_library,
    loaded_modules,
    native_platform,
    venv_interpreter,
)

MARKER = "@@probe "
#: runs the source in argv[1]: plain, or ``zlib:`` + base64 (for Windows' short command line)
BOOTSTRAP = ("import sys,zlib,base64;a=sys.argv[1];exec(compile(zlib.decompress(base64."
             "b64decode(a[5:])).decode('utf-8') if a.startswith('zlib:') else a,'<probe>','exec'))")
DEFAULT_LIB_DIRS = (
    "/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/local/lib64",
)

_events_fd = 1
_marks = None  # [[label, wall time], ...] when the spec asks for a profile (bench --profile)


def mark(label: str) -> None:
    """The probe's step ``label`` ended now (only when profiling)."""
    if _marks is not None:
        _marks.append([label, time.time()])


def emit(event: str, **data: object) -> None:
    """Write one event line on the saved stdout descriptor."""
    line = MARKER + json.dumps(dict(event=event, **data), default=repr) + "\n"
    os.write(_events_fd, line.encode("utf-8"))


def observed(step: str, **data: object) -> None:
    """Report what one step found; the host judges it."""
    emit("observed", step=step, **data)


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# ---------------------------------------------------------------- facts and sterility


def interpreter_facts() -> dict[str, object]:
    """What the host needs to know about this interpreter (tags, report)."""
    libc, libc_version = platform.libc_ver()
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):
        glibc = ""
    return {
        "executable": sys.executable,
        "version": platform.python_version(),
        "version_info": list(sys.version_info[:3]),
        "implementation": sys.implementation.name,
        "abiflags": getattr(sys, "abiflags", ""),
        "soabi": sysconfig.get_config_var("SOABI") or "",
        "machine": platform.machine(),
        "system": platform.system(),
        "glibc": glibc.split()[-1] if glibc.startswith("glibc") else "",
        "musl": "" if glibc else musl_version(),
        "libc": libc + (" " + libc_version if libc_version else ""),
        "sys_platform": sys.platform,
        "mac_version": platform.mac_ver()[0],
        "sysconfig_platform": sysconfig.get_platform(),
        "uid": os.getuid() if hasattr(os, "getuid") else None,
        "cwd": os.getcwd(),
    }


def musl_version() -> str:
    """The musl loader's version ("1.2.4"), as packaging finds it; "" when not musl."""
    import glob

    for loader in sorted(glob.glob("/lib/ld-musl-*.so.1")):
        try:
            err = subprocess.run([loader], capture_output=True, text=True, timeout=10).stderr
        except (OSError, subprocess.SubprocessError):
            continue
        match = re.search(r"^Version (\d+\.\d+(\.\d+)?)", err, re.M)
        if err.startswith("musl") and match:
            return match.group(1)
    return ""


def library_dirs() -> list[str]:
    """Directories the dynamic loader searches by default, plus this Python's LIBDIR."""
    dirs = list(DEFAULT_LIB_DIRS)
    machine_dirs = [d for d in ("/lib", "/usr/lib") if os.path.isdir(d)]
    for base in machine_dirs:
        for entry in os.listdir(base):
            if entry.endswith("-linux-gnu") or entry.endswith("-linux-musl"):
                dirs.append(os.path.join(base, entry))
    dirs.extend(_ld_so_conf_dirs("/etc/ld.so.conf", 0))
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir:
        dirs.append(libdir)
    dirs.extend(_loader_search_dirs(dirs))
    seen: list[str] = []
    for d in dirs:
        real = os.path.realpath(d)
        if os.path.isdir(real) and real not in seen:
            seen.append(real)
    return seen


def _loader_search_dirs(base: list[str]) -> list[str]:
    """The loader's own search path (glibc-hwcaps, tls and legacy platform subdirs), as
    LD_DEBUG=libs shows it for a library that does not exist; plus glibc-hwcaps/* of base."""
    import glob

    dirs = [d for b in base for d in sorted(glob.glob(os.path.join(b, "glibc-hwcaps", "*")))]
    env = dict(os.environ, LD_DEBUG="libs")
    env.pop("LD_DEBUG_OUTPUT", None)
    try:
        err = subprocess.run(
            [sys.executable, "-I", "-S", "-c",
             "import ctypes; ctypes.CDLL('libprobe-search-path-nonexistent.so')"],
            capture_output=True, text=True, env=env, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return dirs
    for line in err.splitlines():
        if "search path=" in line:
            path = line.split("search path=", 1)[1].split("\t")[0].strip()
            dirs.extend(d for d in path.split(":") if d)
    return dirs


def _preload_entries() -> list[str]:
    """What /etc/ld.so.preload makes the loader load into every process (even ``-I``)."""
    try:
        with open("/etc/ld.so.preload", encoding="utf-8", errors="replace") as fh:
            return fh.read().replace(":", " ").split()
    except FileNotFoundError:
        return []
    except OSError as exc:
        return ["(unreadable: %s)" % exc]


def _ld_so_conf_dirs(path: str, depth: int) -> list[str]:
    import glob

    out: list[str] = []
    if depth > 4 or not os.path.isfile(path):
        return out
    with open(path, encoding="utf-8", errors="replace") as fh:
        for raw in fh:
            line = raw.split("#", 1)[0].strip()
            if line.startswith("include "):
                for inc in sorted(glob.glob(line.split(None, 1)[1].strip())):
                    out.extend(_ld_so_conf_dirs(inc, depth + 1))
            elif line.startswith("/"):
                out.append(line)
    return out


def _ldconfig_entries(lib: str) -> list[str]:
    for ldconfig in ("/sbin/ldconfig", "/usr/sbin/ldconfig"):
        if os.path.exists(ldconfig):
            try:
                out = subprocess.run(
                    [ldconfig, "-p"], capture_output=True, text=True, timeout=30
                ).stdout
            except (OSError, subprocess.SubprocessError):
                return []
            return [ln.strip() for ln in out.splitlines()
                    if ln.strip() and is_library(ln.split()[0], lib)]
    return []


def _dlopen_attempts(lib: str) -> list[dict[str, Any]]:
    """Try to load the library the way an extension would; return what loaded."""
    loaded = []
    for soname in ["lib%s.so" % lib] + ["lib%s.so.%d" % (lib, n) for n in range(0, 16)]:
        try:
            ctypes.CDLL(soname)
        except OSError:
            continue
        where = [p for p in loaded_modules("linux") if is_library(p, lib)]
        loaded.append({"soname": soname, "paths": where})
    return loaded


def interpreter_files() -> list[str]:
    """This interpreter's own native files: the executable, libpython, the standard
    library's extension modules (lib-dynload)."""
    files = [os.path.realpath(sys.executable)]
    libdir, ldlib = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("LDLIBRARY")
    if libdir and ldlib and ".so" in ldlib and os.path.exists(os.path.join(libdir, ldlib)):
        files.append(os.path.realpath(os.path.join(libdir, ldlib)))
    dynload = sysconfig.get_config_var("DESTSHARED") or os.path.join(
        sysconfig.get_paths()["platstdlib"], "lib-dynload")
    try:
        names = sorted(os.listdir(dynload))
    except OSError:
        names = []
    files += [os.path.join(dynload, n) for n in names if n.endswith(".so")]
    return files


def ldd(files: list[str]) -> tuple[dict[str, dict[str, Any]], str]:
    """What the loader resolves for each file, its whole closure (``ldd``): file -> NEEDED
    name -> resolved path, or None when not found; and why not, if ldd could not run."""
    import shutil

    tool = shutil.which("ldd", path=os.environ.get("PATH") or "/usr/bin:/bin")
    if tool is None or not files:
        return {}, "" if files else "no files"
    try:
        out = subprocess.run([tool, *files], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return {}, "ldd: %s" % exc
    result: dict[str, dict[str, Any]] = {f: {} for f in files}
    current = files[0]
    for line in out.splitlines():
        if not line.startswith(("\t", " ")) and line.rstrip().endswith(":"):
            current = line.rstrip()[:-1]
            result.setdefault(current, {})
            continue
        text = line.strip()
        if "=>" in text:
            name, where = (t.strip() for t in text.split("=>", 1))
            path = where.split(" (0x", 1)[0].strip()
            result[current][name] = (None if path.startswith("not found") or not path
                                     else os.path.realpath(path))
        elif text.startswith("/"):  # the loader itself
            path = text.split(" (0x", 1)[0].strip()
            result[current][os.path.basename(path)] = os.path.realpath(path)
    return result, ""


_LIBC_PARTS = re.compile(r"^(libc|libm|libpthread|libdl|librt|libutil|libpython\d.*|ld-.*)\.so")


def _needs_beyond_libc(path: str) -> bool:
    """Whether a file NEEDs more than the C library and libpython (worth asking ldd)."""
    dyn = elf_dynamic(path)
    return dyn is None or any(not _LIBC_PARTS.match(n) for n in dyn["needed"])


def interpreter_needs(libraries: list[str], dirs: list[str] | None = None) -> dict[str, Any]:
    """Which of the libraries this interpreter or its standard library's extensions load
    (their closure, as the loader resolves it): those must stay loadable for Python itself.
    Only files of a library the cell can still see are looked up (a scrubbed one costs
    nothing)."""
    dirs = library_dirs() if dirs is None else dirs
    present = [lib for lib in libraries
               if any(is_library(f, lib) for d in dirs for f in os.listdir(d))]
    if not present:
        return {"needs": {}, "missing": {}, "error": ""}
    closure, error = ldd([f for f in interpreter_files() if _needs_beyond_libc(f)])
    # ldd lists what /etc/ld.so.preload forces into every process: no need of Python's (the
    # cells' sandbox neutralises the preload, and sterility reports it where it is not)
    preloaded = {os.path.realpath(p) for p in _preload_entries()}
    needs: dict[str, list[str]] = {}
    for lib in present:
        hits = sorted({path for res in closure.values() for name, path in res.items()
                       if path and path not in preloaded
                       and (is_library(name, lib) or is_library(path, lib))})
        if hits:
            needs[lib] = hits
    missing = {os.path.basename(f): sorted(n for n, p in res.items() if p is None)
               for f, res in closure.items() if any(p is None for p in res.values())}
    return {"needs": needs, "missing": missing, "error": error}


def sterility(libraries: list[str], forbidden_env: list[str]) -> dict[str, Any]:
    """Every way the forbidden libraries could be found or loaded, and which forbidden
    variables are set: the evidence the host judges (all empty = clean)."""
    plat = native_platform()
    if plat != "linux":
        return host_sterility(libraries, forbidden_env, plat)
    evidence = linux_sterility(libraries, forbidden_env)
    return dict(evidence, platform=plat,
                interpreter=interpreter_needs(libraries, evidence["searched_dirs"]))


def linux_sterility(libraries: list[str], forbidden_env: list[str]) -> dict[str, Any]:
    """Linux: the linker cache, dlopen of every soname, the loader's directories, preloads."""
    evidence: dict[str, Any] = {}
    dirs = library_dirs()
    mark("sterility: loader's directories")
    for lib in libraries:
        found = ctypes.util.find_library(lib)
        mark("sterility: find_library")
        ldconfig = _ldconfig_entries(lib)
        mark("sterility: ldconfig -p")
        dlopen = _dlopen_attempts(lib)
        mark("sterility: dlopen")
        evidence[lib] = {
            "find_library": found, "ldconfig": ldconfig, "dlopen": dlopen,
            "files": sorted(os.path.join(d, f) for d in dirs for f in os.listdir(d)
                            if is_library(f, lib)),
        }
        mark("sterility: files")
    env_set = [n for n in list(forbidden_env) + ["LD_LIBRARY_PATH", "LD_PRELOAD"]
               if n in os.environ]
    return {"evidence": evidence, "env_set": env_set, "searched_dirs": dirs,
            "preload": _preload_entries()}


# ---------------------------------------------------------------- cell mode


def _run(argv: list[str], cwd: str, timeout: float = 600) -> tuple[int, str, str, float]:
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start


def _sha256(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class StepClock:
    """Which step of the checks process runs since when, against its time budget."""

    def __init__(self, budgets: dict[str, float]) -> None:
        self.budgets = budgets
        self.step: str | None = None
        self.since = 0.0
        self.lock = threading.Lock()

    def event(self, event: dict[str, Any], now: float) -> None:
        """Follow the checks process's ``started``/``observed`` events."""
        with self.lock:
            if event.get("event") == "started":
                self.step, self.since = str(event.get("step")), now
            elif event.get("event") == "observed" and event.get("step") == self.step:
                self.step = None

    def overrun(self, now: float) -> dict[str, Any] | None:
        """The running step and its budget once it has run longer than that."""
        with self.lock:
            budget = self.budgets.get(self.step or "")
            if self.step is None or budget is None or now - self.since <= budget:
                return None
            return {"step": self.step, "budget": budget}


def _not_dumpable() -> None:
    """Linux: no process of the package (same uid) may read this one's memory or descriptors
    (the event channel) through ptrace or /proc (PR_SET_DUMPABLE 0)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)


def _mapped_files(pid: int) -> list[str]:
    """The files another process has mapped, from /proc/PID/maps (raises OSError)."""
    found: list[str] = []
    with open("/proc/%d/maps" % pid, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            parts = line.split(None, 5)
            path = parts[5].strip() if len(parts) == 6 else ""
            if path.startswith("/") and path not in found:
                found.append(path)
    return found


def _extension_files(mapped: list[str], modules: list[str]) -> dict[str, str | None]:
    """For each extension module (a.b._c), the mapped file that is it (.../a/b/_c.*so)."""
    out: dict[str, str | None] = {}
    for module in modules:
        tail = "/" + module.replace(".", "/")
        out[module] = next((p for p in mapped if (p.endswith(tail + ".so") or (
            tail + "." in p and p.endswith(".so") and p.rsplit("/", 1)[1].startswith(
                tail.rsplit("/", 1)[1] + ".")))), None)
    return out


class Observer:
    """The cell process looks at the package's process from outside when it says it is done
    (``ready``: it then waits until released), so that what it mapped is seen by code the
    package cannot reach."""

    def __init__(self, extensions: list[str]) -> None:
        self.extensions = extensions
        self.pid = 0
        self.release_r, self.release_w = os.pipe() if os.name == "posix" else (-1, -1)
        self.looked = False
        self.lock = threading.Lock()

    def look(self) -> None:
        """Snapshot the package's process (once), then let it exit."""
        with self.lock:
            if self.looked:
                return
            self.looked = True
        if not sys.platform.startswith("linux"):  # no /proc: nothing to look at
            observed("observer", pid=self.pid, mapped=None, error=None, unsupported=True)
            self.release()
            return
        try:
            mapped: list[str] | None = _mapped_files(self.pid)
            error = None
        except OSError as exc:
            mapped, error = None, str(exc)
        observed("observer", pid=self.pid, mapped=mapped, error=error,
                 extensions=_extension_files(mapped or [], self.extensions))
        self.release()

    def release(self) -> None:
        """Let the package's process go on (EOF on its release descriptor)."""
        with self.lock:
            fd, self.release_w = self.release_w, -1
        if fd >= 0:
            os.close(fd)


def _forward_events(stream: Any, clock: StepClock, observer: Observer | None = None) -> None:
    """Pass the checks process's event lines on as they come (a timeout keeps them)."""
    for raw in stream:
        if raw.startswith(MARKER.encode()):
            os.write(_events_fd, raw if raw.endswith(b"\n") else raw + b"\n")
            try:
                event = json.loads(raw[len(MARKER):].decode("utf-8", "replace"))
            except ValueError:
                continue
            if isinstance(event, dict):
                clock.event(event, time.monotonic())
                if observer is not None and event.get("event") == "ready":
                    observer.look()


def _watch(proc: Any, clock: StepClock) -> dict[str, Any] | None:
    """Wait for the checks process; kill it when a step overruns its budget."""
    while True:
        try:
            proc.wait(timeout=0.2)
            return None
        except subprocess.TimeoutExpired:
            pass
        over = clock.overrun(time.monotonic())
        if over is not None:
            proc.kill()
            proc.wait()
            return over


def _installer(spec: dict[str, Any], venv_python: str, use_uv: bool) -> list[str]:
    """The offline installer's command, up to its requirements and find-links."""
    if use_uv:
        return [spec["uv"], "pip", "install", "--no-config", "--offline", "--no-index",
                "--no-cache", "--only-binary", ":all:", "--python", venv_python]
    return [venv_python, "-m", "pip", "install", "--isolated", "--no-index", "--no-cache-dir",
            "--disable-pip-version-check", "--only-binary", ":all:"]


def _record(lines: str) -> dict[str, str]:
    """A RECORD's path -> hash (entries without a hash left out)."""
    import csv

    return {row[0]: row[1] for row in csv.reader(lines.splitlines())
            if len(row) >= 2 and row[1]}


def _wheel_record(path: str) -> dict[str, str]:
    """The RECORD inside a wheel file, without the entries an installer rewrites or moves
    (RECORD itself, ``*.data/``)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            name = next((n for n in zf.namelist() if n.endswith(".dist-info/RECORD")
                         and n.count("/") == 1), None)
            text = zf.read(name).decode("utf-8", "replace") if name else ""
    except (OSError, zipfile.BadZipFile, KeyError):
        return {}
    return {p: h for p, h in _record(text).items()
            if not p.endswith(".dist-info/RECORD") and ".data/" not in p.split("/", 1)[0] + "/"}


def _installed_record(venv_dir: str, distribution: str) -> dict[str, str]:
    """The installed distribution's RECORD (path -> hash), found in the venv's site-packages."""
    import glob

    for meta in glob.glob(os.path.join(venv_dir, "lib*", "*", "site-packages", "*.dist-info",
                                       "METADATA")):
        with open(meta, encoding="utf-8", errors="replace") as fh:
            name = next((ln.split(":", 1)[1].strip() for ln in fh
                         if ln.lower().startswith("name:")), "")
        if _canonical(name) == _canonical(distribution):
            try:
                with open(os.path.join(os.path.dirname(meta), "RECORD"), encoding="utf-8",
                          errors="replace") as fh:
                    return _record(fh.read())
            except OSError:
                return {}
    return {}


def _requirements(venv_dir: str, distribution: str) -> list[str]:
    """The installed distribution's Requires-Dist lines (the installer evaluates markers)."""
    import glob

    for meta in glob.glob(os.path.join(venv_dir, "lib*", "*", "site-packages", "*.dist-info",
                                       "METADATA")):
        with open(meta, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().split("\n\n", 1)[0].splitlines()
        names = [ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("name:")]
        if names and _canonical(names[0]) == _canonical(distribution):
            return [ln.split(":", 1)[1].strip() for ln in lines
                    if ln.lower().startswith("requires-dist:")]
    return []


def install_from_set(spec: dict[str, Any], venv_dir: str, venv_python: str, use_uv: bool,
                     cwd: str) -> dict[str, Any]:
    """Let the installer pick the package from every staged wheel of the release set
    (``NAME==VERSION``, offline, wheels only), then say which file it installed: the one
    staged wheel whose every RECORD hash the installed files carry.  With a dependency
    wheelhouse, the installed METADATA's requirements come from there in a second step."""
    rel = spec["release"]
    shas: dict[str, str] = {}
    records: dict[str, dict[str, str]] = {}
    for name in sorted(rel["files"]):
        path = os.path.join(rel["dir"], name)
        shas[name], records[name] = _sha256(path), _wheel_record(path)
    mark("install: hash the staged wheels")
    command = [*_installer(spec, venv_python, use_uv), "--no-deps", "--find-links", rel["dir"],
               rel["requirement"]]
    rc, out, err, secs = _run(command, cwd)
    mark("install: installer")
    result: dict[str, Any] = {
        "returncode": rc, "output": _tail(err if rc else out + err, 15), "seconds": secs,
        "command": command, "staged": shas,
        "installed": None, "matches": []}
    if rc != 0:
        return result
    record = _installed_record(venv_dir, spec["package"]["distribution"])
    matches = [n for n, files in records.items() if files
               and all(record.get(p) == h for p, h in files.items())]
    result["matches"] = matches
    if len(matches) == 1:
        result["installed"] = {"file": matches[0], "sha256": shas[matches[0]]}
    wheelhouse = rel.get("dependencies")
    if wheelhouse:
        wanted = _requirements(venv_dir, spec["package"]["distribution"])
        if wanted:
            deps = [*_installer(spec, venv_python, use_uv), "--find-links", wheelhouse,
                    *wanted]
            drc, dout, derr, dsecs = _run(deps, cwd)
            result["dependencies"] = {"returncode": drc, "requirements": wanted,
                                      "output": _tail(derr if drc else dout + derr, 15),
                                      "seconds": dsecs, "command": deps}
            result["seconds"] = secs + dsecs
    return result


# ---------------------------------------------------------------- emulated CPU (floor cells)


def _interpreter_loader(executable: str) -> str:
    """PT_INTERP of an ELF executable (its dynamic loader), "" when there is none."""
    import struct

    try:
        with open(os.path.realpath(executable), "rb") as fh:
            head = fh.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return ""
            end = "<" if head[5] == 1 else ">"
            phoff, = struct.unpack_from(end + "Q", head, 0x20)
            phentsize, phnum = struct.unpack_from(end + "HH", head, 0x36)
            for i in range(phnum):
                fh.seek(phoff + i * phentsize)
                p_type, _flags, off, _va, _pa, size = struct.unpack(end + "IIQQQQ", fh.read(40))
                if p_type == 3:  # PT_INTERP
                    fh.seek(off)
                    return fh.read(size).split(b"\0", 1)[0].decode("utf-8", "replace")
    except (OSError, struct.error):
        return ""
    return ""


def emulated_levels(prefix: list[str], executable: str) -> dict[str, Any]:
    """The x86-64 levels the emulated CPU has, as glibc's loader sees them (``ld.so --help``
    lists glibc-hwcaps subdirectories 'supported'; glibc >= 2.33).  Run before the package."""
    loader = _interpreter_loader(executable)
    if not loader:
        return {"error": "no dynamic loader found for %s" % executable}
    try:
        out = subprocess.run(prefix + [loader, "--help"], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": "%s --help: %s" % (loader, exc)}
    if "glibc-hwcaps" not in out:
        return {"error": "%s lists no glibc-hwcaps (glibc < 2.33 or not glibc)" % loader}
    levels = re.findall(r"^[ \t]+(x86-64-v\d)[ \t]*(\(supported[^)]*\))?", out, re.M)
    return {"loader": loader, "supported": sorted(n for n, s in levels if s),
            "listed": sorted(n for n, _s in levels)}


def _allow_core() -> None:
    """In the emulated child: let qemu-user write the guest's core on a fatal signal."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    want = 512 << 20 if hard == resource.RLIM_INFINITY else min(hard, 512 << 20)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (want, hard))


def core_fault(path: str) -> dict[str, Any]:
    """The faulting thread's instruction pointer (NT_PRSTATUS) and the 16 code bytes there
    (PT_LOAD) from an x86-64 ELF core that qemu-user wrote for the guest."""
    import struct

    with open(path, "rb") as fh:
        head = fh.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return {"error": "not an ELF64 little-endian core"}
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        segments = []
        for i in range(min(phnum, 65535)):
            fh.seek(phoff + i * phentsize)
            segments.append(struct.unpack("<IIQQQQQQ", fh.read(56)))
        rip = None
        for p_type, _f, off, _va, _pa, filesz, _m, _a in segments:
            if p_type != 4 or rip is not None:  # PT_NOTE
                continue
            fh.seek(off)
            notes, pos = fh.read(min(filesz, 1 << 20)), 0
            while pos + 12 <= len(notes):
                namesz, descsz, ntype = struct.unpack_from("<III", notes, pos)
                desc = pos + 12 + ((namesz + 3) & ~3)
                if ntype == 1:  # NT_PRSTATUS: pr_reg at 112, rip is user_regs_struct[16]
                    rip, = struct.unpack_from("<Q", notes, desc + 112 + 16 * 8)
                    break
                pos = desc + ((descsz + 3) & ~3)
        if rip is None:
            return {"error": "no NT_PRSTATUS note in the core"}
        code = b""
        for p_type, _f, off, vaddr, _pa, filesz, _m, _a in segments:
            if p_type == 1 and vaddr <= rip < vaddr + filesz:
                fh.seek(off + rip - vaddr)
                code = fh.read(min(16, vaddr + filesz - rip))
        return {"address": rip, "code": code.hex()}


def _loaded_objects(log: str) -> list[tuple[str, int, int]]:
    """(path, load base, size) of every object one process's glibc LD_DEBUG=files log maps."""
    found: list[tuple[str, int, int]] = []
    name = ""
    try:
        with open(log, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                text = line.split(":", 1)[-1].strip()
                if text.startswith("file=") and text.endswith("generating link map"):
                    name = text[len("file="):].split(" [", 1)[0]
                match = re.search(r"base: 0x([0-9a-f]+)\s+size: 0x([0-9a-f]+)", text)
                if match and name:
                    found.append((name, int(match.group(1), 16), int(match.group(2), 16)))
                    name = ""
    except OSError:
        pass
    return found


def cpu_fault(run_dir: str, ld_log: str) -> dict[str, Any]:
    """Where the emulated process died: the instruction pointer and code bytes from qemu's
    guest core, mapped through the loader's log to an object and the offset in it."""
    import glob

    cores = sorted(glob.glob(os.path.join(run_dir, "qemu_*.core")), key=os.path.getmtime)
    if not cores:
        return {"error": "qemu-user wrote no core (RLIMIT_CORE or a full disk)"}
    try:
        fault = core_fault(cores[-1])
    except (OSError, ValueError) as exc:
        fault = {"error": "unreadable core: %s" % exc}
    pid = cores[-1].rsplit("_", 1)[-1].split(".", 1)[0]
    address = fault.get("address")
    for path, base, size in _loaded_objects("%s.%s" % (ld_log, pid)):
        if address is not None and base <= address < base + size:
            fault.update(object=os.path.normpath(path), vaddr=address - base)
            break
    for core in cores:
        with contextlib.suppress(OSError):
            os.remove(core)
    return fault


def cell_mode(spec: dict[str, Any], source: str) -> int:
    """Run one whole cell from its base interpreter."""
    package = spec["package"]
    work = spec["workdir"]
    _not_dumpable()
    run_dir = os.path.join(work, "run")
    venv_dir = os.path.join(work, "venv")
    os.makedirs(run_dir, exist_ok=True)
    os.chdir(run_dir)
    emit("facts", **interpreter_facts())
    mark("facts")

    start = time.monotonic()
    emit("started", step="sterility")
    clean = sterility(package["libraries"], package["forbidden_env"])
    observed("sterility", seconds=time.monotonic() - start, **clean)
    needs = (clean.get("interpreter") or {}).get("needs") or {}

    # uv when the cell has it (fast); else the venv's own pip from ensurepip (slow, universal)
    use_uv = os.path.exists(spec["uv"])
    venv_cmd = [sys.executable, "-I", "-S", "-m", "venv",  # no host site-packages, no .pth
                *(["--without-pip"] if use_uv else []), venv_dir]
    if spec.get("venv_made_by"):  # made by the host (virtualenv): this Python has no venv
        rc, out, err, secs = 0, "made by " + spec["venv_made_by"], "", 0.0
    else:
        rc, out, err, secs = _run(venv_cmd, run_dir)
    observed("venv", returncode=rc, seconds=secs, output=_tail(out + err))
    mark("venv")
    if rc != 0:
        return 0  # nothing to install into
    venv_python = venv_interpreter(venv_dir)

    emit("started", step="install")
    result = install_from_set(spec, venv_dir, venv_python, use_uv, run_dir)
    observed("install", **result)
    mark("install: which file (RECORD)")
    if result["returncode"] != 0 or result.get("dependencies", {}).get("returncode", 0) != 0:
        return 0  # nothing (usable) to import
    installed = (result.get("installed") or {}).get("file")
    files = spec["release"]["files"]
    extensions = files[installed]["extensions"] if installed in files else sorted(
        {e for f in files.values() for e in f["extensions"]})

    observer = Observer(extensions)
    child_spec = dict(spec, mode="checks", package=dict(package, extensions=extensions,
                                                       interpreter_needs=needs),
                      release_fd=observer.release_r if observer.release_r >= 0 else None)
    emulator = spec.get("emulator")  # floor cells: the package's process runs on that CPU
    prefix = list(emulator["argv"]) if emulator else []
    argv = prefix + [venv_python, "-I", "-c", BOOTSTRAP, source, json.dumps(child_spec)]
    emulation = None
    if emulator:
        emulation = dict(emulator, seen=emulated_levels(prefix, sys.executable))
    clock = StepClock({k: float(v) for k, v in package.get("budgets", {}).items()})
    start = time.monotonic()
    with open(os.path.join(work, "checks.stderr"), "w+") as errfile:
        # the loader logs every library any process of the package loads (provenance)
        env = dict(os.environ, LD_DEBUG="libs,files", LD_DEBUG_OUTPUT=os.path.join(work, "ld"))
        keep = (observer.release_r,) if observer.release_r >= 0 else ()
        proc = subprocess.Popen(argv, cwd=run_dir, stdout=subprocess.PIPE, stderr=errfile,
                                stdin=subprocess.DEVNULL, env=env, pass_fds=keep,
                                preexec_fn=_allow_core if emulator else None)
        observer.pid = proc.pid
        if keep:
            os.close(observer.release_r)
        pump = threading.Thread(target=_forward_events, args=(proc.stdout, clock, observer),
                                daemon=True)
        pump.start()
        over_budget = _watch(proc, clock)
        observer.release()
        # a process the package forked may keep the pipe open: don't wait for its EOF
        pump.join(timeout=2.0)
        errfile.seek(max(0, errfile.seek(0, 2) - 65536))  # the tail is what matters
        stderr = errfile.read()
    if emulation is not None and proc.returncode is not None and proc.returncode < 0:
        emulation["fault"] = cpu_fault(run_dir, env["LD_DEBUG_OUTPUT"])
    mark("checks process")
    observed("exit", returncode=proc.returncode, stderr=_tail(stderr, 40),
             seconds=time.monotonic() - start, over_budget=over_budget, emulation=emulation)
    return 0


# ---------------------------------------------------------------- checks mode


def _normalise(value: object) -> object:
    """Into what YAML/JSON can express: sequences -> lists, mapping keys -> str, numbers ->
    int/float (numpy's too), deeply; anything else stays (sent as its repr)."""
    import numbers

    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple, range)):
        return [_normalise(v) for v in value]
    try:
        return [_normalise(v) for v in value]  # type: ignore[attr-defined]
    except TypeError:
        return value


def _exception(exc: BaseException) -> dict[str, object]:
    return {"type": type(exc).__name__, "message": str(exc),
            "traceback": _tail("".join(traceback.format_exception(
                type(exc), exc, exc.__traceback__)), 30)}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distribution(name: str) -> Any:
    """The installed distribution by PEP 503 name (3.9's importlib.metadata doesn't normalise)."""
    try:
        return importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        for dist in importlib.metadata.distributions():
            if _canonical(dist.metadata["Name"] or "") == _canonical(name):
                return dist
        raise


def _dist_files(distribution: str) -> set[str]:
    try:
        files = _distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        return set()
    return {os.path.realpath(str(f.locate())) for f in files}


def _site_dirs() -> list[str]:
    paths = sysconfig.get_paths()
    return sorted({os.path.realpath(paths["purelib"]), os.path.realpath(paths["platlib"])})


#: parts of the standard library a Python may be built or installed without
OPTIONAL_STDLIB = ("tkinter", "_tkinter", "turtle", "idlelib", "curses", "_curses",
                   "_curses_panel", "readline", "dbm", "_dbm", "_gdbm", "sqlite3", "_sqlite3",
                   "lzma", "_lzma", "bz2", "_bz2", "_uuid", "ctypes", "_ctypes", "ssl", "_ssl",
                   "_hashlib", "zlib", "_decimal", "xxlimited")


def _stdlib_modules_in(exc: BaseException) -> list[str]:
    """Optional standard-library modules an import failure came from: its ``name``, and the
    standard-library files its traceback (and the exceptions chained to it) passed through."""
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    found: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = getattr(current, "name", None)
        if isinstance(current, ImportError) and name:
            found.append(str(name).split(".")[0])
        tb = current.__traceback__
        while tb is not None:
            path = os.path.realpath(tb.tb_frame.f_code.co_filename)
            if path.startswith(stdlib + os.sep) and "site-packages" not in path:
                found.append(os.path.relpath(path, stdlib).split(os.sep)[0].split(".")[0])
            tb = tb.tb_next
        current = current.__cause__ or current.__context__
    return [m for m in dict.fromkeys(found) if m in OPTIONAL_STDLIB]


def _optional_cause(exc: BaseException) -> dict[str, Any] | None:
    """The optional part of this Python an import failure comes from, when that part does
    not import here either (tkinter without libtk, say): not the package's fault."""
    for name in _stdlib_modules_in(exc):
        try:
            importlib.import_module(name)
        except BaseException as err:  # anything: that part of Python is unusable
            cause: dict[str, Any] = {"module": name, "reason": "%s: %s" % (
                type(err).__name__, err)}
            spec_file = getattr(err, "path", None)
            if spec_file:
                closure, _ = ldd([str(spec_file)])
                cause["missing_libraries"] = sorted(
                    n for res in closure.values() for n, p in res.items() if p is None)
            return cause
    return None


def _load_extensions(package: dict[str, Any]) -> list[dict[str, Any]]:
    """Import every extension module the wheel ships (but those the matrix skips): what each
    import raised, if anything, and whether an optional part of Python is why."""
    import fnmatch

    loads = []
    skip = package.get("skip_extensions", [])
    for ext in package.get("extensions", []):
        if any(fnmatch.fnmatchcase(ext, pattern) for pattern in skip):
            loads.append({"module": ext, "exception": None, "skipped": "matrix"})
            continue
        try:
            importlib.import_module(ext)
            loads.append({"module": ext, "exception": None})
        except BaseException as err:
            info = _exception(err)
            if isinstance(err, ModuleNotFoundError):
                info["missing"] = err.name or ""
            loads.append({"module": ext, "exception": info, "optional": _optional_cause(err)})
    return loads


def observe_import(package: dict[str, Any]) -> object:
    """Import the package from an empty cwd; where its modules came from, whether the
    installed wheel's RECORD lists them, and what loading each extension module raised."""
    name = package["import_name"]
    start = time.monotonic()
    emit("started", step="import")
    try:
        module = importlib.import_module(name)
    except BaseException as exc:
        observed("import", exception=_exception(exc), seconds=time.monotonic() - start)
        return None
    extensions = _load_extensions(package)
    seconds = time.monotonic() - start
    record = _dist_files(package["distribution"])
    loaded = {k: os.path.realpath(str(m.__file__)) for k, m in list(sys.modules.items())
              if (k == name or k.startswith(name + ".")) and getattr(m, "__file__", None)}
    observed("import", exception=None, file=getattr(module, "__file__", None), modules=loaded,
             site_packages=_site_dirs(), in_record=sorted(f for f in set(loaded.values())
                                                          if f in record),
             extensions=extensions, seconds=seconds)
    return module


def _version_value(module: object, source: str) -> object:
    """``__version__``, ``version()``, or a dotted path (``version.version``: attributes,
    or submodules of the package imported on the way)."""
    path = source[:-2] if source.endswith("()") else source
    value: Any = module
    for attr in path.split("."):
        try:
            value = getattr(value, attr)
        except AttributeError:
            if not isinstance(value, type(sys)):
                raise
            value = importlib.import_module(getattr(value, "__name__", "") + "." + attr)
    return value() if source.endswith("()") else value


def observe_version(module: object, package: dict[str, Any]) -> None:
    """The installed metadata's version and every declared version source of the module."""
    start = time.monotonic()
    emit("started", step="version")
    values: dict[str, object] = {}
    try:
        values["metadata"] = _distribution(package["distribution"]).version
    except importlib.metadata.PackageNotFoundError as exc:
        values["metadata"] = "<missing: %s>" % exc
    for source in package["version_from"]:
        try:
            values[source] = _version_value(module, source)
        except BaseException as exc:
            values[source] = "<%s: %s>" % (type(exc).__name__, exc)
    observed("version", values=values, seconds=time.monotonic() - start)


def _reference(package: dict[str, Any]) -> tuple[object, dict[str, object] | None]:
    """The matrix's reference module (its source ships in the spec), or what loading raised."""
    import types

    ref = package.get("reference")
    if not ref:
        return None, None
    module = types.ModuleType("reference")
    module.__file__ = ref["path"]
    try:
        exec(compile(ref["source"], ref["path"], "exec"), module.__dict__)
    except BaseException as exc:
        return None, _exception(exc)
    return module, None


def _raised_in_expression(exc: BaseException, reference: str = "") -> bool:
    """The matrix's own mistake: a NameError raised by the expression itself (a name unknown
    to the matrix), or anything raised inside the matrix's reference module."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = tb.tb_frame.f_code.co_filename if tb is not None else ""
    return (isinstance(exc, NameError) and where == "<string>") or bool(
        reference and where == reference)


def observe_declared(module: object, package: dict[str, Any]) -> None:
    """Evaluate each declared check: the value it got and the value expected (normalised),
    or what either raised."""
    reference, reference_error = _reference(package)
    for decl in package["checks"]:
        namespace = {package["import_name"]: module, "module": module}
        if reference is not None:
            namespace["reference"] = reference
        start = time.monotonic()
        emit("started", step=decl["name"])
        try:
            got = _normalise(eval(decl["expr"], namespace))
        except BaseException as exc:
            observed(decl["name"], exception=_exception(exc), seconds=time.monotonic() - start,
                     matrix_name_error=_raised_in_expression(
                         exc, (package.get("reference") or {}).get("path", "")))
            continue
        seconds = time.monotonic() - start
        try:  # from here on a failure is the matrix's, not the wheel's
            if reference_error is not None and "expected_expr" in decl:
                observed(decl["name"], got=got, seconds=seconds,
                         expected_exception=dict(reference_error, message="the reference "
                                                 "module failed to load: %s: %s" % (
                                                     reference_error["type"],
                                                     reference_error["message"])))
                continue
            if "expected_expr" in decl:
                expected = _normalise(eval(decl["expected_expr"], namespace))
            else:
                expected = _normalise(decl["expected"])
        except Exception as exc:
            observed(decl["name"], got=got, expected_exception=_exception(exc), seconds=seconds)
            continue
        observed(decl["name"], got=got, expected=expected, seconds=seconds)


def elf_dynamic(path: str) -> dict[str, Any] | None:
    """DT_SONAME, DT_NEEDED, DT_RPATH and DT_RUNPATH of a shared object or executable
    (stdlib only: the probe cannot use pyelftools); None when not an ELF file."""
    import struct

    out: dict[str, Any] = {"soname": None, "needed": [], "rpath": None, "runpath": None}
    try:
        with open(path, "rb") as fh:
            ident = fh.read(16)
            if ident[:4] != b"\x7fELF":
                return None
            end = "<" if ident[5] == 1 else ">"
            if ident[4] == 2:  # ELF64
                at, shfmt, dynfmt, offfmt = 0x28, "IIQQQQIIQQ", "qQ", "Q"
            else:
                at, shfmt, dynfmt, offfmt = 0x20, "IIIIIIIIII", "iI", "I"
            fh.seek(at)
            (shoff,) = struct.unpack(end + offfmt, fh.read(struct.calcsize(offfmt)))
            fh.seek(at + (0x12 if ident[4] == 2 else 0x0E))
            shentsize, shnum = struct.unpack(end + "HH", fh.read(4))
            sections = []
            for i in range(shnum):
                fh.seek(shoff + i * shentsize)
                sections.append(struct.unpack(end + shfmt, fh.read(struct.calcsize(end + shfmt))))
            for sh in sections:
                if sh[1] != 6:  # SHT_DYNAMIC
                    continue
                fh.seek(sh[4])
                data, size = fh.read(sh[5]), struct.calcsize(end + dynfmt)
                fh.seek(sections[sh[6]][4])
                strtab = fh.read(sections[sh[6]][5])
                for off in range(0, len(data) - size + 1, size):
                    tag, val = struct.unpack_from(end + dynfmt, data, off)
                    if tag == 0:
                        break
                    if tag in (1, 14, 15, 29):  # NEEDED, SONAME, RPATH, RUNPATH
                        text = strtab[val:].split(b"\0", 1)[0].decode("utf-8", "replace")
                        if tag == 1:
                            out["needed"].append(text)
                        else:
                            out[{14: "soname", 15: "rpath", 29: "runpath"}[tag]] = text
    except (OSError, struct.error, IndexError):
        return None
    return out


def elf_soname(path: str) -> str | None:
    """DT_SONAME of a shared object."""
    return (elf_dynamic(path) or {}).get("soname")


def _loader_log() -> tuple[list[str], list[list[str]]]:
    """Every library the loader loaded in this process and its children, in load order, and
    each load's reason: [loaded by, name asked for, file loaded] (glibc LD_DEBUG)."""
    import glob

    prefix = os.environ.get("LD_DEBUG_OUTPUT")
    found: list[str] = []
    loads: list[list[str]] = []
    for log in sorted(glob.glob(prefix + ".*")) if prefix else []:
        last_try, asked = "", ["", ""]
        with open(log, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                text = line.split(":", 1)[-1].strip()
                path = ""
                if text.startswith("trying file="):
                    last_try = text[len("trying file="):]
                elif text.startswith("file=") and (
                        "needed by " in text or "dynamically loaded by " in text):
                    name = text[len("file="):].split(" [", 1)[0]
                    by = text.split(" by ", 1)[1].rsplit(" [", 1)[0]
                    asked, last_try = [by, name], ""
                elif text.startswith("file=") and text.endswith("generating link map"):
                    name = text[len("file="):].split(" [", 1)[0]
                    path = name if name.startswith("/") else last_try
                    if path.startswith("/") and asked[1] == name:
                        loads.append([asked[0], name, os.path.normpath(path)])
                elif text.startswith("calling init: "):
                    path = text[len("calling init: "):]
                path = os.path.normpath(path) if path.startswith("/") else ""
                if path and path not in found:
                    found.append(path)
    return found, loads


def _package_elf_files(seen: list[str], record: set[str]) -> dict[str, dict[str, Any]]:
    """The package's own ELF files the processes loaded: their NEEDED, RPATH and RUNPATH."""
    out: dict[str, dict[str, Any]] = {}
    for path in seen:
        if os.path.realpath(path) in record:
            dyn = elf_dynamic(path)
            if dyn is not None:
                out[path] = {k: dyn[k] for k in ("needed", "rpath", "runpath")}
    return out


def observe_provenance(package: dict[str, Any]) -> None:
    """Every file the package's processes mapped or loaded (in load order), the SONAME of each
    shared object, which of them the installed wheel's RECORD lists, the NEEDED entries of
    those, and what the loader loaded for each name it was asked for."""
    start = time.monotonic()
    emit("started", step="provenance")
    plat = native_platform()
    if plat == "linux" and not os.path.exists("/proc/self/maps"):
        observed("provenance", mapped=None, seconds=time.monotonic() - start)
        return
    record = _dist_files(package["distribution"])
    try:  # Linux: mapped files; Windows: the process's module list; macOS: dyld's images
        mapped = loaded_modules(plat)
    except OSError as exc:
        observed("provenance", mapped=None, error=str(exc), seconds=time.monotonic() - start)
        return
    # also what was unloaded again, or loaded by a subprocess (glibc's loader log)
    logged, loads = _loader_log() if plat == "linux" else ([], [])
    seen = mapped + [p for p in logged if p not in mapped]
    sonames = {p: elf_soname(p) for p in seen if ".so" in os.path.basename(p)}
    observed("provenance", platform=plat, mapped=mapped, loader_log=logged, loads=loads,
             sonames={p: n for p, n in sonames.items() if n},
             in_record=sorted(p for p in seen if os.path.realpath(p) in record),
             package_elf=_package_elf_files(seen, record) if plat == "linux" else {},
             interpreter_needs=package.get("interpreter_needs") or {},
             seconds=time.monotonic() - start)


def rendezvous(spec: dict[str, Any]) -> None:
    """Say the checks are done, then wait until the cell process has looked at this process
    from outside (it closes the release descriptor)."""
    emit("ready")
    fd = spec.get("release_fd")
    if fd is not None:
        with contextlib.suppress(OSError):
            os.read(fd, 1)


def checks_mode(spec: dict[str, Any]) -> int:
    """Run the smoke checks inside the cell's venv."""
    package = spec["package"]
    emit("environment", variables=dict(os.environ), cwd=os.getcwd(), sys_path=sys.path)
    module = observe_import(package)
    mark("import")
    if module is not None:
        observe_version(module, package)
        mark("version")
        observe_declared(module, package)
        mark("declared checks")
        observe_provenance(package)
        mark("provenance")
    rendezvous(spec)
    return 0


def main(argv: list[str]) -> int:
    """Entry point: ``argv`` = [source, spec_json]."""
    global _events_fd, _marks
    source, spec = argv[0], json.loads(argv[1])
    _events_fd = os.dup(1)
    os.dup2(2, 1)  # whatever the package prints must not corrupt the event stream
    sys.stdout = sys.stderr
    if spec.get("profile"):
        _marks = [["interpreter start", time.time()]]
    try:
        if spec["mode"] == "needs":  # the host asks, before it hides anything
            emit("needs", **interpreter_needs(spec["libraries"]))
            return 0
        if spec["mode"] == "cell":
            code = cell_mode(spec, source)
            if spec.get("linger"):  # --keep-failed: stay up so the cell can be entered
                emit("linger", seconds=spec["linger"])
                time.sleep(spec["linger"])
            return code
        return checks_mode(spec)
    except BaseException as exc:
        emit("error", stage=spec.get("mode"), message="%s: %s" % (type(exc).__name__, exc),
             exception=_exception(exc))
        return 3
    finally:
        if _marks is not None:
            emit("timing", mode=spec.get("mode"), marks=_marks)


if __name__ == "__main__" and sys.argv[0] in ("-c", "<probe>"):
    sys.exit(main(sys.argv[1:]))
