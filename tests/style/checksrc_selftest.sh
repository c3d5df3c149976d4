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

echo "1..36"
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

# The length rules.  A function body of N lines ("{" to "}" at column 0).
long_fn() {
  local n=$1 i body=""
  for ((i = 0; i < n - 2; i++)); do body+=$'    x++;\n'; done
  printf 'int f(int x)\n{\n%s}\n' "$body"
}
expect_fail long-function "function of 81 lines, over 80" "$(long_fn 81)"
expect_pass function-of-80 "$(long_fn 80)"
expect_fail long-mark-without-reason "function of 90 lines" $'/* long: */\n'"$(long_fn 90)"
expect_pass long-mark $'/* A planted table.  long: one flat switch, a case per option. */\n'"$(long_fn 90)"
expect_fail long-file "file has 801 lines, over 800" "$(for ((i = 0; i < 801; i++)); do echo "int v$i;"; done)"
expect_pass file-of-800 "$(for ((i = 0; i < 800; i++)); do echo "int v$i;"; done)"
# --size-only: the length rules alone (cli/ and bindings/ may call strerror).
mkdir -p "$tmp/size-only"
{ echo 'const char *g(int e) { return strerror(e); }'; long_fn 81; } >"$tmp/size-only/planted.c"
if out=$(cd "$tmp" && "$checksrc" --size-only size-only 2>&1); then
  notok "--size-only: passed a planted long function"
elif grep -qF "strerror() is banned" <<<"$out" || ! grep -qF "function of 81 lines" <<<"$out"; then
  notok "--size-only: checked more, or less, than the length rules"; sed 's/^/#   /' <<<"$out"
else
  ok "--size-only: the length rules only"
fi
# SIZE_ALLOW: a listed file's length violations are TODO, not a failure.
allowed=$(python3 - "$checksrc" <<'PY'
import importlib.machinery, importlib.util, sys
loader = importlib.machinery.SourceFileLoader("checksrc", sys.argv[1])
spec = importlib.util.spec_from_loader("checksrc", loader)
m = importlib.util.module_from_spec(spec)
loader.exec_module(m)
print(next(iter(m.SIZE_ALLOW), ""))
PY
)
if [ -z "$allowed" ]; then
  ok "SIZE_ALLOW: # SKIP the list is empty"
else
  mkdir -p "$tmp/$(dirname "$allowed")"
  long_fn 81 >"$tmp/$allowed"
  if ! out=$(cd "$tmp" && "$checksrc" --size-only "$allowed" 2>&1); then
    notok "SIZE_ALLOW: a listed file failed the run"; sed 's/^/#   /' <<<"$out"
  elif ! grep -qF "# TODO SIZE_ALLOW" <<<"$out" || ! grep -qF "function of 81 lines" <<<"$out"; then
    notok "SIZE_ALLOW: a listed file's violation not reported"; sed 's/^/#   /' <<<"$out"
  else
    ok "SIZE_ALLOW: $allowed reported as TODO, not failed"
  fi
fi
exit $rc
