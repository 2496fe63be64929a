#!/bin/sh
# Before the scrub: any apt-get install, the non-root user (uid/gid 1000), permissions.
# Usage: prepare.sh PYTHON
set -eu
python=$1
. /opt/q-kangaroo-smoke/common.sh

has_python() { "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; }
if ! has_python; then
    case $python in
    /usr/bin/python3*)  # the distribution's Python, missing from a registry base
        say "installing python3, python3-venv, python3-pip with apt-get (needs network)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update
        apt-get install -y --no-install-recommends python3 python3-venv python3-pip
        rm -rf /var/lib/apt/lists/*
        ;;
    esac
    has_python || { echo "error: no usable $python (with venv and ensurepip)" >&2; exit 1; }
fi
say "python: $python ($("$python" -c 'import sys; print(sys.version.split()[0])'))"

if has_uid_1000; then
    say "uid 1000 exists: $(awk -F: '$3 == 1000' /etc/passwd)"
elif command -v useradd >/dev/null; then
    grep -q '^[^:]*:[^:]*:1000:' /etc/group || groupadd --gid 1000 smoke
    useradd --uid 1000 --gid 1000 --no-create-home --home-dir /tmp --shell /bin/sh smoke
    say "created user smoke (1000:1000, home /tmp)"
else  # busybox (Alpine)
    grep -q '^[^:]*:[^:]*:1000:' /etc/group || addgroup -g 1000 smoke
    adduser -D -H -u 1000 -G "$(awk -F: '$3 == 1000 { print $1 }' /etc/group)" -h /tmp \
        -s /bin/sh smoke
    say "created user smoke (1000:1000, home /tmp)"
fi

# The host's uv is built for glibc: where it cannot run (musl), cells install with pip.
if ! /usr/local/bin/uv --version >/dev/null 2>&1; then
    rm -f /usr/local/bin/uv
    say "uv cannot run on this base (musl?): removed; cells install with the venv's pip"
fi

# Build images (manylinux) carry compilers: a clean cell has none.
for dir in /opt/rh/devtoolset-* /opt/rh/gcc-toolset-*; do
    [ -d "$dir" ] || continue
    rm -rf "$dir"
    say "removed the compiler toolset $dir"
done
if command -v rpm >/dev/null; then
    cc_pkgs=$(rpm -qa --qf '%{NAME}\n' gcc gcc-c++ gcc-gfortran cpp clang 2>/dev/null || true)
    if [ -n "$cc_pkgs" ]; then
        say "removing compilers:" $cc_pkgs
        rpm -e --nodeps $cc_pkgs
    fi
fi

# A copied interpreter may sit under a private directory (/root/.pyenv/...): let uid 1000
# traverse every directory above it.
dir=$(dirname "$python")
while [ "$dir" != / ]; do
    if [ -n "$(find "$dir" -maxdepth 0 ! -perm -o=rx)" ]; then
        chmod o+rx "$dir"
        say "made $dir readable for uid 1000"
    fi
    dir=$(dirname "$dir")
done
