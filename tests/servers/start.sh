#!/usr/bin/env bash
# Start private, throw-away mail servers for mailwire's tests:
#
#   tests/servers/start.sh DIR      (as root; DIR exists or is created)
#
#   Dovecot  POP3 (plain, STLS offered) and POP3S, SASL for Postfix
#   Postfix  submission (STARTTLS, AUTH only after TLS, AUTH required to
#            send), SMTPS (TLS from the start), and a no-auth port that takes
#            mail for test.domain from anyone (STARTTLS optional)
#   smtp-sink a fast SMTP sink that discards everything
#
# All listen on 127.0.0.1 only, on free ports chosen now.  Everything (config,
# certificates, queue, Maildirs, logs, pids) lives inside DIR; nothing of
# /etc/dovecot or /etc/postfix is read or changed, no systemd.  Mail cannot
# leave the machine: Postfix has no smtp/lmtp/relay client service and every
# transport other than virtual(8) for test.domain is error(8).
#
# On success DIR/env holds KEY=value lines (see write_env below) and the exit
# status is 0.  If any server does not come up, everything started is
# stopped again, the logs' tails go to stderr and the exit status is 1.
# tests/servers/stop.sh DIR stops everything.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "start.sh: must run as root (Dovecot and Postfix drop privileges themselves)" >&2
  exit 1
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
D=$(cd "$1" && pwd)
if [ -e "$D/env" ]; then
  echo "start.sh: $D/env exists: servers already started there (stop.sh $D first)" >&2
  exit 1
fi
for prog in dovecot postconf smtp-sink openssl python3 flock; do
  command -v "$prog" >/dev/null || PATH=$PATH:/usr/sbin:/sbin
  command -v "$prog" >/dev/null || {
    echo "start.sh: $prog not found (run scripts/deps.sh build)" >&2
    exit 1
  }
done

# The system Python, if there is one: a version manager's shim (pyenv) can
# cost seconds per start on a loaded machine; probe.py needs only the stdlib.
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3)

