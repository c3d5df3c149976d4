#!/usr/bin/env bash
# The mailwire demo: builds mailwire, starts private Dovecot (POP3) and
# Postfix (SMTP) servers on 127.0.0.1, sends mail through Postfix with
# `mailwire send`, reads it back from Dovecot with `mailwire pop3`, and stops
# the servers.  Everything happens in a temporary directory; no mail leaves
# the machine.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" | sed -e "s#$top/##g" -e "s#$srv#\$SRV#g" >&2; "$@"; }

say "Installing what is missing and building mailwire"
bash scripts/deps.sh build
build=build-demo
[ -f $build/build.ninja ] || meson setup $build --buildtype=release -Dtests=false >/dev/null
ninja -C $build >/dev/null
MW=$top/$build/cli/mailwire
$MW --version

say "Starting private mail servers on 127.0.0.1"
srv=$(mktemp -d /tmp/mailwire-demo.XXXXXX)
trap 'bash tests/servers/stop.sh "$srv" >/dev/null 2>&1 || true; [ -n "${MW_DEMO_KEEP:-}" ] || rm -rf "$srv"' EXIT
bash tests/servers/start.sh "$srv" >"$srv.log" 2>&1 || { cat "$srv.log"; exit 1; }
set -a; . "$srv/env"; set +a
echo "Dovecot POP3 on port $MW_POP3_PORT (STLS) and $MW_POP3S_PORT (POP3S);"
echo "Postfix submission on $MW_SMTP_PORT (STARTTLS + AUTH); test CA: \$SRV/certs/ca.pem"
user=d1
export MAILWIRE_PASSWORD=pw-$user
common=(--host 127.0.0.1 --cafile "$MW_CA_FILE" --user "$user")

say "What the SMTP server offers, before and after STARTTLS (certificate verified)"
run "$MW" smtp "${common[@]}" --port "$MW_SMTP_PORT" capa

say "What the POP3 server offers after STLS"
run "$MW" pop3 "${common[@]}" --port "$MW_POP3_PORT" capa

say "Building a message with an attachment ('mailwire mime build') and sending it ('mailwire send -t')"
mkdir -p "$srv/files"
head -c 3000 /dev/urandom >"$srv/files/photo.bin"
printf 'Hello d1,\n\nthe report is attached. Caf\xc3\xa9 au lait at 10?\n.A line that starts with a dot.\n' >"$srv/files/note.txt"
run "$MW" mime build --from "Demo Sender <$user@$MW_MAIL_DOMAIN>" --to "$user@$MW_MAIL_DOMAIN" \
    --subject "Réunion: the report" --text "$srv/files/note.txt" --attach "$srv/files/photo.bin" >"$srv/built.eml"
echo "(built $(wc -c <"$srv/built.eml") bytes; its MIME structure:)"
"$MW" mime parse "$srv/built.eml" | grep -vE '^ +[A-Za-z-]+: ' || true
run "$MW" send "${common[@]}" --port "$MW_SMTP_PORT" --trace "$srv/smtp-trace.txt" -t <"$srv/built.eml"
echo "(the SMTP conversation, from the trace; the AUTH exchange is masked:)"
grep -E '^(C: (AUTH|MAIL|RCPT|BDAT|DATA|QUIT)|S: 235|S: 250 2\.0\.0|\* )' "$srv/smtp-trace.txt" | head -14

say "Two plain messages in one batch ('mailwire smtp send FILE FILE'); a Bcc recipient gets a copy but never appears in the headers"
for i in 1 2; do
  printf 'From: %s@%s\nTo: %s@%s\nBcc: d2@%s\nSubject: plain message %s\n\nPlain text %s.\n' \
    "$user" "$MW_MAIL_DOMAIN" "$user" "$MW_MAIL_DOMAIN" "$MW_MAIL_DOMAIN" "$i" "$i" >"$srv/plain$i.eml"
done
run "$MW" smtp "${common[@]}" --port "$MW_SMTP_PORT" --trace "$srv/batch-trace.txt" send \
    "$srv/plain1.eml" "$srv/plain2.eml"
echo "(one login for both, and one round trip each: Postfix offers CHUNKING and PIPELINING, so"
echo " MAIL, both RCPTs and the whole message as BDAT LAST go out in one write:)"
grep -E '^(C: (MAIL|RCPT|BDAT|QUIT)|S: 250 2\.(0\.0|1\.[05]))' "$srv/batch-trace.txt" | head -16

