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
run() { printf '$ %s\n' "$*" | sed -e "s#$top/##g" -e "s#$srv#\$SRV#g"; "$@"; }

say "Installing what is missing and building mailwire"
bash scripts/deps.sh build
build=build-demo
[ -f $build/build.ninja ] || meson setup $build --buildtype=release -Dtests=false >/dev/null
ninja -C $build >/dev/null
MW=$top/$build/cli/mailwire
$MW --version

say "Starting private mail servers on 127.0.0.1"
srv=$(mktemp -d /tmp/mailwire-demo.XXXXXX)
trap 'bash tests/servers/stop.sh "$srv" >/dev/null 2>&1 || true; rm -rf "$srv"' EXIT
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

say "Sending three messages with 'mailwire send -t' (STARTTLS, then the strongest SASL mechanism)"
for i in 1 2 3; do
  printf 'From: Demo Sender <%s@%s>\nTo: %s@%s\nBcc: d2@%s\nSubject: demo message %s\n\nHello from mailwire, message %s.\n.leading dot survives dot-stuffing\n' \
    "$user" "$MW_MAIL_DOMAIN" "$user" "$MW_MAIL_DOMAIN" "$MW_MAIL_DOMAIN" "$i" "$i" \
  | run "$MW" send "${common[@]}" --port "$MW_SMTP_PORT" --trace "$srv/smtp-trace-$i.txt" -t
done
echo "(sent; the trace of the last one, password exchange masked:)"
grep -E '^(C: (AUTH|MAIL|RCPT|BDAT|DATA|QUIT)|S: 235|S: 250 2\.0\.0|\* )' "$srv/smtp-trace-3.txt" | head -14

say "Waiting for Postfix to deliver into the Maildir Dovecot serves"
for _ in $(seq 1 100); do
  n=$("$MW" pop3 "${common[@]}" --port "$MW_POP3_PORT" stat | cut -d' ' -f1)
  [ "$n" -ge 3 ] && break
  sleep 0.2
done
run "$MW" pop3 "${common[@]}" --port "$MW_POP3S_PORT" --tls implicit stat
run "$MW" pop3 "${common[@]}" --port "$MW_POP3S_PORT" --tls implicit uidl

say "Retrieving every message into a directory (pipelined RETR over POP3S)"
mkdir -p "$srv/out"
run "$MW" pop3 "${common[@]}" --port "$MW_POP3S_PORT" --tls implicit retr all -o "$srv/out"
ls -l "$srv/out" | sed "s#$srv#\$SRV#g"
echo "--- message 1, as the server holds it:"
tr -d '\r' <"$srv/out/1.eml"

say "Safety by default"
echo "A server certificate from an untrusted CA is refused:"
run "$MW" pop3 --host 127.0.0.1 --user "$user" --port "$MW_POP3S_PORT" --tls implicit stat || echo "(exit $?)"
echo "A wrong password is refused with the server's text:"
MAILWIRE_PASSWORD=wrong run "$MW" pop3 "${common[@]}" --port "$MW_POP3_PORT" stat || echo "(exit $?)"

say "Deleting what was fetched, then checking the mailbox is empty"
run "$MW" pop3 "${common[@]}" --port "$MW_POP3_PORT" dele all
run "$MW" pop3 "${common[@]}" --port "$MW_POP3_PORT" stat

say "Stopping the servers"
