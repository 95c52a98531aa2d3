#!/usr/bin/env bash
# apt-get install PACKAGE... with service start-up forbidden for the duration,
# so that installing e.g. dovecot-imapd leaves no system-wide server running:
# a temporary /usr/sbin/policy-rc.d (exit 101) unless one is already there.
# Shared by contrib/setup.sh and benchmarks/run.sh. Needs root.
set -euo pipefail
[ $# -gt 0 ] || exit 0
say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
command -v apt-get >/dev/null 2>&1 ||
    die "missing: $*, and this is not a Debian-like system (no apt-get); install them by hand"
[ "$(id -u)" -eq 0 ] || die "missing: $*. Install them as root:
    sudo apt-get install --no-install-recommends $*"

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    say "temporarily forbidding service starts during the install ($policy)"
    printf '#!/bin/sh\n# installed by syncd contrib/apt-install.sh for the duration of an apt-get install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
say "apt-get update"
DEBIAN_FRONTEND=noninteractive apt-get update -qq || die "apt-get update failed"
say "apt-get install $*"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    die "apt-get install $* failed (see above)"
