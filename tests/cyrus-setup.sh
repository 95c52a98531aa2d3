#!/usr/bin/env bash
# Unpack Cyrus IMAP (Debian 12 cyrus-imapd 3.6) into a cache folder for the interop tests
# (tests/faults/test_cyrus.py), without installing it as a system service:
#
#   bash tests/cyrus-setup.sh            # prints the cache folder on its last line
#
# Why not `apt-get install cyrus-imapd`: it conflicts with dovecot-imapd (both provide
# imap-server), and cyrus-common would pull in an MTA (exim4 as default-mta), create the
# `cyrus` user, enable cyrus-imapd.service, and sasl2-bin fires the dovecot-core trigger
# (`invoke-rc.d dovecot restart`).  None of that is needed to run a private server.
# Instead (shared/CYRUS.md §8):
#   1. apt-get install only the *shared libraries* Cyrus links against that are missing
#      (no daemons, no users, no unit; --no-upgrade leaves installed packages alone);
#   2. apt-get download cyrus-common cyrus-imapd sasl2-bin and `dpkg -x` them into
#      $SYNCD_CYRUS_DIR (default <project>/.cache/cyrus); the fixture runs the binaries
#      from there with LD_LIBRARY_PATH pointing at the unpacked libcyrus*.so.
# Fast when already done. Needs root for step 1 only when a library is missing.
set -euo pipefail

project=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${SYNCD_CYRUS_DIR:-$project/.cache/cyrus}
say() { printf 'cyrus-setup: %s\n' "$*" >&2; }
die() { printf 'cyrus-setup: error: %s\n' "$*" >&2; exit 1; }

libs=(libclamav12 libical3 libicu72 libjansson4 libpcre3 libpq5 libwrap0 libxapian30
      libzephyr4 libxml2 libsasl2-2 libsasl2-modules libsasl2-modules-db libldap-2.5-0
      libkrb5-3 libsqlite3-0 libdb5.3 libcom-err2 libssl3 zlib1g libcrypt1 libpam0g)
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for lib in "${libs[@]}"; do installed "$lib" || missing+=("$lib"); done

if [ -x "$dest/root/usr/lib/cyrus/bin/master" ] && [ -x "$dest/root/usr/sbin/saslpasswd2" ] &&
    [ ${#missing[@]} -eq 0 ]; then
    echo "$dest"
    exit 0
fi
command -v apt-get >/dev/null 2>&1 || die "not a Debian-like system (no apt-get)"

if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing libraries: ${missing[*]} (install them as root:
    apt-get install --no-install-recommends --no-upgrade ${missing[*]})"
    say "installing libraries Cyrus needs: ${missing[*]}"
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        # Libraries start no service, but be safe: forbid service starts during the install.
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        --no-upgrade "${missing[@]}" >&2
fi

say "unpacking cyrus-common cyrus-imapd sasl2-bin into $dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
# apt's download user (_apt) must be able to write here.
chown _apt "$work" 2>/dev/null || true
(cd "$work" && apt-get download -qq cyrus-common cyrus-imapd sasl2-bin >&2) ||
    die "apt-get download failed (run apt-get update first?)"
rm -rf "$dest.new"
mkdir -p "$dest.new/root"
for deb in "$work"/*.deb; do dpkg -x "$deb" "$dest.new/root"; done
rm -rf "$dest"
mv "$dest.new" "$dest"
# The server runs as an unprivileged user (uid 65534), which must reach the binaries.
chmod -R a+rX "$dest"
d=$dest
while [ "$d" != / ]; do chmod a+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
echo "$dest"
