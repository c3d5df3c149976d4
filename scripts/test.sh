#!/usr/bin/env bash
# Runs the whole test suite: unit, scripted-server, real-server (Dovecot,
# Postfix, smtp-sink on 127.0.0.1) and fuzz-corpus replay, built with
# -Werror and AddressSanitizer + UndefinedBehaviorSanitizer.
# Ends with one line: N passed, N failed, N skipped.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/deps.sh build

build=${MW_BUILD_DIR:-build-test}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false \
        -Dwerror=true >"$build.setup.log" 2>&1 || { cat "$build.setup.log"; exit 1; }
fi
ninja -C "$build" >"$build.ninja.log" 2>&1 || { tail -60 "$build.ninja.log"; exit 1; }
echo "build: ok ($(grep -c '' "$build.ninja.log") steps logged in $build.ninja.log)"
# The demo and the benches build -O3 without sanitizers, where gcc warns of
# things the debug build does not see; -Werror there too.
rel=${build}-release
if [ ! -f "$rel/build.ninja" ]; then
  meson setup "$rel" --buildtype=release -Dtests=false >"$rel.setup.log" 2>&1 || { cat "$rel.setup.log"; exit 1; }
fi
ninja -C "$rel" >"$rel.ninja.log" 2>&1 || { tail -40 "$rel.ninja.log"; exit 1; }
echo "release build (-O3 -Werror, library and command): ok"
# Fuzzing proper (tests/fuzz/run_fuzzers.py): the libFuzzer binaries of a
# clang build with ASan+UBSan, each parser fuzzed for a few seconds.
fz=${build}-fuzz
if [ "${MW_NO_FUZZ:-0}" != 1 ] && command -v clang >/dev/null; then
  if [ ! -f "$fz/build.ninja" ]; then
    CC=clang meson setup "$fz" --buildtype=debug -Dfuzzing=true -Db_sanitize=address,undefined \
          -Db_lundef=false -Dwerror=true >"$fz.setup.log" 2>&1 || { cat "$fz.setup.log"; exit 1; }
  fi
  targets=$(ninja -C "$fz" -t targets all | sed -n 's|^\(tests/fuzz/fuzz-[A-Za-z0-9_]*\): .*|\1|p')
  # shellcheck disable=SC2086
  ninja -C "$fz" $targets >"$fz.ninja.log" 2>&1 || { tail -40 "$fz.ninja.log"; exit 1; }
  export MW_FUZZ_BUILD_DIR="$top/$fz"
  echo "fuzz build (clang, libFuzzer, ASan+UBSan): ok"
fi

# ThreadSanitizer: the library built with -fsanitize=thread and the threads
# test (tests/unit/thread/) linked to it; unit-threads-tsan runs it.
ts=${build}-tsan
if [ ! -f "$ts/build.ninja" ]; then
  meson setup "$ts" --buildtype=debug -Db_sanitize=thread -Dtests=false >"$ts.setup.log" 2>&1 \
    || { cat "$ts.setup.log"; exit 1; }
fi
ninja -C "$ts" libmailwire.a >"$ts.ninja.log" 2>&1 || { tail -40 "$ts.ninja.log"; exit 1; }
# shellcheck disable=SC2046
cc -std=c11 -Wall -Wextra -Werror -g -O1 -fsanitize=thread -Iinclude tests/unit/thread/test_threads.c \
   "$ts/libmailwire.a" $(pkg-config --libs openssl libgsasl) -pthread -o "$ts/test_threads_tsan" \
   >>"$ts.ninja.log" 2>&1 || { tail -40 "$ts.ninja.log"; exit 1; }
export MW_TSAN_BUILD_DIR="$top/$ts"
echo "ThreadSanitizer build (library + threads test): ok"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export MW_BUILD_DIR="$top/$build"

# The real servers are started once for the whole run and always stopped.
srvdir=""
if [ -x tests/servers/start.sh ] && [ "${MW_NO_SERVERS:-0}" != 1 ]; then
  srvdir=$(mktemp -d /tmp/mailwire-servers.XXXXXX)
  trap 'bash tests/servers/stop.sh "$srvdir" >/dev/null 2>&1 || true; rm -rf "$srvdir"' EXIT
  trap 'exit 130' INT TERM
  if bash tests/servers/start.sh "$srvdir" >"$srvdir.start.log" 2>&1; then
    set -a; . "$srvdir/env"; set +a
    echo "servers: started in $srvdir"
  else
    echo "servers: FAILED to start; real-server tests will fail:" >&2
    tail -30 "$srvdir.start.log" >&2
    export MW_SERVERS_FAILED=1
  fi
fi

set +e
meson test -C "$build" --num-processes 2 --print-errorlogs ${MW_TEST_ARGS:-} >"$build.test.log" 2>&1
rc=$?
set -e
grep -E '^ *[0-9]+/[0-9]+ ' "$build.test.log" | sed 's/^ *//' || true
if [ $rc -ne 0 ]; then
  # The first failures in detail (the whole log is in $build.test.log); a
  # closed pipe must not end the script before the summary line.
  { grep -A40 -E 'FAIL|TIMEOUT' "$build.test.log" | head -150; } || true
fi
python3 tests/summary.py "$build/meson-logs/testlog.json"
