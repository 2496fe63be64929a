# Sourced by the other scripts.
say() { echo "==> $*"; }

# Installed (or half-removed) libgmp* packages, one per line; nothing without dpkg.
gmp_packages() {
    command -v dpkg-query >/dev/null || return 0
    dpkg-query -W -f '${db:Status-Abbrev} ${binary:Package}\n' 'libgmp*' 2>/dev/null \
        | awk 'substr($1, 2, 1) != "n" { print $2 }'
}
