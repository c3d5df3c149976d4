#!/bin/sh
# Runs the mailwire(3) example program against the real test servers
# (tests/servers/start.sh; scripts/test.sh exports their env) and prints
# TAP.  Without the servers the test is a TAP SKIP, never a silent pass.
# usage: run_example.sh PATH/TO/fetch_and_send
prog=$1
echo "1..1"
if [ -z "$MW_POP3_PORT" ] || [ -z "$MW_SMTP_PORT" ] || [ -z "$MW_CA_FILE" ]; then
    echo "ok 1 - example fetch_and_send round trip # SKIP servers not running"
    exit 0
fi
# d5 is one of the demo users; its password is pw-d5 (tests/servers/README.md).
user=d5
out=$(MAILWIRE_PASSWORD="pw-$user" "$prog" 127.0.0.1 "$MW_SMTP_PORT" "$MW_POP3_PORT" \
      "$MW_CA_FILE" "$user" "${MW_MAIL_DOMAIN:-test.domain}" 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/# /'
if [ "$rc" -eq 0 ] && printf '%s\n' "$out" | grep -q '^fetched message'; then
    echo "ok 1 - example fetch_and_send round trip (SMTP STARTTLS+AUTH, POP3 STLS, DELE)"
else
    echo "not ok 1 - example fetch_and_send round trip (exit $rc)"
fi
