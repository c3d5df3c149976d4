#!/usr/bin/env bash
# Make the test certificates for mailwire's test servers and scripted server.
#
#   tests/servers/mkcerts.sh DIR
#
# Writes into DIR (created if missing):
#   ca.pem, ca.key                 test CA (the only trust anchor tests use)
#   good.pem, good.key             server cert signed by the CA,
#                                  SAN DNS:localhost, IP:127.0.0.1, valid now
#   expired.pem, expired.key       same SAN, signed by the CA, validity 2020-2021
#   wronghost.pem, wronghost.key   signed by the CA, SAN DNS:wrong.example only
#   selfsigned.pem, selfsigned.key self-signed, SAN DNS:localhost, IP:127.0.0.1
#                                  (so the ONLY defect is the missing trust)
#   client.pem, client.key         client certificate (extendedKeyUsage
#                                  clientAuth) signed by the CA, CN=mailwire-client
#   revoked.pem, revoked.key       like good.pem (same SAN), but revoked
#   crl.pem                        the CA's CRL, revoking revoked.pem only
# Keys are unencrypted PEM (EC P-256: fast to generate, accepted by OpenSSL,
# Python's ssl, Dovecot and Postfix).  Everything else the script needs
# (openssl ca database, CSRs, extension files) stays in DIR/.ca/.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
dir=$1
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
work=$dir/.ca
rm -rf "$work"
mkdir -p "$work/newcerts"
: >"$work/index.txt"
echo 1000 >"$work/serial"


# A minimal `openssl ca` configuration: openssl 3.0's `x509 -req` cannot set
# an explicit notBefore/notAfter, `ca -startdate/-enddate` can.
cat >"$work/ca.cnf" <<EOF
[ca]
default_ca = testca
[testca]
dir = $work
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
email_in_dn = no
preserve = yes
[anything]
commonName = supplied
organizationName = optional
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[srv_localhost]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[srv_wronghost]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[srv_selfsigned]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

# The CA itself.
# (Key and certificate or request in one openssl run each: every process
# start counts on a loaded test machine.)
keyopts=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -new -x509 -config "$work/ca.cnf" -extensions v3_ca "${keyopts[@]}" \
  -keyout "$dir/ca.key" -subj "/O=mailwire tests/CN=mailwire test CA" \
  -days 3650 -out "$dir/ca.pem" 2>"$work/ca.log" || { cat "$work/ca.log" >&2; exit 1; }

sign() { # sign NAME CN EXTSECTION [ca date options...]
  local name=$1 cn=$2 ext=$3
  shift 3
  openssl req -new -config "$work/ca.cnf" "${keyopts[@]}" -keyout "$dir/$name.key" \
    -subj "/O=mailwire tests/CN=$cn" -out "$work/$name.csr" 2>"$work/$name.log" ||
    { cat "$work/$name.log" >&2; exit 1; }
  openssl ca -batch -config "$work/ca.cnf" -cert "$dir/ca.pem" \
    -keyfile "$dir/ca.key" -in "$work/$name.csr" -out "$dir/$name.pem" \
    -extfile "$work/ca.cnf" -extensions "$ext" -notext "$@" 2>"$work/$name.log" ||
    { cat "$work/$name.log" >&2; exit 1; }
}

sign good localhost srv_localhost -days 3650
sign expired localhost srv_localhost -startdate 20200101000000Z -enddate 20210101000000Z
sign wronghost wrong.example srv_wronghost -days 3650
sign client mailwire-client client -days 3650
sign revoked localhost srv_localhost -days 3650
openssl ca -batch -config "$work/ca.cnf" -cert "$dir/ca.pem" -keyfile "$dir/ca.key" \
  -revoke "$dir/revoked.pem" -crl_reason keyCompromise 2>"$work/revoke.log" ||
  { cat "$work/revoke.log" >&2; exit 1; }
openssl ca -batch -config "$work/ca.cnf" -cert "$dir/ca.pem" -keyfile "$dir/ca.key" \
  -gencrl -crldays 3650 -out "$dir/crl.pem" 2>"$work/crl.log" ||
  { cat "$work/crl.log" >&2; exit 1; }

openssl req -new -x509 -config "$work/ca.cnf" -extensions srv_selfsigned \
  "${keyopts[@]}" -keyout "$dir/selfsigned.key" -subj "/O=mailwire tests/CN=localhost" \
  -days 3650 -out "$dir/selfsigned.pem" 2>"$work/selfsigned.log" ||
  { cat "$work/selfsigned.log" >&2; exit 1; }

# Sanity: what must verify does, what must not does not.
openssl verify -CAfile "$dir/ca.pem" "$dir/good.pem" "$dir/wronghost.pem" "$dir/client.pem" >/dev/null
if openssl verify -CAfile "$dir/ca.pem" "$dir/expired.pem" >/dev/null 2>&1; then
  echo "mkcerts: expired.pem unexpectedly verifies" >&2
  exit 1
fi
openssl verify -CAfile "$dir/ca.pem" -CRLfile "$dir/crl.pem" -crl_check "$dir/good.pem" >/dev/null
if openssl verify -CAfile "$dir/ca.pem" -CRLfile "$dir/crl.pem" -crl_check "$dir/revoked.pem" \
     >/dev/null 2>&1; then
  echo "mkcerts: revoked.pem unexpectedly verifies with the CRL" >&2
  exit 1
fi
if openssl verify -CAfile "$dir/ca.pem" "$dir/selfsigned.pem" >/dev/null 2>&1; then
  echo "mkcerts: selfsigned.pem unexpectedly verifies against the CA" >&2
  exit 1
fi
# Test keys: servers that drop privileges must be able to read them.
chmod 0644 "$dir"/*.key
chmod 0755 "$dir"
