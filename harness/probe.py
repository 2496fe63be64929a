"""The probe: stdlib-only code that runs *inside* the cell's Python (3.9-compatible).

It is started as ``python -I -S -c BOOTSTRAP PROBE_SOURCE SPEC_JSON`` (the checks process
without -S: it needs the venv's site-packages) so it needs no file on the target and never
imports from a working directory.  Two modes:

``cell``   (base interpreter of the cell)  facts -> sterility -> venv -> install -> checks child
``checks`` (the new venv's interpreter)    import -> version -> declared checks -> provenance

Every observation is one JSON line on stdout, prefixed by ``MARKER``; anything else a
package prints goes to stderr.  The host turns these events into a verdict.
"""

from __future__ import annotations

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

MARKER = "@@probe "
BOOTSTRAP = "import sys; exec(compile(sys.argv[1], '<probe>', 'exec'))"
DEFAULT_LIB_DIRS = (
    "/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/local/lib64",
)

_events_fd = 1


def emit(event: str, **data: object) -> None:
    """Write one event line on the saved stdout descriptor."""
    line = MARKER + json.dumps(dict(event=event, **data), default=repr) + "\n"
    os.write(_events_fd, line.encode("utf-8"))


def check(name: str, status: str, detail: str = "", **data: object) -> None:
    """Report the result of one check: status is pass, fail, error or skip."""
    emit("check", name=name, status=status, detail=detail, data=data)


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
        "libc": libc + (" " + libc_version if libc_version else ""),
        "uid": os.getuid() if hasattr(os, "getuid") else None,
        "cwd": os.getcwd(),
    }


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
            return [ln.strip() for ln in out.splitlines() if "lib" + lib + "." in ln
                    or "lib" + lib + "-" in ln]
    return []


def _mapped_paths() -> list[str]:
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


def _dlopen_attempts(lib: str) -> list[dict[str, Any]]:
    """Try to load the library the way an extension would; return what loaded."""
    loaded = []
    for soname in ["lib%s.so" % lib] + ["lib%s.so.%d" % (lib, n) for n in range(0, 16)]:
        try:
            ctypes.CDLL(soname)
        except OSError:
            continue
        where = [p for p in _mapped_paths() if os.path.basename(p).startswith("lib" + lib)]
        loaded.append({"soname": soname, "paths": where})
    return loaded


def sterility(libraries: list[str], forbidden_env: list[str]) -> dict[str, Any]:
    """Prove the forbidden libraries cannot be found or loaded, and the env is clean."""
    problems: list[str] = []
    evidence: dict[str, Any] = {}
    dirs = library_dirs()
    for lib in libraries:
        found = ctypes.util.find_library(lib)
        cache = _ldconfig_entries(lib)
        loaded = _dlopen_attempts(lib)
        files = sorted(
            os.path.join(d, f) for d in dirs for f in os.listdir(d)
            if f.startswith("lib" + lib + ".") or f.startswith("lib" + lib + "-")
        )
        evidence[lib] = {"find_library": found, "ldconfig": cache, "dlopen": loaded,
                         "files": files}
        if found:
            problems.append("ctypes.util.find_library(%r) = %r" % (lib, found))
        if cache:
            problems.append("the linker cache lists %s" % cache[0].split(" => ")[-1])
        for hit in loaded:
            problems.append("dlopen(%s) succeeded (%s)" % (
                hit["soname"], ", ".join(hit["paths"]) or "?"))
        for f in files:
            problems.append("%s exists in a library search directory" % f)
    preload = _preload_entries()
    if preload:
        problems.append("/etc/ld.so.preload preloads %s" % " ".join(preload))
    for name in list(forbidden_env) + ["LD_LIBRARY_PATH", "LD_PRELOAD"]:
        if name in os.environ:
            problems.append("environment variable %s is set" % name)
    return {"ok": not problems, "problems": problems, "evidence": evidence,
            "searched_dirs": dirs, "preload": preload}


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


def _forward_events(stream: Any) -> None:
    """Pass the checks process's event lines on as they come (a timeout keeps them)."""
    for raw in stream:
        if raw.startswith(MARKER.encode()):
            os.write(_events_fd, raw if raw.endswith(b"\n") else raw + b"\n")


