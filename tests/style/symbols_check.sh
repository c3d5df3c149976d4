#!/usr/bin/env bash
# The library's symbols (docs/CONVENTIONS.md, naming): every global the
# static library defines is public (mw_, declared in include/mailwire/) or
# internal (mwi_), and the shared library exports the public ones only.
# usage: symbols_check.sh LIBMAILWIRE.a LIBMAILWIRE.so INCLUDE_DIR.  TAP.
set -u
a=$1 so=$2 inc=$3
n=0 fail=0
ok()  { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); fail=1; echo "not ok $n - $1"; printf '%s\n' "$2" | head -20 | sed 's/^/# /'; }
public=$(grep -rhoE '\bmw_[a-z0-9_]+\b' "$inc"/mailwire/*.h | sort -u)
# Sanitizer and compiler artefacts (__asan, __odr_asan.x, __ubsan...) start with "__".
globals=$(nm -g --defined-only "$a" | awk '$2 ~ /^[TDBRCVW]$/ {print $3}' | grep -v '^__' | sort -u)
[ -n "$globals" ] || { echo "1..1"; echo "not ok 1 - nm found no symbols in $a"; exit 1; }
bad=$(printf '%s\n' "$globals" | grep -vE '^(mw_|mwi_)')
[ -z "$bad" ] && ok "every global of $(basename "$a") has the mw_ or mwi_ prefix" \
  || nok "globals without mw_/mwi_ prefix" "$bad"
undeclared=$(comm -23 <(printf '%s\n' "$globals" | grep '^mw_') <(printf '%s\n' "$public"))
[ -z "$undeclared" ] && ok "every mw_ global is declared in a public header (internal ones are mwi_)" \
  || nok "mw_ globals not in a public header (internal: rename to mwi_)" "$undeclared"
exported=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRCVW]$/ {print $3}' | grep -v '^__' | sort -u)
leaked=$(printf '%s\n' "$exported" | grep -vE '^mw_' | grep -vE '^(_init|_fini|_edata|_end|__bss_start)$')
[ -z "$leaked" ] && ok "$(basename "$so") exports only mw_ symbols ($(printf '%s\n' "$exported" | grep -c '^mw_'))" \
  || nok "$(basename "$so") exports non-public symbols" "$leaked"
echo "1..$n"
exit $fail
