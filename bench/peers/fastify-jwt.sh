#!/usr/bin/env bash
# Peer: Fastify 5 + @fastify/jwt (fast-jwt, verified-token cache on) + get-jwks, wired as get-jwks's README
# shows.
# usage: fastify-jwt.sh PORT ISSUER JWKS_URI AUDIENCE ALG
set -euo pipefail
if [ "${5:-}" = EdDSA ]; then
  echo "fastify-jwt: get-jwks converts keys with jwk-to-pem, which has no OKP (Ed25519) keys" >&2
  exit 78
fi
exec node "$(dirname "$0")/fastify-jwt.mjs" "$@"