def cell_mode(spec: dict[str, Any], source: str) -> int:
    """Run one whole cell from its base interpreter."""
    package = spec["package"]
    work = spec["workdir"]
    run_dir = os.path.join(work, "run")
    venv_dir = os.path.join(work, "venv")
    os.makedirs(run_dir, exist_ok=True)
    os.chdir(run_dir)
    emit("facts", **interpreter_facts())

    start = time.monotonic()
    sterile = sterility(package["libraries"], package["forbidden_env"])
    check("sterility", "pass" if sterile["ok"] else "fail",
          "; ".join(sterile["problems"]), seconds=time.monotonic() - start, **sterile)
    if not sterile["ok"]:
        return 0

    # uv when the cell has it (fast); else the venv's own pip from ensurepip (slow, universal)
    use_uv = os.path.exists(spec["uv"])
    venv_cmd = [sys.executable, "-I", "-S", "-m", "venv",  # no host site-packages, no .pth
                *(["--without-pip"] if use_uv else []), venv_dir]
    if spec.get("venv_made_by"):  # made by the host (virtualenv): this Python has no venv
        rc, out, err, secs = 0, "made by " + spec["venv_made_by"], "", 0.0
    else:
        rc, out, err, secs = _run(venv_cmd, run_dir)
    emit("venv", returncode=rc, seconds=secs, output=_tail(out + err))
    if rc != 0:
        emit("error", stage="venv", message="python -m venv failed: " + _tail(err, 5))
        return 0
    venv_python = os.path.join(venv_dir, "bin", "python")

    if use_uv:
        install = [spec["uv"], "pip", "install", "--no-config", "--offline", "--no-index",
                   "--no-deps", "--no-cache", "--python", venv_python, spec["wheel"]]
    else:
        install = [venv_python, "-m", "pip", "install", "--isolated", "--no-index", "--no-deps",
                   "--no-cache-dir", "--disable-pip-version-check", spec["wheel"]]
    rc, out, err, secs = _run(install, run_dir)
    check("install", "pass" if rc == 0 else "fail", _tail(err if rc else out + err, 15),
          returncode=rc, seconds=secs, command=install, wheel_sha256=_sha256(spec["wheel"]))
    if rc != 0:
        return 0

    child_spec = dict(spec, mode="checks")
    argv = [venv_python, "-I", "-c", BOOTSTRAP, source, json.dumps(child_spec)]
    start = time.monotonic()
    with open(os.path.join(work, "checks.stderr"), "w+") as errfile:
        # the loader logs every library any process of the package loads (provenance)
        env = dict(os.environ, LD_DEBUG="libs,files", LD_DEBUG_OUTPUT=os.path.join(work, "ld"))
        proc = subprocess.Popen(argv, cwd=run_dir, stdout=subprocess.PIPE, stderr=errfile,
                                env=env)
        pump = threading.Thread(target=_forward_events, args=(proc.stdout,), daemon=True)
        pump.start()
        returncode = proc.wait()
        # a process the package forked may keep the pipe open: don't wait for its EOF
        pump.join(timeout=2.0)
        errfile.seek(max(0, errfile.seek(0, 2) - 65536))  # the tail is what matters
        stderr = errfile.read()
    emit("checks_exit", returncode=returncode, stderr=_tail(stderr, 40),
         seconds=time.monotonic() - start)
    return 0


# ---------------------------------------------------------------- checks mode


def partition_numbers(n: int) -> list[int]:
    """p(0..n-1) by Euler's pentagonal number recurrence (reference values)."""
    p = [1] + [0] * max(n - 1, 0)
    for m in range(1, n):
        total, k = 0, 1
        while True:
            g1 = k * (3 * k - 1) // 2
            if g1 > m:
                break
            sign = 1 if k % 2 else -1
            total += sign * p[m - g1]
            g2 = k * (3 * k + 1) // 2
            if g2 <= m:
                total += sign * p[m - g2]
            k += 1
        p[m] = total
    return p[:n]


class Reference:
    """Reference values available to declared checks as ``reference``."""

    partition_numbers = staticmethod(partition_numbers)


def _normalise(value: object) -> object:
    """Into what YAML/JSON can express: sequences -> lists, mapping keys -> str, deeply."""
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple, range)):
        return [_normalise(v) for v in value]
    try:
        return [_normalise(v) for v in value]  # type: ignore[attr-defined]
    except TypeError:
        return value


def _bits(value: object) -> int:
    if isinstance(value, bool):
        return 1
    if isinstance(value, int):
        return abs(value).bit_length()
    if isinstance(value, list):
        return max([_bits(v) for v in value] or [0])
    return 0


def _compare(got: object, expected: object) -> tuple[bool, str, dict[str, object]]:
    if got == expected:
        return True, "", {}
    if isinstance(got, list) and isinstance(expected, list):
        for i, (a, b) in enumerate(zip(got, expected)):
            if a != b:
                return False, "term %d: got %r, expected %r" % (i, a, b), {
                    "first_bad_index": i, "got": repr(a)[:200], "expected": repr(b)[:200],
                    "bits_at_bad": _bits(b), "max_bits_before_bad": _bits(expected[:i])}
        return False, "got %d terms, expected %d" % (len(got), len(expected)), {
            "got_length": len(got), "expected_length": len(expected)}
    return False, "got %s, expected %s" % (repr(got)[:200], repr(expected)[:200]), {}


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


