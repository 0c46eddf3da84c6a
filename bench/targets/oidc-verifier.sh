#!/usr/bin/env bash
# Target: oidc-verifier itself, the BUILT service (node dist/server.js), in the format of the shared
# benchmark harness and of `npm run bench`:
#   oidc-verifier.sh PORT ISSUER JWKS_URI AUDIENCE ALG
# It serves POST /verify on 127.0.0.1:PORT for one issuer (keys from JWKS_URI, no discovery), accepting
# only ALG. Exit 78 (the harness's "unsupported") for an algorithm the service cannot verify without
# extra configuration (HS* needs a client secret).
#
# Environment:
#   OIDC_VERIFIER_DIR         the project (default: this script's ../..; set it when the script is copied
#                             into the harness). The project must be built: npm run build.
#   OIDC_VERIFIER_LOG_LEVEL   log level (default warn: no per-request info line, as a busy deployment runs)
#   OIDC_VERIFIER_BENCH_CONFIG  JSON object of config sections merged into the generated file (a section's
#                             keys over the generated section's), e.g. '{"tokenCache":{"enabled":false}}'
#                             or '{"server":{"signatureChecks":"thread-pool"}}' (default: none)
#   OIDC_VERIFIER_NODE_ARGS   extra node flags for the service, space-separated (bench/profile.mjs passes
#                             --cpu-prof, which NODE_OPTIONS does not allow)
#   OIDC_VERIFIER_CONF_DIR    the folder of the generated config file (default: the project's
#                             bench/.work/target-config; bench/run.mjs and bench/profile.mjs give one in their
#                             run's folder, and remove it when they end)
#   NODE_OPTIONS              when unset, the container image's (the Dockerfile's `ENV NODE_OPTIONS=`: its cap on
#                             V8's old generation), so the service runs as the image runs it; set it empty
#                             (NODE_OPTIONS=) to measure node's own heap defaults
#
# The settings go in a generated config file (under the project's bench/.work/, git-ignored) rather than
# the OIDC_* environment, so that OIDC_VERIFIER_BENCH_CONFIG can change any section. It is named by the
# server's PID (exec keeps the script's), and each start removes those of servers that are gone: the folder
# holds one file per server running, not one per port ever used. Everything not set here
# is at its default: among others, no per-caller rate limit on /verify (rateLimit.max is unset by default;
# '{"rateLimit":{"max":1000000000}}' measures the limiter with a ceiling no run reaches).
set -euo pipefail
if [ $# -ne 5 ]; then
  echo "usage: $0 PORT ISSUER JWKS_URI AUDIENCE ALG" >&2
  exit 2
fi
PORT=$1 ISSUER=$2 JWKS_URI=$3 AUDIENCE=$4 ALG=$5
case "$ALG" in
  RS256|RS384|RS512|PS256|PS384|PS512|ES256|ES384|ES512|EdDSA|Ed25519) ;;
  *) echo "oidc-verifier: $ALG is not supported by this target (HS* needs a client secret; none is configured here)" >&2
     exit 78 ;;
esac

DIR=${OIDC_VERIFIER_DIR:-$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)}
if [ ! -f "$DIR/dist/server.js" ]; then
  echo "oidc-verifier: $DIR/dist/server.js not found: run 'npm run build' in the project, or set OIDC_VERIFIER_DIR" >&2
  exit 1
fi

CONF_DIR=${OIDC_VERIFIER_CONF_DIR:-$DIR/bench/.work/target-config}
mkdir -p "$CONF_DIR" 2>/dev/null && [ -w "$CONF_DIR" ] || CONF_DIR=$(mktemp -d)
for old in "$CONF_DIR"/oidc-verifier-*.json; do
  pid=${old##*/oidc-verifier-}; pid=${pid%.json}
  case "$pid" in ''|*[!0-9]*) continue ;; esac
  [ -d "/proc/$pid" ] || rm -f -- "$old"
done
CONF="$CONF_DIR/oidc-verifier-$$.json"
node -e '
  const [file, port, issuer, jwksUri, audience, alg, logLevel, extra] = process.argv.slice(1)
  const config = {
    server: { host: "127.0.0.1", port: Number(port), logLevel },
    issuers: [{ id: "bench", issuer, audiences: [audience], algorithms: [alg], jwksUri }]
  }
  // A section given here is merged into the generated one (server: {signatureChecks: ...} keeps host and port).
  const isMap = (v) => typeof v === "object" && v !== null && !Array.isArray(v)
  if (extra) for (const [k, v] of Object.entries(JSON.parse(extra))) config[k] = isMap(v) && isMap(config[k]) ? { ...config[k], ...v } : v
  require("node:fs").writeFileSync(file, JSON.stringify(config, null, 2))
' "$CONF" "$PORT" "$ISSUER" "$JWKS_URI" "$AUDIENCE" "$ALG" "${OIDC_VERIFIER_LOG_LEVEL:-warn}" "${OIDC_VERIFIER_BENCH_CONFIG:-}"

# The environment would override the file (HOST, PORT, LOG_LEVEL) or conflict with it (OIDC_*).
unset HOST LOG_LEVEL OIDC_ISSUER OIDC_AUDIENCE OIDC_JWKS_URI OIDC_ALGORITHMS OIDC_ISSUER_ID OIDC_VERIFIER_CONFIG
export PORT NODE_ENV=production
cd "$DIR"
if [ -z "${NODE_OPTIONS+set}" ]; then
  # The last NODE_OPTIONS=… of an ENV line (the runtime stage's), alone or among other variables, quoted or not.
  NODE_OPTIONS=$(sed -n -e 's/^ENV .*\bNODE_OPTIONS="\([^"]*\)".*/\1/p' -e 't' -e 's/^ENV .*\bNODE_OPTIONS=\([^ ]*\).*/\1/p' Dockerfile | tail -n 1)
  export NODE_OPTIONS
fi
# The node flags of npm start and the container image's CMD (package.json), then the extra ones.
# shellcheck disable=SC2046,SC2086 # flags, split on purpose
exec $(node -p 'require("./package.json").scripts.start.replace(/^exec /, "").replace(/ dist\/server\.js$/, "")') ${OIDC_VERIFIER_NODE_ARGS:-} dist/server.js --config "$CONF"
