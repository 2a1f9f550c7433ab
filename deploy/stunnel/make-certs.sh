#!/usr/bin/env bash
# Makes a private CA and certificates for ubackup's rsync-over-TLS with
# openssl (EC P-256): run once for the CA, then once per host.
#
#   make-certs.sh ca                       -> ca.pem, ca.key  (keep ca.key offline)
#   make-certs.sh host NAME IP [DNS...]    -> NAME.crt, NAME.key (server + client use)
#
# Every certificate is good as a TLS server (stunnel on a DB host or node)
# and as a client (a node pulling, a DB host restoring), and carries IP and
# DNS subjectAltNames: the connector checks the address it dials against them.
set -euo pipefail
days=${DAYS:-825}
out=${OUT:-.}
cd "$out"
case "${1:-}" in
  ca)
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key
    chmod 600 ca.key
    openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=ubackup CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
      -out ca.pem
    echo "wrote $out/ca.pem and $out/ca.key"
    ;;
  host)
    name=${2:?usage: make-certs.sh host NAME IP [DNS...]}
    ip=${3:?usage: make-certs.sh host NAME IP [DNS...]}
    shift 3
    san="IP:$ip"
    for d in "$@"; do san="$san,DNS:$d"; done
    openssl ecparam -name prime256v1 -genkey -noout -out "$name.key"
    chmod 600 "$name.key"
    openssl req -new -key "$name.key" -subj "/CN=$name" -out "$name.csr"
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' "$san" > "$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
      -days "$days" -sha256 -extfile "$name.ext" -out "$name.crt"
    rm -f "$name.csr" "$name.ext"
    echo "wrote $out/$name.crt and $out/$name.key ($san)"
    ;;
  *)
    sed -n '2,11p' "$0"; exit 2 ;;
esac
