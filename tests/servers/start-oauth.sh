#!/usr/bin/env bash
# Start the OAuth 2.0 part of the test servers, beside what
# tests/servers/start.sh DIR started (it calls this script at its end):
#
#   tests/servers/start-oauth.sh DIR
#
#   provider  oidc-provider (tests/servers/oauth/provider.mjs, version pinned
#             in tests/servers/oauth/package-lock.json) on three ports:
#             HTTPS with the test CA's certificate, HTTPS with a self-signed
#             one, plain HTTP for Dovecot's introspection (RFC 7662)
#   Dovecot   a second instance (DIR/dvo) whose only passdb is oauth2: POP3
#             (STLS) and POP3S offering XOAUTH2 and OAUTHBEARER, the same
#             users and Maildirs as the first instance
#   Postfix   one more submission listener in the running master, SASL
#             through the second Dovecot (XOAUTH2, OAUTHBEARER after STARTTLS)
#
# The first instance's configuration is not changed (its tests see the same
# CAPA and EHLO).  oidc-provider is installed with `npm ci` into
# $MW_OAUTH_NODE_DIR, else $MW_BUILD_DIR/oauth-node, else DIR/oauth/node
# (reused while its package-lock.json is ours).
#
# Appends to DIR/env (README.md "DIR/env"): on success the MW_OAUTH_* ports;
# when the npm registry cannot be reached, MW_OAUTH_SKIP=<reason>; on any
# other failure MW_OAUTH_FAILED=<reason> (exit 1), so the OAuth tests fail
# loudly and the rest of the suite still runs.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
D=$(cd "$1" && pwd)
[ -f "$D/env" ] || { echo "start-oauth.sh: $D/env missing (run start.sh first)" >&2; exit 1; }
PATH=$PATH:/usr/sbin:/sbin
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)
O=$D/oauth
dvo=$D/dvo
mkdir -p "$O"
certs=$D/certs

record() { # record KEY VALUE: appended to DIR/env
  printf '%s=%q\n' "$1" "$2" >>"$D/env"
}
failed() {
  echo "start-oauth.sh: $*" >&2
  for log in "$O/provider.log" "$dvo/dovecot.log" "$dvo/start.log"; do
    [ -s "$log" ] && { echo "---- tail of $log" >&2; tail -n 20 "$log" >&2; }
  done
  record MW_OAUTH_FAILED "$*"
  exit 1
}

# ---- oidc-provider from the npm registry --------------------------------------
command -v node >/dev/null || failed "node not found (scripts/deps.sh build installs nodejs npm)"
command -v npm >/dev/null || failed "npm not found (scripts/deps.sh build installs nodejs npm)"
nd=${MW_OAUTH_NODE_DIR:-}
if [ -z "$nd" ]; then
  if [ -n "${MW_BUILD_DIR:-}" ] && [ -d "$MW_BUILD_DIR" ]; then nd=$MW_BUILD_DIR/oauth-node; else nd=$O/node; fi
fi
mkdir -p "$nd"
(
  flock -w 300 8 || exit 3
  if ! cmp -s "$nd/package-lock.json" "$here/oauth/package-lock.json" ||
    [ ! -f "$nd/node_modules/oidc-provider/package.json" ]; then
    rm -rf "$nd/node_modules"
    cp "$here/oauth/package.json" "$here/oauth/package-lock.json" "$nd/"
    # Reached only through npm's own client, pinned by the lock file.
    (cd "$nd" && npm ci --no-audit --no-fund --loglevel=error) >"$O/npm.log" 2>&1 || exit 4
  fi
) 8>>"$nd/.lock" || {
  rc=$?
  if [ $rc = 4 ] && ! (cd "$nd" && timeout 60 npm ping) >>"$O/npm.log" 2>&1; then
    why="npm registry unreachable: $(grep -m1 -i 'err' "$O/npm.log" | cut -c1-160)"
    echo "start-oauth.sh: SKIP: $why" >&2
    record MW_OAUTH_SKIP "$why"
    exit 0
  fi
  tail -n 20 "$O/npm.log" >&2 || true
  failed "npm ci of oidc-provider failed (rc $rc, log $O/npm.log)"
}
oidc=$nd/node_modules/oidc-provider/lib/index.js
[ -f "$oidc" ] || failed "oidc-provider not found in $nd"

