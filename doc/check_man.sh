#!/bin/sh
# Checks that each man page given renders without a single groff warning
# (groff -man -ww -z: all warnings, no output) and prints TAP.  Without
# groff the checks are TAP SKIPs.
# usage: check_man.sh PAGE...
echo "1..$#"
n=0
for page in "$@"; do
    n=$((n + 1))
    name=$(basename "$page")
    if ! command -v groff >/dev/null 2>&1; then
        echo "ok $n - $name renders without warnings # SKIP groff not installed"
        continue
    fi
    msgs=$(groff -t -man -ww -z -K utf8 "$page" 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ] && [ -z "$msgs" ]; then
        echo "ok $n - $name renders without warnings"
    else
        printf '%s\n' "$msgs" | sed 's/^/# /'
        echo "not ok $n - $name renders without warnings (groff exit $rc)"
    fi
done