def _inside(path: str, dirs: list[str]) -> bool:
    real = os.path.realpath(path)
    return any(real == d or real.startswith(d + os.sep) for d in dirs)


def _load_extensions(package: dict[str, Any]) -> tuple[str, BaseException] | None:
    """Import every extension module the wheel ships; the first that fails to load.

    One that only lacks an optional third-party module (numpy, say) is not a failure."""
    name = package["import_name"]
    for ext in package.get("extensions", []):
        try:
            importlib.import_module(ext)
        except ModuleNotFoundError as err:
            missing = err.name or ""
            if missing != ext and not (missing == name or missing.startswith(name + ".")):
                emit("note", message="%s needs %s, which is not installed" % (ext, missing))
                continue
            return ext, err
        except BaseException as err:
            return ext, err
    return None


def check_import(package: dict[str, Any]) -> object:
    """Import the package from an empty cwd; prove it came from the installed wheel, and
    that every extension module it ships loads (a fallback must not hide a broken one)."""
    name = package["import_name"]
    start = time.monotonic()
    try:
        module = importlib.import_module(name)
    except BaseException as exc:
        check("import", "fail", "%s: %s" % (type(exc).__name__, exc),
              seconds=time.monotonic() - start, exception=_exception(exc))
        return None
    site = _site_dirs()
    record = _dist_files(package["distribution"])
    hidden = _load_extensions(package)
    seconds = time.monotonic() - start
    loaded = {k: str(m.__file__) for k, m in list(sys.modules.items())
              if (k == name or k.startswith(name + ".")) and getattr(m, "__file__", None)}
    outside = [f for f in loaded.values() if not _inside(f, site)]
    unrecorded = [f for f in loaded.values() if os.path.realpath(f) not in record]
    data = {"file": getattr(module, "__file__", None), "modules": loaded,
            "site_packages": site, "seconds": seconds}
    if hidden is not None:
        ext, failure = hidden
        check("import", "fail", "%s imported, but its extension %s does not load (%s: %s)"
              % (name, ext, type(failure).__name__, failure), exception=_exception(failure),
              **data)
    elif outside:
        check("import", "fail", "imported from outside site-packages (%s): %s"
              % (", ".join(site), ", ".join(outside)), **data)
    elif unrecorded:
        check("import", "fail", "module files not listed in the installed wheel's RECORD: "
              + ", ".join(unrecorded), **data)
    else:
        check("import", "pass", "from " + str(data["file"]), **data)
    return module


def _version_value(module: object, source: str) -> object:
    attr = source[:-2] if source.endswith("()") else source
    value = getattr(module, attr)
    return value() if source.endswith("()") else value


def check_version(module: object, package: dict[str, Any]) -> None:
    """Wheel metadata version == every declared version source of the module.

    The host re-judges with PEP 440 normalisation (1.0.0-rc.1 == 1.0.0rc1)."""
    start = time.monotonic()
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
    expected = package["expected_version"]
    wrong = {k: v for k, v in values.items() if v != expected}
    if wrong:
        detail = "expected %s (wheel) but %s" % (expected, ", ".join(
            "%s = %r" % kv for kv in wrong.items()))
        check("version", "fail", detail, expected=expected, values=values,
              seconds=time.monotonic() - start)
    else:
        check("version", "pass", expected, expected=expected, values=values,
              seconds=time.monotonic() - start)


def check_declared(module: object, package: dict[str, Any]) -> None:
    """Evaluate each declared check expression and compare with its expected value."""
    for decl in package["checks"]:
        namespace = {package["import_name"]: module, "module": module, "reference": Reference}
        start = time.monotonic()
        emit("check_started", name=decl["name"])
        try:
            got = _normalise(eval(decl["expr"], namespace))
        except BaseException as exc:
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            own = isinstance(exc, NameError) and tb is not None and (
                tb.tb_frame.f_code.co_filename == "<string>")  # a name unknown to the matrix
            check(decl["name"], "error" if own else "fail", "%s%s raised %s: %s" % (
                  "the matrix's expression " if own else "", decl["expr"], type(exc).__name__,
                  exc), exception=_exception(exc), seconds=time.monotonic() - start)
            continue
        seconds = time.monotonic() - start
        try:  # from here on a failure is the matrix's, not the wheel's
            if "expected_expr" in decl:
                expected = _normalise(eval(decl["expected_expr"], namespace))
            else:
                expected = _normalise(decl["expected"])
            ok, detail, data = _compare(got, expected)
        except Exception as exc:
            check(decl["name"], "error", "the matrix's expected value failed: %s: %s"
                  % (type(exc).__name__, exc), exception=_exception(exc), seconds=seconds)
            continue
        bits = _bits(expected)
        summary = "%d terms, up to 2^%d" % (len(expected), bits) if isinstance(
            expected, list) else repr(expected)[:80]
        check(decl["name"], "pass" if ok else "fail", summary if ok else detail,
              expected_bits=bits, seconds=seconds, **data)


