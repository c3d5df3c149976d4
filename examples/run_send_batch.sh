#!/bin/sh
# Runs the send_batch example against the real test servers (TAP): 50
# messages to smtp-sink over one plain connection, and 3 through Postfix
# submission with STARTTLS and AUTH.  Without the servers: a TAP SKIP.
# usage: run_send_batch.sh PATH/TO/send_batch
prog=$1
echo "1..2"
if [ -z "$MW_SINK_PORT" ] || [ -z "$MW_SMTP_PORT" ] || [ -z "$MW_CA_FILE" ]; then
    echo "ok 1 - example send_batch to smtp-sink # SKIP servers not running"
    echo "ok 2 - example send_batch through Postfix # SKIP servers not running"
    exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
i=0
while [ $i -lt 50 ]; do
    printf 'Subject: batch %d\n\nmessage %d\n' $i $i >"$dir/m$i"
    i=$((i + 1))
done
out=$("$prog" 127.0.0.1 "$MW_SINK_PORT" none a@x.test b@y.test "$dir"/m* 2>&1)
rc=$?
printf '%s\n' "$out" | tail -3 | sed 's/^/# /'
if [ $rc -eq 0 ] && printf '%s\n' "$out" | grep -q '^50 sent, 0 failed$' &&
   [ "$(printf '%s\n' "$out" | grep -c '^message [0-9]*: 250 ')" -eq 50 ]; then
    echo "ok 1 - example send_batch: 50 messages to smtp-sink, each reported in order"
else
    echo "not ok 1 - example send_batch to smtp-sink (exit $rc)"
fi
# s8 is the one SMTP test user no other test sends to (a test that fetches
# a mailbox back must not find these messages there); password pw-s8.
out=$(MAILWIRE_USER=s8 MAILWIRE_PASSWORD=pw-s8 "$prog" 127.0.0.1 "$MW_SMTP_PORT" "$MW_CA_FILE" \
      s8@"${MW_MAIL_DOMAIN:-test.domain}" s8@"${MW_MAIL_DOMAIN:-test.domain}" \
      "$dir/m1" "$dir/m2" "$dir/m3" 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/# /'
if [ $rc -eq 0 ] && printf '%s\n' "$out" | grep -q '^3 sent, 0 failed$'; then
    echo "ok 2 - example send_batch: 3 messages through Postfix (STARTTLS, AUTH)"
else
    echo "not ok 2 - example send_batch through Postfix (exit $rc)"
fi
