#!/usr/bin/env bash
# Floor: fastify-noop plus one raw signature check per request (node:crypto.verify on a KeyObject imported
# once), no claim checks, no cache: what HTTP plus one check costs at a verifier's request rate. Not a
# verifier (it checks only the signature), so the smoke checks treat it as a baseline.
# bench: no-verify
# usage: fastify-verify-floor.sh PORT ISSUER JWKS_URI AUDIENCE ALG
set -euo pipefail
exec node "$(dirname "$0")/fastify-verify-floor.mjs" "$@"
