#!/usr/bin/env bash
# Every C file the repository tracks is formatted with its .clang-format.
# Prints TAP: one case per file, so a failure names the file.
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
if ! command -v clang-format >/dev/null; then
  echo "1..1"; echo "ok 1 - clang-format # SKIP clang-format not installed"; exit 0
fi
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "1..1"; echo "ok 1 - format # SKIP not a git checkout"; exit 0
fi
mapfile -t files < <(git ls-files '*.c' '*.h')
echo "1..${#files[@]}"
n=0 rc=0
for f in "${files[@]}"; do
  n=$((n + 1))
  if [ ! -f "$f" ]; then echo "ok $n - $f # SKIP deleted in the work tree"; continue; fi
  if clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "ok $n - $f"
  else
    echo "not ok $n - $f is not formatted (run: clang-format -i $f)"
    rc=1
  fi
done
exit $rc
