#!/usr/bin/env bash
# MIME bench (issue 5 "Speed and memory").  In one run:
#  1. a generated corpus (make_corpus.py: COUNT messages, about MB megabytes)
#     parsed with every leaf body decoded to a null sink by mailwire
#     (mw_parse.c, public API), GMime 3 (gmime_parse.c) and Python's email
#     package (py_parse.py); each loads the corpus into memory first and
#     times only the parse; median MB/s of RUNS runs, ratio to GMime.  The
#     CLI figure is `mailwire mime parse --json FILE` once per message
#     (process start and JSON output included).
#  2. a message with a BIG_MB (1024) MB base64 attachment, written to a
#     temp file by a stream (never held in memory), decoded to a file by
#     `mailwire mime parse --extract DIR` and by `gmime_parse --extract`:
#     peak RSS (GNU time %M) and MB/s of decoded output.
#
#   bash bench/mime/bench.sh [BUILD_DIR]
# Env: RUNS (5), COUNT (400), MB (80), BIG_MB (1024), KEEP=1 keeps WORK.
# Not a test.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/bench/mime
build=${1:-/tmp/mailwire-build-bench}
RUNS=${RUNS:-5}
COUNT=${COUNT:-400}
MB=${MB:-80}
BIG_MB=${BIG_MB:-1024}
bash "$top/scripts/deps.sh" bench
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$top" --buildtype=release -Dtests=false >/dev/null
fi
ninja -C "$build" >/dev/null
mw=$build/cli/mailwire
work=$(mktemp -d /tmp/mw-bench-mime.XXXXXX)
cleanup() { [ "${KEEP:-0}" = 1 ] && echo "kept $work" || rm -rf "$work"; }
trap cleanup EXIT
cc -O2 -o "$work/mw_parse" "$here/mw_parse.c" -I"$top/include" "$build/libmailwire.a" \
  $(pkg-config --libs openssl libgsasl) -lpthread
cc -O2 -o "$work/gmime_parse" "$here/gmime_parse.c" $(pkg-config --cflags --libs gmime-3.0)

python3 "$here/make_corpus.py" "$work/corpus" "$COUNT" "$MB" >"$work/corpus.txt"
files=("$work"/corpus/*.eml)
echo "MIME bench: corpus of $(cat "$work/corpus.txt") (make_corpus.py), median of $RUNS runs"
echo "gcc $(gcc -dumpfullversion), GMime $(pkg-config --modversion gmime-3.0), $(python3 -V), $(nproc) CPUs"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# NAME CMD...: each run prints "SECONDS INPUT DECODED LEAVES"; prints the
# median MB/s (input bytes / parse seconds) and remembers the last line.
rate() {
  local name=$1; shift
  local r=() c=() line
  for _ in $(seq "$RUNS"); do
    line=$("$@" 2>"$work/err") || { echo "$name failed:" >&2; cat "$work/err" >&2; return 1; }
    r+=("$(echo "$line" | awk '{printf "%.3f", $2 / $1 / 1e6}')")
    c+=("$(echo "$line" | awk '{printf "%.3f", $5 ? $2 / $5 / 1e6 : 0}')")
  done
  echo "$line" >"$work/last.$name"
  printf '%s\n' "${c[@]}" | median >"$work/cpu.$name"
  printf '%s\n' "${r[@]}" | median
}
run_cli() {
  local s e n=0 f
  s=$(date +%s.%N)
  for f in "${files[@]}"; do "$mw" mime parse --json "$f" >/dev/null; done
  e=$(date +%s.%N)
  n=$(cat "${files[@]}" | wc -c)
  echo "$(echo "$e - $s" | bc -l) $n 0 0 0"
}

g=$(rate gmime "$work/gmime_parse" "${files[@]}")
m=$(rate mailwire "$work/mw_parse" "${files[@]}")
c=$(rate cli run_cli)
p=$(rate python python3 "$here/py_parse.py" "${files[@]}")
gc=$(cat "$work/cpu.gmime")
# Wall-clock MB/s and ratio, then MB per CPU-second (parse only) and its
# ratio: on a loaded machine the CPU figure is the steadier one.
row() {
  local c=${4:-0}
  printf '%-40s %7.1f MB/s %5.2fx' "$1" "$2" "$(echo "$2 / $g" | bc -l)"
  if [ "$c" != 0 ]; then printf ' | CPU %7.1f MB/s %5.2fx' "$c" "$(echo "$c / $gc" | bc -l)"; fi
  printf '  %s\n' "$3"
}
dec() { awk '{printf "decoded %.1f MB in %d leaves", $3 / 1e6, $4}' "$work/last.$1"; }
row "mailwire (mw_parse.c, library)" "$m" "$(dec mailwire)" "$(cat "$work/cpu.mailwire")"
row "GMime 3 (gmime_parse.c)" "$g" "$(dec gmime)" "$gc"
row "Python email (policy.default)" "$p" "$(dec python)" "$(cat "$work/cpu.python")"
row "mailwire mime parse --json (per file)" "$c" "process per message"

# 2. BIG_MB MB attachment, streamed into a temp file.
big=$work/big.eml
{ printf 'From: a@example.org\r\nTo: b@example.net\r\nSubject: big\r\nMIME-Version: 1.0\r\n'
  printf 'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nsee attachment\r\n'
  printf -- '--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=big.bin\r\n'
  printf 'Content-Transfer-Encoding: base64\r\n\r\n'
  head -c $((BIG_MB * 1024 * 1024)) /dev/zero | openssl enc -aes-128-ctr -nosalt \
    -pass pass:mailwire-bench -pbkdf2 2>/dev/null | base64 -w 76 | sed 's/$/\r/'
  printf -- '--B--\r\n'; } >"$big"
size=$(stat -c %s "$big")
echo "big message: $((size / 1000000)) MB ($BIG_MB MiB attachment, base64)"
mkdir "$work/x"
/usr/bin/time -f '%e %M' -o "$work/t.mw" "$mw" mime parse --extract "$work/x" "$big" >/dev/null
out=$(find "$work/x" -type f -name '*big.bin*' | head -n1)
osz=$(stat -c %s "$out")
read -r mt mr <"$work/t.mw"
rm -f "$out"
/usr/bin/time -f '%e %M' -o "$work/t.gm" "$work/gmime_parse" --extract "$work/gm.bin" "$big" >/dev/null
gsz=$(stat -c %s "$work/gm.bin")
read -r gt gr <"$work/t.gm"
rm -f "$work/gm.bin" "$big"
[ "$osz" = $((BIG_MB * 1024 * 1024)) ] || echo "WARNING: mailwire extracted $osz bytes"
[ "$gsz" = $((BIG_MB * 1024 * 1024)) ] || echo "WARNING: GMime extracted $gsz bytes"
printf '%-40s %8.1f MB/s  peak RSS %6.1f MB (target <= 16)\n' "mailwire mime parse --extract" \
  "$(echo "$size / $mt / 1000000" | bc -l)" "$(echo "$mr / 1024" | bc -l)"
printf '%-40s %8.1f MB/s  peak RSS %6.1f MB\n' "GMime 3 (file stream, --extract)" \
  "$(echo "$size / $gt / 1000000" | bc -l)" "$(echo "$gr / 1024" | bc -l)"
