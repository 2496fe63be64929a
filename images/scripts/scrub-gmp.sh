#!/bin/sh
# Remove GMP: its packages, any leftover libgmp* file, apt's cache, the linker cache.
# Runs after every apt-get install: apt's downloads (and expr, factor) need GMP.
set -eu
. /opt/q-kangaroo-smoke/common.sh

pkgs=$(gmp_packages)
if [ -n "$pkgs" ]; then
    say "purging" $pkgs
    purge_packages $pkgs
fi
say "deleting leftover files named libgmp*"
find / -xdev -name 'libgmp*' -prune -print -exec rm -rf {} +
if command -v apt-get >/dev/null; then
    apt-get clean
fi
if command -v yum >/dev/null; then
    yum clean all >/dev/null 2>&1 || true
fi
rm -rf /var/cache/apk/*
# glibc: rebuild the linker cache; musl has none (its ldconfig, if any, is a no-op)
if ldconfig -p >/dev/null 2>&1; then
    ldconfig
fi
