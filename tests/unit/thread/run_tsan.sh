#!/usr/bin/env bash
# Runs tests/unit/thread/test_threads.c as built with -fsanitize=thread by
# scripts/test.sh (the library too): any data race report fails the test.
bin=${MW_TSAN_BUILD_DIR:-}/test_threads_tsan
if [ -z "${MW_TSAN_BUILD_DIR:-}" ] || [ ! -x "$bin" ]; then
  echo "1..1"
  echo "ok 1 - threads under ThreadSanitizer # SKIP no TSan build (scripts/test.sh makes one)"
  exit 0
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1" "$bin" 2>"$log"
rc=$?
if [ $rc -ne 0 ]; then
  echo "# exit $rc"
  head -60 "$log" | sed 's/^/# /'
fi
exit $rc
