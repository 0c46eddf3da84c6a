#!/usr/bin/env bash
# Peer: Express 5 + jwks-rsa (cache, rateLimit) + jsonwebtoken.verify, wired as jwks-rsa's README shows.
# usage: express-jwks-rsa.sh PORT ISSUER JWKS_URI AUDIENCE ALG
set -euo pipefail
if [ "${5:-}" = EdDSA ]; then
  echo "express-jwks-rsa: jsonwebtoken 9 cannot verify EdDSA" >&2
  exit 78
fi
exec node "$(dirname "$0")/express-jwks-rsa.mjs" "$@"
