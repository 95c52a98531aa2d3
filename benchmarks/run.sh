#!/usr/bin/env bash
# syncd next to mbsync and offlineimap, on one private Dovecot: the one command.
#
#   bash benchmarks/run.sh                      # N = 1000 and 10000, all scenarios and tools
#   bash benchmarks/run.sh --quick              # smoke run, N = 300 (about a minute)
#   bash benchmarks/run.sh --sizes 1000,10000,100000 --repeat 3
#   bash benchmarks/run.sh --tools syncd,mbsync --scenarios initial,noop
#
# 1. System packages, only those missing: isync (mbsync), offlineimap3 (offlineimap) and
#    time (GNU time, for the peak RSS). Installing needs root; without it the script
#    says what to install and stops. During the install a temporary
#    /usr/sbin/policy-rc.d forbids starting services (none of these has one, but the
#    install must not start anything, whatever the dependencies pull in).
# 2. contrib/setup.sh: Dovecot (kept from running system-wide) and the .venv.
# 3. .venv/bin/python -m benchmarks.bench "$@": starts a private Dovecot on 127.0.0.1
#    (stopped by its pid at the end, also on failure or Ctrl-C), runs the benchmark,
#    prints the table and writes benchmarks/results/latest.{json,md} (quick.* for --quick).
#
# Exit status: 0 every run was correct; 1 a run failed or ended wrong; 2 set-up error.
set -euo pipefail

project=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { printf 'bench-setup: %s\n' "$*" >&2; }
die() { printf 'bench-setup: error: %s\n' "$*" >&2; exit 2; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
command -v mbsync >/dev/null 2>&1 || missing+=(isync)
if ! command -v offlineimap >/dev/null 2>&1; then
    # bookworm and later: offlineimap3 (Python 3); "offlineimap" is a transitional name.
    if command -v apt-cache >/dev/null 2>&1 && apt-cache show offlineimap3 >/dev/null 2>&1; then
        missing+=(offlineimap3)
    else
        missing+=(offlineimap)
    fi
fi
[ -x /usr/bin/time ] || missing+=(time)

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        die "missing: ${missing[*]}. Install them as root, then run this again:
    sudo apt-get install --no-install-recommends ${missing[*]}
(or leave a tool out: --tools syncd,mbsync)"
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "missing: ${missing[*]}, and this is not a Debian-like system (no apt-get)"
    bash "$project/contrib/apt-install.sh" "${missing[@]}" || die "installing ${missing[*]} failed"
    say "installed ${missing[*]}"
fi

bash "$project/contrib/setup.sh" >&2 || die "contrib/setup.sh failed"

cd "$project"
# As `pip install` does: byte-compile syncd, so no run pays for compiling it (an
# environment with PYTHONDONTWRITEBYTECODE set would otherwise compile on every run).
"$project/.venv/bin/python" -m compileall -q "$project/syncd" >/dev/null
exec "$project/.venv/bin/python" -m benchmarks.bench "$@"
