#!/usr/bin/env bash
# Peer: the hand-written service most teams start with: Fastify 5 + jose 6 (createRemoteJWKSet once,
# jwtVerify on every request, no verified-token cache).
# usage: jose-fastify-naive.sh PORT ISSUER JWKS_URI AUDIENCE ALG
set -euo pipefail
exec node "$(dirname "$0")/jose-fastify-naive.mjs" "$@"
