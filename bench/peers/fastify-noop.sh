#!/usr/bin/env bash
# Baseline: plain Fastify 5 answering POST /verify with a fixed JSON object. Verifies nothing: the
# framework's own cost per request, the denominator of every cost ratio.
# bench: no-verify
# usage: fastify-noop.sh PORT ISSUER JWKS_URI AUDIENCE ALG
set -euo pipefail
exec node "$(dirname "$0")/fastify-noop.mjs" "$1"
