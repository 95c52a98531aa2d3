#!/usr/bin/env bash
# syncd in two minutes: set up, start a throwaway IMAP server full of sample mail,
# sync it into a local Maildir, and show what you got.
#
#   bash contrib/quickstart.sh [--layout maildir++|nested] [--keep]
#
# Everything it creates lives in .cache/demo/ of the project (the private Dovecot, the
# config, the Maildir, syncd's state). The demo server listens on 127.0.0.1 only and is
# stopped when the script ends, even when something fails -- unless --keep is given
# and all went well, so you can play with it. Your own mail and any system-wide IMAP
# server are not touched.
set -euo pipefail

layout=maildir++
keep=""
while [ $# -gt 0 ]; do
    case $1 in
        --layout) layout=${2:-}; shift 2 || { echo "--layout needs a value" >&2; exit 2; } ;;
        --layout=*) layout=${1#--layout=}; shift ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "quickstart: unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
case $layout in
    maildir++|nested) ;;
    *) echo "quickstart: --layout must be maildir++ or nested, not '$layout'" >&2; exit 2 ;;
esac

project=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$project"
say() { printf '\n== %s\n' "$*"; }

say "1/5 Setting up (system packages, .venv)"
bash contrib/setup.sh
py="$project/.venv/bin/python"

demo="$project/.cache/demo"
server_dir="$demo/server"
config="$demo/config.toml"
maildir="$demo/Mail"
state="$demo/state"

stop_server() { "$py" -m devserver.dovecot stop --dir "$server_dir" >/dev/null 2>&1 || true; }
on_exit() {
    local status=$?
    if [ -n "$keep" ] && [ "$status" -eq 0 ]; then return; fi
    stop_server
}
trap on_exit EXIT
trap 'exit 130' INT TERM

