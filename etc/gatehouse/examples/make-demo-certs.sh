#!/bin/sh
# Creates a demo CA and a wildcard certificate for *.cilium.rocks in DIR
# (default: ./certs), as basic-https.toml expects. For labs only.
set -eu
dir=${1:-certs}
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=gatehouse demo CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=*.cilium.rocks" -keyout _wildcard.cilium.rocks-key.pem -out wildcard.csr 2>/dev/null
printf 'subjectAltName=DNS:*.cilium.rocks\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf
openssl x509 -req -in wildcard.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
  -extfile ext.cnf -out _wildcard.cilium.rocks.pem 2>/dev/null
rm -f wildcard.csr ext.cnf ca.srl
echo "created $(pwd)/ca.pem and _wildcard.cilium.rocks{,-key}.pem"
