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

if getent passwd 1000 >/dev/null; then
    say "uid 1000 exists: $(getent passwd 1000)"
else
    getent group 1000 >/dev/null || groupadd --gid 1000 smoke
    useradd --uid 1000 --gid 1000 --no-create-home --home-dir /tmp --shell /bin/sh smoke
    say "created user smoke (1000:1000, home /tmp)"
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