say "2/5 Starting a throwaway Dovecot with sample mail"
stop_server  # a server left over from an interrupted run
# Each run starts from scratch: a fresh server, so an old Maildir/state would not match.
rm -rf "$maildir" "$state"
mkdir -p "$demo"
info=$("$py" -m devserver.dovecot start --dir "$server_dir" --populate)
read -r host port user password < <("$py" -c '
import json, sys
d = json.loads(sys.argv[1])
print(d["host"], d["port"], d["user"], d["password"])' "$info")
echo "IMAP server on $host:$port, user '$user' (4 folders, 75 messages)"

"$py" - "$config" "$host" "$port" "$user" "$password" "$maildir" "$layout" "$state" <<'PY'
import json
import sys
from pathlib import Path

config, host, port, user, password, maildir, layout, state = sys.argv[1:]
q = lambda s: json.dumps(s, ensure_ascii=False)  # a JSON string is a valid TOML string
Path(config).write_text(f"""\
# Written by contrib/quickstart.sh for the throwaway demo server.
[general]
state_dir = {q(state)}

[accounts.demo]
host = {q(host)}
port = {port}
tls = "none"          # allowed only because the demo server is on 127.0.0.1
user = {q(user)}
password_command = ["printf", "%s", {q(password)}]
maildir = {q(maildir)}
layout = {q(layout)}
folders = ["*"]
sync = "both"
expunge = true
""", encoding="utf-8")
PY
echo "config: ${config#"$project"/}"

say "3/5 Syncing: .venv/bin/syncd --config ${config#"$project"/} -v sync"
"$project/.venv/bin/syncd" --config "$config" -v sync

say "4/5 What you got: ${maildir#"$project"/} ($layout)"
"$py" - "$maildir" "$layout" <<'PY'
import sys
from pathlib import Path

root, layout = Path(sys.argv[1]), sys.argv[2]

def count(folder: Path) -> int:
    return sum(1 for sub in ("cur", "new") if (folder / sub).is_dir()
               for f in (folder / sub).iterdir() if f.is_file())

folders = []
if layout == "maildir++":
    if (root / "cur").is_dir():
        folders.append(("INBOX", ".", count(root)))
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d.name.startswith(".") and (d / "cur").is_dir():
            folders.append((d.name[1:].replace(".", "/"), d.name, count(d)))
else:
    for d in sorted(root.rglob("cur")):
        if d.is_dir():
            rel = d.parent.relative_to(root).as_posix()
            folders.append((rel, rel, count(d.parent)))
width = max((len(n) for n, _, _ in folders), default=10)
for name, path, n in folders:
    print(f"  {name:<{width}}  {n:>4} messages   ({path})")
print(f"  {'total':<{width}}  {sum(n for _, _, n in folders):>4}")
PY

say "5/5 Both ways: change mail on each side, then sync again"
"$py" - "$maildir" "$layout" "$host" "$port" "$user" "$password" <<'PY'
# Play a mail reader on the Maildir and another mail client on the server.
import os, sys, time
from pathlib import Path
import imapclient

root, layout, host, port, user, password = sys.argv[1:]
root = Path(root)
path = (lambda n: root if n == "INBOX" else root / ("." + n.replace("/", "."))) \
    if layout == "maildir++" else (lambda n: root / n)
# local: flag the first INBOX message (a rename), delete one in Archive, write a new one
first = sorted((path("INBOX") / "cur").iterdir())[0]
first.rename(first.with_name(first.name.split(":2,")[0] + ":2,FS"))
sorted((path("Archive") / "cur").iterdir())[0].unlink()
ete = path("Projets/Été")
tmp = ete / "tmp" / f"{time.time():.0f}.quickstart.local"
tmp.write_bytes(b"From: you@example.org\nTo: team@example.org\nSubject: written offline\n"
                b"Message-ID: <offline@quickstart>\n\nHello from the Maildir.\n")
os.rename(tmp, ete / "cur" / (tmp.name + ":2,S"))
print("  here:   flagged a message in INBOX, deleted one in Archive, wrote one in Projets/Été")
# server: another client delivers a message
c = imapclient.IMAPClient(host, port=int(port), ssl=False)
c.login(user, password)
c.append("INBOX", b"From: boss@example.org\r\nSubject: arrived on the server\r\n"
         b"Message-ID: <server@quickstart>\r\n\r\nHello from the server.\r\n")
c.logout()
print("  server: a new message arrived in INBOX")
PY
"$project/.venv/bin/syncd" --config "$config" sync
"$py" - "$host" "$port" "$user" "$password" <<'PY'
import sys
import imapclient
host, port, user, password = sys.argv[1:]
c = imapclient.IMAPClient(host, port=int(port), ssl=False)
c.login(user, password)
print("  on the server now:")
for flags, _delim, name in sorted(c.list_folders(), key=lambda f: f[2]):
    if b"\\Noselect" in flags:
        continue
    c.select_folder(name, readonly=True)
    flagged = len(c.search("FLAGGED"))
    offline = " (incl. the one written offline)" if c.search(["HEADER", "Message-ID", "offline@quickstart"]) else ""
    print(f"    {name:<14} {len(c.search('ALL')):>3} messages, {flagged} flagged{offline}")
c.logout()
PY

inbox=$maildir
[ "$layout" = nested ] && inbox=$maildir/INBOX
if [ -n "$keep" ]; then
    cat <<EOF

The demo server is still running (--keep). Try it:
  - Read the mail:   mutt -f ${inbox#"$project"/}     (or neomutt, aerc, notmuch)
  - Flag or delete something there, then sync again and it reaches the server:
                     .venv/bin/syncd --config ${config#"$project"/} sync
  - Stop the server: .venv/bin/python -m devserver.dovecot stop --dir ${server_dir#"$project"/}

EOF
else
    cat <<EOF

The demo server has been stopped. Run this again with --keep to play with it
(read the Maildir with mutt -f ${inbox#"$project"/}, change it, sync again).

EOF
fi
cat <<EOF
Point syncd at your real server: let it find the settings from your address
(Gmail and Microsoft 365 included; see the README for their OAuth2 set-up),

  .venv/bin/syncd init you@example.com

or put this in ~/.config/syncd/config.toml

  [general]
  state_dir = "~/.local/state/syncd"

  [accounts.work]
  host = "imap.example.com"
  port = 993
  tls = "tls"                                  # or "starttls" on port 143
  user = "me@example.com"
  password_command = "pass show mail/work"     # or: syncd password set work (keyring)
  maildir = "~/Mail/work"
  layout = "maildir++"                         # or "nested"
  folders = ["*"]
  exclude = ["Spam"]

then:  syncd check && syncd sync -n    (dry run: shows what it would do)
       syncd sync                      (the real thing)
EOF
