#!/usr/bin/env bash
# `mailwire pop3` against the real Dovecot: retr all -o DIR byte-identical to
# the Maildir files (CRLF), wrong password exits 77 with the server's text,
# dele + QUIT, POP3S, exit codes.  TAP; skipped when servers are not running.
# Run twice by meson: blocking, and with MAILWIRE_ENGINE=loop (the session
# on the event loop), each on a mailbox of its own (MW_CLI_POP3_USER).
set -u
mw=$1
n=0
fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); fail=1; echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
if [ -z "${MW_POP3_PORT:-}" ] || [ -z "${MW_MAILDIR_ROOT:-}" ]; then
  echo "1..1"
  echo "ok 1 - interop pop3 cli # SKIP servers not running"
  exit 0
fi
user=${MW_CLI_POP3_USER:-p6}
md=$MW_MAILDIR_ROOT/$user/Maildir
mkdir -p "$md/new" "$md/cur" "$md/tmp"
rm -f "$md"/new/* "$md"/cur/* "$md"/dovecot* 2>/dev/null
src=$(mktemp -d)
out=$(mktemp -d)
trap 'rm -rf "$src" "$out"' EXIT
for i in 1 2 3 4; do
  {
    printf 'From: a%s@test.domain\nSubject: cli %s\n\n' "$i" "$i"
    printf '.dot first\n..double\nline %s\n' "$i"
    head -c $((i * 5000)) /dev/zero | tr '\0' 'x' | fold -w 76
    printf '\n'
  } > "$src/$i"
  cp "$src/$i" "$md/new/$(date +%s).M${i}P$$.cli"
done
chown -R "$MW_MAIL_OWNER" "$MW_MAILDIR_ROOT/$user"
# With MAILWIRE_ENGINE=loop every session must have gone onto a loop.
if [ -n "${MAILWIRE_ENGINE:-}" ]; then export MAILWIRE_ENGINE_LOG=$out.engine; fi
common=(--host localhost --port "$MW_POP3_PORT" --cafile "$MW_CA_FILE" --user "$user")
export MAILWIRE_PASSWORD=pw-$user

got=$("$mw" pop3 "${common[@]}" stat 2>&1); rc=$?
[ $rc = 0 ] && [[ $got == 4\ * ]] && ok "stat over STLS: $got" || nok "stat" "rc $rc: $got"

"$mw" pop3 "${common[@]}" retr all -o "$out" >/dev/null 2>"$out.err"; rc=$?
same=1
for i in 1 2 3 4; do
  sed 's/$/\r/' "$src/$i" | cmp -s - "$out/$i.eml" || same=0
done
[ $rc = 0 ] && [ $same = 1 ] && ok "retr all -o DIR: every file byte-identical to its Maildir file (CRLF)" \
  || nok "retr all -o DIR byte-identical" "rc $rc" "$(cat "$out.err")"
rm -f "$out.err"

"$mw" pop3 "${common[@]}" retr 3 > "$out/stdout3" 2>/dev/null; rc=$?
sed 's/$/\r/' "$src/3" | cmp -s - "$out/stdout3" && [ $rc = 0 ] && ok "retr 3 on stdout is byte-identical" \
  || nok "retr 3 on stdout" "rc $rc"

got=$("$mw" pop3 --host localhost --port "$MW_POP3S_PORT" --tls implicit --cafile "$MW_CA_FILE" --user "$user" --json list 2>&1); rc=$?
[ $rc = 0 ] && [[ $got == '[{"msg":1,"size":'* ]] && ok "POP3S --json list" || nok "POP3S --json list" "rc $rc: $got"

err=$(MAILWIRE_PASSWORD=wrong "$mw" pop3 "${common[@]}" --auth user stat 2>&1 >/dev/null); rc=$?
[ $rc = 77 ] && [[ $err == *"[AUTH] Authentication failed"* ]] && ok "wrong password exits 77 with the server's text" \
  || nok "wrong password" "rc $rc: $err"

err=$(MAILWIRE_PASSWORD=wrong "$mw" pop3 "${common[@]}" stat 2>&1 >/dev/null); rc=$?
[ $rc = 77 ] && [[ $err == *"Authentication failed"* ]] && ok "wrong password with SASL (auto) exits 77" \
  || nok "wrong password SASL" "rc $rc: $err"

"$mw" pop3 "${common[@]}" dele 2-3 2>/dev/null; rc=$?
got=$("$mw" pop3 "${common[@]}" list 2>&1)
files=$(ls "$md/new" "$md/cur" | grep -c '\.cli')
[ $rc = 0 ] && [ "$(echo "$got" | wc -l)" = 2 ] && [ "$files" = 2 ] && ok "dele 2-3 + QUIT removes exactly two messages" \
  || nok "dele 2-3" "rc $rc, files $files: $got"

err=$("$mw" pop3 --host localhost --port "$MW_POP3_PORT" --user "$user" --tls none stat 2>&1 >/dev/null); rc=$?
# Without TLS no login at all unless allowed, SCRAM included: the session
# and the mail in it would be plain text.
[ $rc = 77 ] && [[ $err == *"no login over an unencrypted connection"* ]] \
  && ok "--tls none without --allow-plaintext-password: no login (SCRAM included), exit 77" \
  || nok "--tls none refused" "rc $rc: $err"
err=$("$mw" pop3 --host localhost --port "$MW_POP3_PORT" --user "$user" --tls none \
      --allow-plaintext-password stat 2>&1 >/dev/null); rc=$?
[ $rc = 0 ] && ok "--tls none --allow-plaintext-password logs in (SCRAM, no password in clear)" \
  || nok "--tls none allowed" "rc $rc: $err"

err=$("$mw" pop3 --host localhost --port "$MW_POP3_PORT" --user "$user" stat 2>&1 >/dev/null); rc=$?
[ $rc = 77 ] && [[ $err == *certificate* ]] && ok "STLS to an untrusted CA exits 77" || nok "untrusted CA" "rc $rc: $err"

if [ "${MAILWIRE_ENGINE:-}" = loop ]; then
  # 11 sessions above (the refused ones too: each was put on a loop).
  got=$(grep -c '^pop3$' "$MAILWIRE_ENGINE_LOG" 2>/dev/null); got=${got:-0}
  [ "$got" -ge 11 ] && ok "MAILWIRE_ENGINE=loop: every session ran on a loop ($got noted)"     || nok "sessions on the loop" "$got noted in $MAILWIRE_ENGINE_LOG"
  rm -f "$MAILWIRE_ENGINE_LOG"
fi
echo "1..$n"
exit $fail
