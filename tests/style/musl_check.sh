#!/usr/bin/env bash
# src/util's system helpers build and work on a libc other than glibc:
# errno_text.c, random.c, secret.c, proc.c, clock.c and err.c compiled with musl-gcc (C11,
# -Werror), and a small program linked against musl checks that the errno
# text (musl's strerror_r is the POSIX one) and random bytes work.  TAP.
# Skips when musl-gcc is not installed (Debian: musl-tools).
top=$(cd "$(dirname "$0")/../.." && pwd)
musl=${MUSL_GCC:-musl-gcc}
files=(errno_text random secret proc clock err)
echo "1..$(( ${#files[@]} + 1 ))"
if ! command -v "$musl" >/dev/null; then
  for i in $(seq 1 $(( ${#files[@]} + 1 ))); do echo "ok $i - musl # SKIP $musl not installed"; done
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I"$top/include" -I"$top/src")
n=0 rc=0
for f in "${files[@]}"; do
  n=$((n + 1))
  if out=$("$musl" "${flags[@]}" -c "$top/src/util/$f.c" -o "$tmp/$f.o" 2>&1); then
    echo "ok $n - src/util/$f.c builds against musl"
  else
    echo "not ok $n - src/util/$f.c does not build against musl"; sed 's/^/# /' <<<"$out"; rc=1
  fi
done
cat >"$tmp/t.c" <<'C'
#include "util/err.h"
#include "util/random.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    char full[MW_ERRNO_TEXT_SIZE], cut[6], other[MW_ERRNO_TEXT_SIZE];
    unsigned char r[16] = {0}, zero[16] = {0};
    mwi_errno_text(ENOENT, full, sizeof full);
    mwi_errno_text(ENOENT, cut, sizeof cut);
    mwi_errno_text(EACCES, other, sizeof other);
    int ok = strlen(full) > 5 && strcmp(full, "error 2") && strcmp(full, other) &&
             strlen(cut) == 5 && !strncmp(full, cut, 5) &&
             mwi_random_bytes(r, sizeof r, NULL) == 0 && memcmp(r, zero, sizeof r);
    printf("# ENOENT: \"%s\", cut: \"%s\", EACCES: \"%s\"\n", full, cut, other);
    return !ok;
}
C
n=$((n + 1))
if out=$("$musl" "${flags[@]}" "$tmp/t.c" "$tmp"/*.o -o "$tmp/t" 2>&1) && out=$("$tmp/t" 2>&1); then
  echo "ok $n - errno text and random bytes work on musl"; echo "$out"
else
  echo "not ok $n - errno text or random bytes wrong on musl"; sed 's/^/# /' <<<"$out"; rc=1
fi
exit $rc
