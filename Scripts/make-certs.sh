#!/usr/bin/env bash
# A throwaway certificate authority and certificates signed by it, for a local
# cluster with mutual TLS and for the tests (never for production: the CA key
# sits next to the certificates).
#
#   Scripts/make-certs.sh DIR [NAME...]     (default names: node client)
#
# Writes DIR/ca.pem, DIR/ca.key and, for each NAME, DIR/NAME.pem and DIR/NAME.key:
# EC P-256, valid 30 days, usable as server and client certificate, for
# 127.0.0.1, ::1 and localhost (add names with RAGD_CERT_SANS="DNS:x,IP:y").
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR [NAME...]}
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(node client)
command -v openssl >/dev/null || { echo "make-certs.sh: openssl is not installed (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
umask 077
if [ ! -f "$dir/ca.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=ragd throwaway CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
sans="IP:127.0.0.1,IP:::1,DNS:localhost${RAGD_CERT_SANS:+,$RAGD_CERT_SANS}"
for n in "${names[@]}"; do
  ext=$(mktemp)
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$sans" >"$ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$n" \
    -keyout "$dir/$n.key" -out "$dir/$n.csr" 2>/dev/null
  openssl x509 -req -in "$dir/$n.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial -days 30 \
    -extfile "$ext" -out "$dir/$n.pem" 2>/dev/null
  rm -f "$dir/$n.csr" "$ext"
done
rm -f "$dir/ca.srl"