def elf_soname(path: str) -> str | None:
    """DT_SONAME of a shared object (stdlib only: the probe cannot use pyelftools)."""
    import struct

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
                for off in range(0, len(data) - size + 1, size):
                    tag, val = struct.unpack_from(end + dynfmt, data, off)
                    if tag == 0:
                        break
                    if tag == 14:  # DT_SONAME
                        fh.seek(sections[sh[6]][4] + val)
                        return fh.read(256).split(b"\0", 1)[0].decode("utf-8", "replace")
    except (OSError, struct.error, IndexError):
        return None
    return None


def _is_library(path: str, lib: str) -> bool:
    """By file name or by SONAME: a renamed copy of the library is still that library."""
    pattern = re.compile(r"^lib%s([.-]|$)" % re.escape(lib))
    if pattern.match(os.path.basename(path)):
        return True
    soname = elf_soname(path) if ".so" in os.path.basename(path) else None
    return bool(soname and pattern.match(soname))


def _loader_log_paths() -> list[str]:
    """Every library the loader loaded in this process and its children (glibc LD_DEBUG)."""
    import glob

    prefix = os.environ.get("LD_DEBUG_OUTPUT")
    found: list[str] = []
    for log in sorted(glob.glob(prefix + ".*")) if prefix else []:
        last_try = ""
        with open(log, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                text = line.split(":", 1)[-1].strip()
                path = ""
                if text.startswith("trying file="):
                    last_try = text[len("trying file="):]
                elif text.startswith("file=") and text.endswith("generating link map"):
                    name = text[len("file="):].split(" [", 1)[0]
                    path = name if name.startswith("/") else last_try
                elif text.startswith("calling init: "):
                    path = text[len("calling init: "):]
                path = os.path.normpath(path) if path.startswith("/") else ""
                if path and path not in found:
                    found.append(path)
    return found


def check_provenance(package: dict[str, Any]) -> None:
    """Which copies of the native libraries the process mapped: all from inside the wheel."""
    start = time.monotonic()
    if not os.path.exists("/proc/self/maps"):
        check("provenance", "skip", "no /proc/self/maps on this system")
        return
    record = _dist_files(package["distribution"])
    mapped = _mapped_paths()
    logged = _loader_log_paths()  # also what was unloaded again, or loaded by a subprocess
    seen = mapped + [p for p in logged if p not in mapped]
    report: dict[str, list[str]] = {}
    outside: list[str] = []
    for lib in package["libraries"]:
        hits = [p for p in seen if _is_library(p, lib)]
        report[lib] = hits
        outside += [p for p in hits if os.path.realpath(p) not in record]
    data = {"libraries": report, "mapped": mapped, "loader_log": logged,
            "seconds": time.monotonic() - start}
    found = [p for hits in report.values() for p in hits]
    libs = ", ".join("lib" + lib for lib in package["libraries"])
    if outside:
        check("provenance", "fail", "loaded from outside the wheel: " + ", ".join(outside),
              **data)
    else:
        check("provenance", "pass", ", ".join(found) if found else
              "no %s mapped: the package loaded none (linked statically, or no native code)"
              % libs, **data)


def checks_mode(spec: dict[str, Any]) -> int:
    """Run the smoke checks inside the cell's venv."""
    package = spec["package"]
    emit("environment", variables=dict(os.environ), cwd=os.getcwd(), sys_path=sys.path)
    module = check_import(package)
    if module is None:
        return 0
    check_version(module, package)
    check_declared(module, package)
    check_provenance(package)
    return 0


def main(argv: list[str]) -> int:
    """Entry point: ``argv`` = [source, spec_json]."""
    global _events_fd
    source, spec = argv[0], json.loads(argv[1])
    _events_fd = os.dup(1)
    os.dup2(2, 1)  # whatever the package prints must not corrupt the event stream
    sys.stdout = sys.stderr
    try:
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


if __name__ == "__main__" and sys.argv[0] in ("-c", "<probe>"):
    sys.exit(main(sys.argv[1:]))
