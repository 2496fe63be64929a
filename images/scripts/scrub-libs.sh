#!/bin/sh
# Remove declared bundled libraries beyond GMP from a clean image and prove them gone, as
# for GMP. The harness passes only libraries the image's Python does not need (harness.needs).
# Usage: scrub-libs.sh PYTHON LIB...
set -eu
python=$1; shift
. /opt/q-kangaroo-smoke/common.sh
fail() { echo "LIBRARY PROOF FAILED: $*" >&2; exit 1; }

for lib in "$@"; do
    say "deleting files named lib$lib"
    find / -xdev \( -name "lib$lib" -o -name "lib$lib.*" -o -name "lib$lib-*" \) -prune \
        -print -exec rm -rf {} +
done
if ldconfig -p >/dev/null 2>&1; then ldconfig; fi
for lib in "$@"; do
    say "proof: lib$lib is gone"
    if ldconfig -p >/dev/null 2>&1 && ldconfig -p | awk -v l="lib$lib" '
        index($1, l) == 1 && index(".-", substr($1, length(l) + 1, 1)) { f = 1 } END { exit !f }'
    then
        fail "ldconfig -p lists lib$lib"
    fi
    left=$(find / -xdev \( -name "lib$lib" -o -name "lib$lib.*" -o -name "lib$lib-*" \) -print)
    [ -z "$left" ] || fail "files named lib$lib remain: $left"
    "$python" -I -S -c "
import ctypes, sys
for n in ['lib$lib.so'] + ['lib$lib.so.%d' % i for i in range(16)]:
    try:
        ctypes.CDLL(n)
    except OSError:
        continue
    sys.exit('dlopen(%r) succeeded' % n)
" || fail "lib$lib still loads"
done
"$python" -c "import ssl, sqlite3, ctypes, venv, zlib" || fail "$python lost a core module"