# ---- ports (under start.sh's lock until everything listens) -----------------
lockfile=/tmp/mailwire-servers-ports.lock
exec 9>>"$lockfile"
flock -w 120 9 || failed "could not lock $lockfile within 120 s"
mapfile -t ports < <("$py" "$here/probe.py" ports 6)
[ ${#ports[@]} = 6 ] || failed "could not choose free ports"
https_port=${ports[0]}
badcert_port=${ports[1]}
http_port=${ports[2]}
pop3_port=${ports[3]}
pop3s_port=${ports[4]}
smtp_port=${ports[5]}
ttl=${MW_OAUTH_ACCESS_TTL:-3600}
short_ttl=${MW_OAUTH_SHORT_TTL:-5}
secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')

cat >"$O/provider.json" <<EOF
{"oidc": "file://$oidc", "https_port": $https_port, "badcert_port": $badcert_port,
 "http_port": $http_port, "cert": "$certs/good.pem", "key": "$certs/good.key",
 "badcert": "$certs/selfsigned.pem", "badkey": "$certs/selfsigned.key",
 "access_ttl": $ttl, "short_ttl": $short_ttl, "introspect_secret": "$secret"}
EOF
chmod 0600 "$O/provider.json"
setsid node "$here/oauth/provider.mjs" "$O/provider.json" </dev/null >"$O/provider.log" 2>&1 9>&- &
echo $! >"$O/provider.pid"

# ---- second Dovecot: passdb oauth2 only ---------------------------------------
mkdir -p "$dvo/run" "$dvo/state"
# Dovecot's auth process (user dovecot) reads the introspection secret.
cat >"$dvo/oauth2.conf" <<EOF
introspection_mode = post
introspection_url = http://dovecot:$secret@127.0.0.1:$http_port/token/introspection
force_introspection = yes
username_attribute = username
username_format = %Ln
active_attribute = active
active_value = true
timeout_msecs = 30000
EOF
chown root:dovecot "$dvo/oauth2.conf"
chmod 0640 "$dvo/oauth2.conf"
cat >"$dvo/dovecot.conf" <<EOF
# Generated by tests/servers/start-oauth.sh: POP3 that accepts only OAuth 2.0
# bearer tokens of the test provider (validated by introspection).
instance_name = mailwire-oauth-$(basename "$D")
base_dir = $dvo/run
state_dir = $dvo/state
log_path = $dvo/dovecot.log
protocols = pop3
listen = 127.0.0.1
shutdown_clients = yes
disable_plaintext_auth = yes
auth_mechanisms = xoauth2 oauthbearer
auth_username_format = %Ln
auth_verbose = yes
auth_failure_delay = 0
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $dvo/oauth2.conf
}
userdb {
  driver = passwd-file
  args = $D/dovecot/users
}
mail_location = maildir:~/Maildir
first_valid_uid = 65534
last_valid_uid = 65534
first_valid_gid = 65534
last_valid_gid = 65534
mail_fsync = never
ssl = yes
ssl_cert = <$certs/good.pem
ssl_key = <$certs/good.key
ssl_min_protocol = TLSv1.2
pop3_uidl_format = %08Xu%08Xv
pop3_fast_size_lookups = yes
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $pop3_port
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = $pop3s_port
    ssl = yes
  }
  service_count = 0
  process_min_avail = 1
  client_limit = 1000
}
service pop3 {
  service_count = 0
  client_limit = 1
  process_limit = 256
}
# No per-IP authentication penalty (a refused token must not slow every
# later login from 127.0.0.1; see /work/shared/reference notes in README.md).
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
}
protocol pop3 {
  mail_max_userip_connections = 1000
}
EOF
dovecot -c "$dvo/dovecot.conf" </dev/null >"$dvo/start.log" 2>&1 9>&- ||
  failed "second dovecot did not start: $(cat "$dvo/start.log")"

# ---- Postfix: one more submission listener, SASL via the second Dovecot -------
pfetc=$D/postfix/etc
cat >>"$pfetc/master.cf" <<EOF
127.0.0.1:$smtp_port inet n - n - - smtpd
  -o syslog_name=postfix/oauth
  -o smtpd_sasl_path=$dvo/run/auth-postfix
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=reject_unlisted_recipient,permit_sasl_authenticated,reject
EOF
pfpid=$(awk '{print $1; exit}' "$D/postfix/queue/pid/master.pid" 2>/dev/null) || pfpid=
[[ $pfpid =~ ^[0-9]+$ ]] || failed "no Postfix master pid in $D/postfix/queue/pid"
kill -HUP "$pfpid" || failed "could not signal the Postfix master ($pfpid)"

# ---- wait until everything answers ---------------------------------------------
ok=0
for i in $(seq 1 600); do
  if grep -q '^provider up' "$O/provider.log" 2>/dev/null; then ok=1; break; fi
  kill -0 "$(cat "$O/provider.pid")" 2>/dev/null || break
  sleep 0.1
done
[ $ok = 1 ] || failed "the OAuth provider did not come up"
flock -u 9
exec 9>&-
"$py" "$here/probe.py" wait 30 "$certs/ca.pem" \
  "dovecot-oauth-pop3:$pop3_port:pop3" "dovecot-oauth-pop3s:$pop3s_port:pop3s" \
  "postfix-oauth:$smtp_port:smtp" || failed "not every OAuth server answered"

record MW_OAUTH_ISSUER "https://127.0.0.1:$https_port"
record MW_OAUTH_PORT "$https_port"
record MW_OAUTH_BADCERT_PORT "$badcert_port"
record MW_OAUTH_CLIENT_ID mailwire
record MW_OAUTH_ACCESS_TTL "$ttl"
record MW_OAUTH_SHORT_TTL "$short_ttl"
record MW_OAUTH_POP3_PORT "$pop3_port"
record MW_OAUTH_POP3S_PORT "$pop3s_port"
record MW_OAUTH_SMTP_PORT "$smtp_port"
record MW_OAUTH_APPROVE "$here/oauth/approve.py"
echo "start-oauth.sh: provider https://127.0.0.1:$https_port, POP3 $pop3_port, POP3S $pop3s_port, submission $smtp_port"
