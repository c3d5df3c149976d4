#!/usr/bin/env bash
# Install what mailwire needs on Debian 12, as root.  Idempotent: packages that
# are already present are not touched, and no service is started.
#   scripts/deps.sh build   compiler, libraries, test servers (demo and tests)
#   scripts/deps.sh bench   also the peer tools the benchmarks compare against
set -euo pipefail

want=(meson ninja-build pkg-config gcc clang libclang-rt-14-dev
      libssl-dev libgsasl-dev libcmocka-dev openssl python3 clang-format git
      dovecot-core dovecot-pop3d postfix procps iproute2)
want+=(musl-tools) # tests/style/musl_check.sh: src/util on a non-glibc libc
want+=(swaks) # an SMTP client we did not write, for `send -bs` (interop-sendmail)
want+=(tcl8.6-dev tcllib tcl-tls) # bindings/tcl: the Tcl binding, Tcllib's mime and its reference packages
want+=(nodejs libcurl4-openssl-dev libjson-c-dev) # OAuth: test provider, HTTP, JSON
# npm for the OAuth test provider (tests/servers/start-oauth.sh); a nodejs
# that ships its own npm (not Debian's) conflicts with the npm package.
command -v npm >/dev/null || want+=(npm)
if [ "${1:-build}" = bench ]; then
  want+=(mpop msmtp fetchmail curl libgmime-3.0-dev valgrind hyperfine time bc)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi

echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Postfix asks debconf questions; Dovecot and Postfix would start system
# services on install.  Neither is wanted: our tests run private instances.
echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
echo 'postfix postfix/mailname string localhost' | debconf-set-selections
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; made_policy=1
fi
trap '[ $made_policy = 1 ] && rm -f "$policy"' EXIT
apt_opts=(-o DPkg::Lock::Timeout=300 -y -q --no-install-recommends)
apt-get "${apt_opts[@]:0:2}" update -qq
apt-get "${apt_opts[@]}" install "${missing[@]}" >/dev/null
