#!/usr/bin/env bash
# Bench (not a test): MIME parse throughput of mailwire vs GMime 3 vs
# Python's email package on one generated corpus, in one run; then peak RSS
# of `mailwire mime parse --extract` on a message with a 1 GB attachment.
# Usage: bash tests/mime/bench/run.sh [WORKDIR]   (needs libgmime-3.0-dev)
set -euo pipefail
top=$(cd "$(dirname "$0")/../../.." && pwd)
work=${1:-$(mktemp -d /tmp/mw-mime-bench.XXXXXX)}
here="$top/tests/mime/bench"
build="$work/build"
[ -f "$build/build.ninja" ] || meson setup "$build" "$top" --buildtype=release -Dtests=false >/dev/null
ninja -C "$build" >/dev/null
cc -O2 -o "$work/mw_parse" "$here/mw_parse.c" -I"$top/include" "$build/libmailwire.a" \
   $(pkg-config --libs openssl libgsasl) -lpthread
cc -O2 -o "$work/gmime_parse" "$here/gmime_parse.c" $(pkg-config --cflags --libs gmime-3.0)
[ -d "$work/corpus" ] || python3 "$here/make_bench_corpus.py" "$work/corpus" 400
files=("$work"/corpus/*.eml)
echo "corpus: ${#files[@]} messages, $(du -sm "$work/corpus" | cut -f1) MB"
"$work/mw_parse" 5 "${files[@]}"
"$work/gmime_parse" 5 "${files[@]}"
python3 "$here/py_parse.py" 1 "${files[@]}"
# 1 GB attachment, decoded to a file while parsing.
big="$work/big.eml"
if [ ! -f "$big" ]; then
  { printf 'From: a@b\r\nSubject: big\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n'
    printf -- '--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=big.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    head -c 1073741824 /dev/urandom | base64 -w 76 | sed 's/$/\r/'
    printf -- '--B--\r\n'; } > "$big"
fi
rm -rf "$work/x" && mkdir "$work/x"
/usr/bin/time -f 'mailwire mime parse --extract, 1 GB attachment: %e s, peak RSS %M KB' \
  "$build/cli/mailwire" mime parse --extract "$work/x" "$big" >/dev/null
ls -l "$work/x"
