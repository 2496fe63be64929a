#!/bin/sh
# Proof, at build time, that GMP is gone (any trace fails the build) and Python still works.
# Usage: prove-clean.sh PYTHON
set -eu
python=$1
. /opt/q-kangaroo-smoke/common.sh
fail() { echo "GMP PROOF FAILED: $*" >&2; exit 1; }

if ldconfig -p >/dev/null 2>&1; then
    say "proof: no gmp in the linker cache (ldconfig -p)"
    if ldconfig -p | grep -i gmp; then
        fail "ldconfig -p lists GMP"
    fi
else
    say "no linker cache (musl): the file and dlopen proofs below cover it"
fi

say "proof: no file named libgmp* on the filesystem"
left=$(find / -xdev -name 'libgmp*' -print)
[ -z "$left" ] || fail "files named libgmp* remain: $left"

say "proof: no libgmp* package installed"
left=$(gmp_packages)
[ -z "$left" ] || fail "packages still installed: $left"

# Every Python in the image, the harness's first.
seen=
for py in "$python" /usr/bin/python3 /usr/local/bin/python3; do
    [ -x "$py" ] || continue
    real=$(readlink -f "$py")
    case " $seen " in *" $real "*) continue ;; esac
    seen="$seen $real"
    say "proof: $py finds no GMP, cannot dlopen it; ssl, ctypes, sqlite3, venv import"
    "$py" - <<'PY' || fail "$py: see above"
import ctypes
import ctypes.util
import sys

found = ctypes.util.find_library("gmp")
if found is not None:
    sys.exit(f"ctypes.util.find_library('gmp') returned {found!r}")
for name in ("libgmp.so.10", "libgmp.so", "libgmpxx.so.4"):
    try:
        ctypes.CDLL(name)
    except OSError:
        continue
    sys.exit(f"dlopen({name!r}) succeeded")
import ensurepip, hashlib, sqlite3, ssl, venv, zlib
# every extension module of the standard library that the image ships imports (a copied
# interpreter's _tkinter without libtk would break any package that uses tkinter)
import glob, importlib, os, sysconfig
dynload = sysconfig.get_config_var("DESTSHARED") or ""
broken = []
for path in sorted(glob.glob(os.path.join(dynload, "*.so"))):
    name = os.path.basename(path).split(".")[0]
    if name.startswith(("_test", "_xxtest", "xx", "_ctypes_test")):
        continue
    try:
        importlib.import_module(name)
    except Exception as exc:
        broken.append(f"{name} ({type(exc).__name__}: {exc})")
if broken:
    sys.exit("standard-library extensions do not import: " + "; ".join(broken))
print(f"    ok: Python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}, "
      f"SQLite {sqlite3.sqlite_version}; its stdlib extensions import")
PY
done

say "proof: $python -m venv (with pip) works"
tmp=$(mktemp -d)
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip --version
rm -rf "$tmp"

say "proof: uv runs (where present), no compiler"
if [ -e /usr/local/bin/uv ]; then
    uv --version
fi
for cc in cc gcc c++ g++ clang clang++ tcc; do
    if command -v "$cc" >/dev/null; then
        fail "a compiler is installed: $(command -v "$cc")"
    fi
done
say "clean"