# Dovecot creates UNIX sockets under its base_dir (longest name ~25 bytes),
# and sun_path holds 107: keep the directory short.
if [ ${#D} -gt 60 ]; then
  echo "start.sh: DIR path is too long for Dovecot's UNIX sockets (${#D} > 60 bytes): $D" >&2
  exit 1
fi

# Dovecot's login (dovenull), auth (dovecot) and mail (nobody) processes and
# Postfix's daemons (postfix) must reach files in DIR; mktemp -d makes 0700.
chmod 0755 "$D"
mail_uid=65534 # nobody: owns the Maildirs, Dovecot mail processes run as it
mail_gid=65534 # nogroup
getent passwd "$mail_uid" >/dev/null || { echo "start.sh: no user with uid $mail_uid" >&2; exit 1; }
for u in dovecot dovenull postfix; do
  getent passwd "$u" >/dev/null || { echo "start.sh: system user $u missing (install dovecot-core, postfix)" >&2; exit 1; }
done
getent group postdrop >/dev/null || { echo "start.sh: group postdrop missing (install postfix)" >&2; exit 1; }

users=()
for p in p s f; do for i in $(seq 1 20); do users+=("$p$i"); done; done
for i in $(seq 1 5); do users+=("d$i"); done
# Families of ten for later areas: h (hardening), q (sendmail/queue),
# o (OAuth), t (Tcl binding), a (API/engine); see README.md "Users".
for p in h q o t a g j k n r v i l m w; do for i in $(seq 1 10); do users+=("$p$i"); done; done
# e1..e200: the event-loop engine's many concurrent sessions.
for i in $(seq 1 200); do users+=("e$i"); done
# b1..bN for benches only (bench/accounts): MW_SRV_BULK_USERS=N.
for i in $(seq 1 "${MW_SRV_BULK_USERS:-0}"); do users+=("b$i"); done
# Concurrent POP3 sessions Dovecot serves (a process each); benches raise it.
pop3_limit=${MW_SRV_POP3_LIMIT:-256}
domain=test.domain

started_ok=0
fail() {
  echo "start.sh: $*" >&2
  exit 1
}
on_exit() {
  local rc=$?
  if [ $started_ok != 1 ]; then
    for log in "$D/dovecot/dovecot.log" "$D/postfix/maillog" "$D/smtp-sink.log" "$D/dovecot/start.log" "$D/postfix/start.log"; do
      if [ -s "$log" ]; then
        echo "---- tail of $log" >&2
        tail -n 25 "$log" >&2
      fi
    done
    bash "$here/stop.sh" "$D" >/dev/null 2>&1 || true
    rm -f "$D/env"
    [ $rc = 0 ] && rc=1
  fi
  exit $rc
}
trap on_exit EXIT
# A start interrupted half-way still stops what it started (via on_exit).
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# ---- certificates -----------------------------------------------------------
bash "$here/mkcerts.sh" "$D/certs" || fail "mkcerts.sh failed"
certs=$D/certs

# ---- Maildirs ---------------------------------------------------------------
# $MW_MAILDIR_ROOT/U/Maildir/{cur,new,tmp}, created now so tests can drop
# messages in before anything has been delivered.
mkdir -p "$D/mail"
chmod 0755 "$D/mail"
maildirs=()
for u in "${users[@]}"; do
  maildirs+=("$D/mail/$u/Maildir/cur" "$D/mail/$u/Maildir/new" "$D/mail/$u/Maildir/tmp")
done
mkdir -p "${maildirs[@]}"
chown -R "$mail_uid:$mail_gid" "$D/mail"
chmod 0755 "$D/mail"/*

# ---- Dovecot ----------------------------------------------------------------
dv=$D/dovecot
mkdir -p "$dv/run" "$dv/state"
# passwd-file: user:{PLAIN}password:uid:gid::home::  -- {PLAIN} storage is what
# lets Dovecot offer APOP, CRAM-MD5, DIGEST-MD5 and SCRAM (they need the
# clear text or a mechanism-specific hash).
: >"$dv/users"
for u in "${users[@]}"; do
  printf '%s:{PLAIN}pw-%s:%s:%s::%s::\n' "$u" "$u" "$mail_uid" "$mail_gid" "$D/mail/$u" >>"$dv/users"
done
chown root:dovecot "$dv/users"
chmod 0640 "$dv/users"

# ---- Postfix ----------------------------------------------------------------
pf=$D/postfix
pfetc=$pf/etc
pfq=$pf/queue
mkdir -p "$pfetc" "$pf/data" "$pfq"
# The queue layout post-install(1) would create (see postfix-files); made
# here because the master is started directly (below), without
# postfix-script, which would read /etc/postfix/postfix-files to make them.
qdirs=()
for q in active bounce corrupt defer deferred flush hold incoming private saved trace; do
  qdirs+=("$pfq/$q")
done
mkdir -p "${qdirs[@]}" "$pfq/maildrop" "$pfq/public" "$pfq/pid"
chown postfix:root "${qdirs[@]}"
chmod 0700 "${qdirs[@]}"
chown postfix:postdrop "$pfq/maildrop" "$pfq/public"
chmod 0730 "$pfq/maildrop"
chmod 0710 "$pfq/public"
chown root:root "$pfq" "$pfq/pid"
chmod 0755 "$pfq" "$pfq/pid"
chown postfix:root "$pf/data"
chmod 0700 "$pf/data"

# virtual(8) mailbox map: user@test.domain -> user/Maildir/ (trailing slash
# = Maildir format) under virtual_mailbox_base = $D/mail, the same Maildirs
# Dovecot serves.
: >"$pfetc/vmailbox"
for u in "${users[@]}"; do
  printf '%s@%s %s/Maildir/\n' "$u" "$domain" "$u" >>"$pfetc/vmailbox"
done

cat >"$pfetc/main.cf" <<EOF
# Generated by tests/servers/start.sh for mailwire's tests.
compatibility_level = 3.6
queue_directory = $pfq
data_directory = $pf/data
meta_directory = $pfetc
mail_owner = postfix
setgid_group = postdrop
maillog_file = $pf/maillog
maillog_file_prefixes = $D
myhostname = localhost
mydomain = localdomain
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8

# Keep every message on this machine: nothing is local, nothing is relayed,
# and there is no smtp/lmtp client in master.cf; anything not for
# test.domain bounces through error(8).
mydestination =
relayhost =
relay_domains =
alias_maps =
alias_database =
local_recipient_maps =
local_transport = error:5.1.1 local delivery is disabled on mailwire test servers
default_transport = error:5.7.1 mailwire test servers deliver only to $domain
relay_transport = error:5.7.1 mailwire test servers deliver only to $domain
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
biff = no

# Deliver $domain with virtual(8) into Dovecot's Maildirs.
virtual_mailbox_domains = $domain
virtual_mailbox_base = $D/mail
virtual_mailbox_maps = texthash:$pfetc/vmailbox
virtual_uid_maps = static:$mail_uid
virtual_gid_maps = static:$mail_gid
virtual_minimum_uid = 100
# virtual refuses to start if its limit is below message_size_limit; 0 = none.
virtual_mailbox_limit = 0
mailbox_size_limit = 0
message_size_limit = 209715200

# Unknown recipients are refused at RCPT (550 5.1.1).
smtpd_reject_unlisted_recipient = yes
unknown_virtual_mailbox_reject_code = 550
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = reject_unlisted_recipient

# AUTH through Dovecot; only after TLS (smtpd_tls_auth_only).
smtpd_sasl_type = dovecot
smtpd_sasl_path = $dv/run/auth-postfix
smtpd_sasl_auth_enable = no
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
smtpd_tls_auth_only = yes
smtpd_tls_cert_file = $certs/good.pem
smtpd_tls_key_file = $certs/good.key
smtpd_tls_security_level = may
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_loglevel = 0
smtpd_tls_session_cache_database =

# Keep the message as sent (no header rewriting as for "local" clients) and
# do not slow tests down on errors or bursts.
local_header_rewrite_clients =
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 1000
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
in_flow_delay = 0
EOF
pfdaemons=$(postconf -dh daemon_directory)

# ---- ports (under a lock until the servers listen) ---------------------------
lockfile=/tmp/mailwire-servers-ports.lock
exec 9>>"$lockfile"
flock -w 120 9 || fail "could not lock $lockfile within 120 s"
mapfile -t ports < <("$py" "$here/probe.py" ports 7)
[ ${#ports[@]} = 7 ] || fail "could not choose free ports"
pop3_port=${ports[0]}
pop3s_port=${ports[1]}
smtp_port=${ports[2]}
smtps_port=${ports[3]}
noauth_port=${ports[4]}
sink_port=${ports[5]}
# ports[6] is spare: kept free so a future service needs no format change.

# ---- smtp-sink (first: it binds at once, by the time Postfix is up it listens)
setsid smtp-sink -u nobody "127.0.0.1:$sink_port" 256 </dev/null >"$D/smtp-sink.log" 2>&1 9>&- &
echo $! >"$D/smtp-sink.pid"

# ---- Dovecot: configuration with the ports, start --------------------------
cat >"$dv/dovecot.conf" <<EOF
# Generated by tests/servers/start.sh for mailwire's tests.  Not a template
# for production: plain-text passwords, AUTH in clear allowed.
instance_name = mailwire-$(basename "$D")
base_dir = $dv/run
state_dir = $dv/state
log_path = $dv/dovecot.log
info_log_path = $dv/dovecot.log
debug_log_path = $dv/dovecot.log
protocols = pop3
listen = 127.0.0.1
shutdown_clients = yes

# Tests must be able to exercise USER/PASS and AUTH PLAIN in clear when the
# client explicitly allows it (RFC 2595 section 2.2 makes refusing optional).
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 digest-md5 scram-sha-1 scram-sha-256 apop
# "s1@test.domain" and "s1" are the same user (Postfix passes what the
# client sent).
auth_username_format = %Ln
auth_verbose = yes
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN $dv/users
}
userdb {
  driver = passwd-file
  args = $dv/users
}
mail_location = maildir:~/Maildir
first_valid_uid = $mail_uid
last_valid_uid = $mail_uid
first_valid_gid = $mail_gid
last_valid_gid = $mail_gid
mail_fsync = never

ssl = yes
ssl_cert = <$certs/good.pem
ssl_key = <$certs/good.key
ssl_min_protocol = TLSv1.2
# Ask for (but do not require) a client certificate signed by the test CA,
# so a client's certificate option is exercised against a real server.
ssl_ca = <$certs/ca.pem
ssl_verify_client_cert = yes
ssl_require_crl = no
auth_ssl_require_client_cert = no

# UIDL = UID and UIDVALIDITY, stable across sessions; S=/W= in Maildir file
# names make STAT/LIST answerable without reading the files.
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
  # One long-lived login process serves many connections (~10 ms a session
  # instead of ~40 ms for a process per connection).
  service_count = 0
  process_min_avail = 1
  client_limit = 1000
}
service pop3 {
  service_count = 0
  client_limit = 1
  process_limit = $pop3_limit
}
# No authentication penalty: every test connects from 127.0.0.1, and
# tests of wrong passwords would otherwise slow every later login from it
# by up to 15 s (Dovecot's anvil doubles the delay per failure).
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
  # Every POP3 process holds a connection to auth (its userdb lookup),
  # besides the login processes': above the default 1000 with a bench's
  # thousand sessions at once, logins then fail with "Internal error".
  client_limit = $((pop3_limit + 1000))
}
protocol pop3 {
  mail_max_userip_connections = 1000
}
EOF

# dovecot (without -F) forks into the background only after it parsed its
# configuration and bound its listeners, so errors show here.
dovecot -c "$dv/dovecot.conf" </dev/null >"$dv/start.log" 2>&1 9>&- ||
  fail "dovecot did not start: $(cat "$dv/start.log")"

# ---- Postfix: master.cf with the ports, start -------------------------------

# Every service chroot = n (the chroot would not contain the Maildirs or the
# Dovecot socket).  Deliberately absent: smtp, relay, lmtp, local, pickup.
sasl_port_opts='-o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
  -o smtpd_recipient_restrictions=reject_unlisted_recipient,permit_sasl_authenticated,reject'
cat >"$pfetc/master.cf" <<EOF
# service        type  private unpriv chroot wakeup maxproc command
127.0.0.1:$smtp_port inet n - n - - smtpd
  -o syslog_name=postfix/submission
  $sasl_port_opts
127.0.0.1:$smtps_port inet n - n - - smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  $sasl_port_opts
127.0.0.1:$noauth_port inet n - n - - smtpd
  -o syslog_name=postfix/noauth
  -o smtpd_sasl_auth_enable=no
  -o smtpd_relay_restrictions=reject_unauth_destination
  -o smtpd_recipient_restrictions=reject_unlisted_recipient
cleanup    unix  n - n - 0 cleanup
qmgr       unix  n - n 300 1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n - - trivial-rewrite
bounce     unix  - - n - 0 bounce
defer      unix  - - n - 0 bounce
trace      unix  - - n - 0 bounce
verify     unix  - - n - 1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n - - proxymap
proxywrite unix  - - n - 1 proxymap
showq      unix  n - n - - showq
error      unix  - - n - - error
retry      unix  - - n - - error
discard    unix  - - n - - discard
anvil      unix  - - n - 1 anvil
scache     unix  - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
virtual    unix  - n n - - virtual
EOF

# master -w is what `postfix start` ends with, after postfix-script's
# integrity checks (which read /etc/postfix/postfix-files and cost ~2 s).  It
# returns when the master has bound its listeners and detached, or fails.
"$pfdaemons/master" -c "$pfetc" -w </dev/null >"$pf/start.log" 2>&1 9>&- ||
  fail "postfix did not start: $(cat "$pf/start.log")"

# Dovecot and the Postfix master have bound their ports when they return,
# smtp-sink was started first: another start.sh may choose ports now.
flock -u 9
exec 9>&-

# ---- wait until every port greets ---------------------------------------------
"$py" "$here/probe.py" wait 30 "$certs/ca.pem" \
  "dovecot-pop3:$pop3_port:pop3" "dovecot-pop3s:$pop3s_port:pop3s" \
  "postfix-submission:$smtp_port:smtp" "postfix-smtps:$smtps_port:smtps" \
  "postfix-noauth:$noauth_port:smtp" "smtp-sink:$sink_port:smtp" ||
  fail "not every server answered"

# ---- env ----------------------------------------------------------------------
write_env() {
  local k
  for k in "$@"; do printf '%s=%q\n' "${k%%=*}" "${k#*=}"; done
}
write_env \
  "MW_SRV_DIR=$D" \
  "MW_CA_FILE=$certs/ca.pem" \
  "MW_CERT_DIR=$certs" \
  "MW_POP3_PORT=$pop3_port" \
  "MW_POP3S_PORT=$pop3s_port" \
  "MW_SMTP_PORT=$smtp_port" \
  "MW_SMTPS_PORT=$smtps_port" \
  "MW_SMTP_NOAUTH_PORT=$noauth_port" \
  "MW_SINK_PORT=$sink_port" \
  "MW_MAIL_DOMAIN=$domain" \
  "MW_MAILDIR_ROOT=$D/mail" \
  "MW_MAIL_OWNER=$mail_uid:$mail_gid" >"$D/env.tmp"
mv "$D/env.tmp" "$D/env"
started_ok=1
# The OAuth 2.0 provider, its Dovecot and a Postfix listener (opt out with
# MW_OAUTH_SERVERS=0); a failure is recorded in env for the OAuth tests only.
if [ "${MW_OAUTH_SERVERS:-1}" != 0 ]; then
  bash "$here/start-oauth.sh" "$D" || echo "start.sh: the OAuth servers did not start (MW_OAUTH_FAILED in env)" >&2
fi
echo "start.sh: servers up in $D (POP3 $pop3_port, POP3S $pop3s_port, submission $smtp_port, SMTPS $smtps_port, no-auth $noauth_port, sink $sink_port)"
