#!/usr/bin/env bash
# Set up what syncd's tests and quick start need, on Debian 12 (bookworm) or similar.
#
#   bash contrib/setup.sh
#
# 1. System packages, only those missing: dovecot-core + dovecot-imapd + dovecot-pop3d (the tests and
#    the quick start run a private, throwaway Dovecot on 127.0.0.1 -- never the system
#    one), openssl, python3 (>= 3.11), python3-venv, ca-certificates, and isync +
#    offlineimap3 (the tools people switch from; tests adopt their Maildirs), and notmuch
#    (the syncd-notmuch plugin's tag sync is tested on a real database). Installing needs
#    root; without root the script says what to install and stops.
#    Installing dovecot-imapd on Debian normally starts a system-wide IMAP server on
#    ports 143/993. This script prevents that: during the install a temporary
#    /usr/sbin/policy-rc.d forbids starting services, and afterwards dovecot.service
#    and dovecot.socket are disabled. A system Dovecot that was already running before
#    is left alone.
# 2. A virtualenv in <project>/.venv with syncd installed editable with its test extras;
#    skipped when pyproject.toml has not changed since the last install.
#
# Safe to run again: when everything is in place it only checks, in about a second.
set -euo pipefail

project=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- which Python -------------------------------------------------------------------
python_ok() {  # python_ok CMD -> true if CMD is Python >= 3.11 with a working venv module
    command -v "$1" >/dev/null 2>&1 &&
        "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}
pick_python() {
    for cand in python3 python3.13 python3.12 python3.11; do
        if python_ok "$cand"; then command -v "$cand"; return 0; fi
    done
    return 1
}

# --- system packages ----------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
{ command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ]; } || missing+=(dovecot-core)
{ [ -x /usr/lib/dovecot/imap ] || installed dovecot-imapd; } || missing+=(dovecot-imapd)
# POP3 accounts (issue 13) are tested against the same private Dovecot: protocols = imap pop3.
{ [ -x /usr/lib/dovecot/pop3 ] || installed dovecot-pop3d; } || missing+=(dovecot-pop3d)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# The real tools people switch from: tests adopt their Maildirs and import their configs.
command -v mbsync >/dev/null 2>&1 || missing+=(isync)
command -v offlineimap >/dev/null 2>&1 || missing+=(offlineimap3)
# The syncd-notmuch plugin's tag sync (issue 15) is tested against a real notmuch database.
command -v notmuch >/dev/null 2>&1 || missing+=(notmuch)
[ -s /etc/ssl/certs/ca-certificates.crt ] || installed ca-certificates || missing+=(ca-certificates)
if ! python=$(pick_python); then
    if command -v python3 >/dev/null 2>&1 &&
        python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        missing+=(python3-venv)  # Debian ships venv/ensurepip separately
    else
        missing+=(python3 python3-venv)
    fi
fi

if [ ${#missing[@]} -eq 0 ]; then
    say "system packages: all present (dovecot, openssl, python >= 3.11, venv, CA certificates)"
else
    if [ "$(id -u)" -ne 0 ]; then
        die "missing: ${missing[*]}. Install them as root, then run this again:
    sudo apt-get install --no-install-recommends ${missing[*]}
    sudo systemctl disable --now dovecot.service dovecot.socket   # syncd's tests start their own private Dovecot"
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "missing: ${missing[*]}, and this is not a Debian-like system (no apt-get); install them by hand"

    # Was a system Dovecot running before? Then it is the admin's and we leave it be.
    system_pid_file=/run/dovecot/master.pid
    was_running=""
    if [ -s "$system_pid_file" ] && kill -0 "$(cat "$system_pid_file")" 2>/dev/null; then
        was_running=$(cat "$system_pid_file")
    fi

    bash "$project/contrib/apt-install.sh" "${missing[@]}" || die "installing ${missing[*]} failed"

    if [[ " ${missing[*]} " == *" dovecot-"* ]]; then
        if command -v systemctl >/dev/null 2>&1; then
            say "disabling the system-wide dovecot.service and dovecot.socket (tests use a private one)"
            systemctl disable dovecot.service dovecot.socket >/dev/null 2>&1 || true
        fi
        if [ -z "$was_running" ] && [ -s "$system_pid_file" ]; then
            pid=$(cat "$system_pid_file")
            if kill -0 "$pid" 2>/dev/null; then
                say "stopping the system Dovecot the install started (pid $pid)"
                if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q dovecot.service 2>/dev/null; then
                    systemctl stop dovecot.service dovecot.socket || kill "$pid"
                else
                    kill "$pid"
                fi
            fi
        fi
    fi
    python=$(pick_python) || die "no Python >= 3.11 with venv after installing ${missing[*]}"
    say "system packages: installed ${missing[*]}"
fi

# --- virtualenv ---------------------------------------------------------------------
venv="$project/.venv"
stamp="$venv/.syncd-setup-stamp"
if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv with $python ($("$python" -c 'import platform; print(platform.python_version())'))"
    "$python" -m venv "$venv"
fi
want=$(sha256sum "$project/pyproject.toml" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
    "$venv/bin/python" -c 'import syncd, pytest, xdist' 2>/dev/null; then
    say "virtualenv: up to date ($venv)"
else
    say "pip install -e '.[test]' into $venv"
    (cd "$project" && "$venv/bin/python" -m pip install -q -e '.[test]')
    printf '%s\n' "$want" >"$stamp"
fi
say "ready: $venv/bin/syncd, $venv/bin/pytest"
