#!/usr/bin/env bash
# Every public header (include/mailwire/*.h) compiles alone, as the only
# include of a translation unit, as C99, C11 and C++11 with -Wall -Wextra
# -pedantic -Werror.  One TAP case per header and standard.
# Compilers: $CC (default cc) and $CXX (default c++).
top=$(cd "$(dirname "$0")/../.." && pwd)
cc=${CC:-cc} cxx=${CXX:-c++}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
headers=("$top"/include/mailwire/*.h)
stds=(c99 c11 c++11)
echo "1..$(( ${#headers[@]} * ${#stds[@]} ))"
n=0 rc=0
for h in "${headers[@]}"; do
  name=mailwire/$(basename "$h")
  for std in "${stds[@]}"; do
    n=$((n + 1))
    case $std in
      c++*)
        comp=$cxx src=$tmp/tu.cpp
        if ! command -v "$cxx" >/dev/null; then
          echo "ok $n - $name as $std # SKIP no C++ compiler ($cxx)"; continue
        fi ;;
      *) comp=$cc; src=$tmp/tu.c ;;
    esac
    # A declaration after the include, so an unterminated construct in the
    # header (a missing brace, an open extern "C") is an error here.
    printf '#include <%s>\ntypedef int mw_header_check_ok;\n' "$name" >"$src"
    if out=$("$comp" -std="$std" -Wall -Wextra -pedantic -Werror -fsyntax-only \
               -I"$top/include" "$src" 2>&1); then
      echo "ok $n - $name as $std"
    else
      echo "not ok $n - $name as $std"
      sed 's/^/# /' <<<"$out" | head -20
      rc=1
    fi
  done
done
exit $rc