wait_for() { # N: until the POP3 mailbox holds N messages (Postfix delivers asynchronously)
  for _ in $(seq 1 100); do
    n=$("$MW" pop3 "${common[@]}" --port "$MW_POP3_PORT" stat | cut -d' ' -f1)
    [ "$n" -ge "$1" ] && return 0
    sleep 0.2
  done
  echo "only $n of $1 messages arrived" >&2; return 1
}
wait_for 3
say "What is waiting on the POP3 server (over POP3S)"
run "$MW" pop3 "${common[@]}" --port "$MW_POP3S_PORT" --tls implicit stat
run "$MW" pop3 "${common[@]}" --port "$MW_POP3S_PORT" --tls implicit uidl

say "An accounts file, and 'mailwire fetch' into a Maildir"
mkdir -p "$srv/home"
cat >"$srv/home/config" <<CONF
defaults
  tls starttls
  cafile $MW_CA_FILE
  keep on

account demo
  host 127.0.0.1
  port $MW_POP3_PORT
  user $user
  passwordeval echo pw-$user
  delivery maildir $srv/home/Maildir
CONF
chmod 600 "$srv/home/config"
sed "s#$srv#\$SRV#g" "$srv/home/config"
unset MAILWIRE_PASSWORD
run "$MW" fetch --config "$srv/home/config" demo
ls "$srv/home/Maildir/new" | sed 's/^/  new\//'

say "The fetched message, read back with 'mailwire mime parse'"
first=$(grep -l 'Réunion\|=?' "$srv/home/Maildir/new/"* | head -1)
mkdir -p "$srv/extracted"
run "$MW" mime parse --extract "$srv/extracted" "$first"
echo "extracted: $(ls "$srv/extracted")"
cmp "$srv/extracted/"* "$srv/files/photo.bin" && echo "the attachment is byte-identical to the file that was sent"

say "A new message arrives; fetch again: only the new one is fetched (UIDL state)"
printf 'From: %s@%s\nTo: %s@%s\nSubject: the newest one\n\nNew.\n' "$user" "$MW_MAIL_DOMAIN" "$user" "$MW_MAIL_DOMAIN" \
  | MAILWIRE_PASSWORD=pw-$user "$MW" send "${common[@]}" --port "$MW_SMTP_PORT" -t
MAILWIRE_PASSWORD=pw-$user wait_for 4
run "$MW" fetch --config "$srv/home/config" demo
run "$MW" fetch --config "$srv/home/config" demo
echo "Maildir now holds $(ls "$srv/home/Maildir/new" | wc -l) messages; the server still holds 4 (keep on)."

say "Several mailboxes at once, in one thread: 'fetch --all --jobs N' runs them on the event loop"
printf 'From: %s@%s\nTo: d3@%s\nSubject: for d3\n\nHello d3.\n' "$user" "$MW_MAIL_DOMAIN" "$MW_MAIL_DOMAIN" \
  | MAILWIRE_PASSWORD=pw-$user "$MW" send "${common[@]}" --port "$MW_SMTP_PORT" -t
for _ in $(seq 1 100); do # Postfix delivers asynchronously
  n=$(MAILWIRE_PASSWORD=pw-d3 "$MW" pop3 --host 127.0.0.1 --cafile "$MW_CA_FILE" --user d3 \
      --port "$MW_POP3_PORT" stat | cut -d' ' -f1)
  [ "$n" -ge 1 ] && break
  sleep 0.2
done
cat >"$srv/home/config-many" <<CONF
defaults
  host 127.0.0.1
  port $MW_POP3_PORT
  tls starttls
  cafile $MW_CA_FILE

account d2
  user d2
  passwordeval echo pw-d2
  delivery maildir $srv/home/Maildir-d2

account d3
  user d3
  passwordeval echo pw-d3
  delivery maildir $srv/home/Maildir-d3
CONF
chmod 600 "$srv/home/config-many"
run "$MW" fetch --config "$srv/home/config-many" --all --jobs 2
echo "(both sessions ran at once on one event loop in this one process, and each deleted on the server only what it had stored)"

say "Safety by default"
echo "A server certificate from an untrusted CA is refused:"
MAILWIRE_PASSWORD=pw-$user run "$MW" pop3 --host 127.0.0.1 --user "$user" --port "$MW_POP3S_PORT" --tls implicit stat || echo "(exit $?)"
echo "A wrong password is refused with the server's text:"
MAILWIRE_PASSWORD=wrong run "$MW" pop3 "${common[@]}" --port "$MW_POP3_PORT" stat || echo "(exit $?)"
echo "A password over a connection without TLS is not sent unless allowed:"
MAILWIRE_PASSWORD=pw-$user run "$MW" pop3 --host 127.0.0.1 --user "$user" --port "$MW_POP3_PORT" --tls none --auth user stat || echo "(exit $?)"
echo "Nor is any other login (SCRAM hides the password, not the session and its mail):"
MAILWIRE_PASSWORD=pw-$user run "$MW" pop3 --host 127.0.0.1 --user "$user" --port "$MW_POP3_PORT" --tls none stat || echo "(exit $?)"

say "Stopping the servers"
