#!/usr/bin/env bash
# scripts/checksrc must fail on each planted violation and pass clean code.
# Works in a temporary directory; nothing under src/ is touched.  TAP.
top=$(cd "$(dirname "$0")/../.." && pwd)
checksrc="$top/scripts/checksrc"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0 rc=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); echo "not ok $n - $1"; rc=1; }

# expect_fail NAME WANT CODE: checksrc fails on a file holding CODE and
# its output contains WANT.
expect_fail() {
  local name=$1 want=$2 code=$3
  local d="$tmp/$name"
  mkdir -p "$d"
  printf '%s\n' "$code" >"$d/planted.c"
  local out
  if out=$(cd "$tmp" && "$checksrc" "$name" 2>&1); then
    notok "$name: checksrc passed a planted violation"
  elif ! grep -qF -- "$want" <<<"$out"; then
    notok "$name: output lacks '$want'"; sed 's/^/#   /' <<<"$out"
  else
    ok "$name: fails, naming '$want'"
  fi
}
expect_pass() {
  local name=$1 code=$2
  local d="$tmp/$name"
  mkdir -p "$d"
  printf '%s\n' "$code" >"$d/clean.c"
  local out
  if out=$(cd "$tmp" && "$checksrc" "$name" 2>&1); then
    ok "$name: passes"
  else
    notok "$name: checksrc failed clean code"; sed 's/^/#   /' <<<"$out"
  fi
}

echo "1..28"
for call in strerror sprintf vsprintf strcpy strcat sscanf atoi atol rand srand localtime gmtime \
            ctime asctime strtok gets tmpnam system; do
  expect_fail "call-$call" "$call() is banned" "int f(int x) { return (int)$call (x); }"
done
expect_fail reason-and-replacement "use mwi_errno_text() or MW_ERRNO_TEXT()" \
  'const char *f(int e) { return strerror(e); }'
expect_fail line-number "planted.c:3: sprintf()" $'#include <stdio.h>\n\nvoid f(char *b) { sprintf(b, "x"); }'
expect_fail design-doc "cites DESIGN.md" '/* as DESIGN.md says */'
expect_fail seed-doc "cites seed-semantics" '/* Tcllib (seed-semantics §2) */'
expect_fail issue-number "cites an issue" '// fixed for issue #12'
expect_fail url "cites https://example.org/x" '/* see https://example.org/x */'
expect_fail allow-without-reason "gives no reason" \
  $'/* checksrc: allow rand */\nint f(void) { return rand(); }'
expect_pass clean $'/* RFC 5322 §3.6.4; see https://www.rfc-editor.org/rfc/rfc5322 and src/util/err.h */
#include <time.h>
struct s { int (*rand)(void); };
int mw_strerror_like(int e);
int f(struct s *p, char *b, unsigned n) {
  struct tm tm; time_t t = 0;
  gmtime_r(&t, &tm); localtime_r(&t, &tm);
  snprintf(b, n, "system(x) strcpy(y) in a string");
  return p->rand() + mw_strerror_like(1); /* a system call, not system() */
}'
if out=$(cd "$tmp" && "$checksrc" no-such-dir 2>&1); then
  notok "a missing path: checksrc passed"
elif ! grep -qF "no such file or directory" <<<"$out"; then
  notok "a missing path: output lacks the reason"
else
  ok "a missing path: fails, naming it"
fi
expect_pass allowed $'/* checksrc: allow rand: a planted example with a reason */\nint f(void) { return rand(); }'
exit $rc
