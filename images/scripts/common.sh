# Sourced by the other scripts. Debian (dpkg/apt), CentOS/manylinux (rpm/yum), Alpine (apk).
say() { echo "==> $*"; }

# Installed (or half-removed) GMP packages, one per line, from whichever package manager.
gmp_packages() {
    if command -v dpkg-query >/dev/null; then
        dpkg-query -W -f '${db:Status-Abbrev} ${binary:Package}\n' 'libgmp*' 2>/dev/null \
            | awk 'substr($1, 2, 1) != "n" { print $2 }'
    elif command -v rpm >/dev/null; then
        rpm -qa --qf '%{NAME}\n' 'gmp*' 2>/dev/null
    elif command -v apk >/dev/null; then
        apk info -q 2>/dev/null | grep -E '^(gmp|libgmp)' || true
    fi
}

# Remove packages without removing what depends on them (Python does not need GMP).
purge_packages() {
    if command -v dpkg >/dev/null; then
        dpkg --purge --force-depends "$@"
    elif command -v rpm >/dev/null; then
        rpm -e --nodeps "$@"
    elif command -v apk >/dev/null; then
        apk del --force-broken-world "$@"
    fi
}

# Does uid 1000 exist? (getent is missing on some minimal bases)
has_uid_1000() { awk -F: '$3 == 1000 { found = 1 } END { exit !found }' /etc/passwd; }
