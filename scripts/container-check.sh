#!/usr/bin/env bash
# The container image's steps without a Docker engine (CI has none). Run by .ci/run after the tests.
#
# 1. Repeats the Dockerfile for its final stage in a temporary folder (scripts/container-check.mjs build):
#    the same files copied, the same RUN commands (npm ci + build; a production-only npm ci), the stages
#    wired by COPY --from. The Dockerfile is the source of truth: its USER, ENV, CMD and HEALTHCHECK are read
#    from it and exercised as written, and an instruction the emulation does not know fails the check.
# 2. Checks the result: production dependencies only (no devDependency in node_modules), openapi.yaml next
#    to dist/ and its JSON copy in it (dist/openapi.json, read at start), USER numeric and not root, CMD is
#    node (not npm), NODE_ENV=production.
# 3. Starts the CMD as that UID (setpriv, no new privileges, no supplementary groups) with the image's ENV
#    and an environment-only configuration whose JWKS is served from a local file; then: the HEALTHCHECK
#    command passes, /readyz is 200, a token signed with the matching key verifies and a tampered one does
#    not, node's heap limit follows the image's NODE_OPTIONS cap and a token cache too large for it is
#    refused (exit 2), the development issuer refuses to start in production, nothing was written into the app folder,
#    and SIGTERM ends the process with exit 0 within the grace period.
#
# Differences from a real image: Node is this machine's (the image has Node 24), the base images' own
# files are absent, and the service listens on 127.0.0.1 (HOST is overridden so nothing here listens beyond
# loopback). Usage: scripts/container-check.sh [Dockerfile]. Needs node_modules (npm ci) for the parser.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DOCKERFILE=${1:-Dockerfile}
HELPER="$ROOT/scripts/container-check.mjs"
TARGET=runtime
GRACE_SECONDS=10   # server.shutdownGraceSeconds default; SIGTERM must end the process within it
START=$SECONDS

say () { printf 'container-check [%3ds]: %s\n' "$((SECONDS - START))" "$*"; }
die () { printf 'container-check: FAILED: %s\n' "$*" >&2; exit 1; }
helper () { node "$HELPER" "$@"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/oidc-container-check.XXXXXX")
chmod 755 "$WORK"   # the unprivileged user must reach the app folder inside
PIDS=()
cleanup () {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# ---- 1. build ------------------------------------------------------------------------------------------------
say "building stage \"$TARGET\" of $DOCKERFILE in $WORK"
# The RUN steps get their own npm cache (they may clean it), seeded with hard links to this machine's so
# nothing is downloaded twice; the installed tree is fixed by package-lock.json either way.
mkdir -p "$WORK/npm-cache"
cp -al "$(npm config get cache)/_cacache" "$WORK/npm-cache/_cacache" 2>/dev/null || true
helper build "$DOCKERFILE" "$ROOT" "$TARGET" "$WORK" > "$WORK/image.json" || die "the Dockerfile's steps failed"
APP=$(helper field "$WORK/image.json" app)
mapfile -d '' CMD < <(helper field "$WORK/image.json" cmd)
mapfile -d '' ENTRYPOINT < <(helper field "$WORK/image.json" entrypoint)
mapfile -d '' HEALTH < <(helper field "$WORK/image.json" healthcheck.test)
USER_SPEC=$(helper field "$WORK/image.json" user)
mapfile -t IMAGE_ENV < <(helper field "$WORK/image.json" env)

# ---- 2. what the image holds and how it is declared --------------------------------------------------------
[ "${#ENTRYPOINT[@]}" -eq 0 ] || die "ENTRYPOINT must be cleared (ENTRYPOINT []) so CMD is the whole command, got ${ENTRYPOINT[*]}"
# npm start's script is "exec node …" (sh replaces itself with node, so npm's SIGTERM reaches the service).
START_CMD=$(cd "$ROOT" && node -p 'require("./package.json").scripts.start.replace(/^exec /, "")')
[ "${CMD[*]}" = "$START_CMD" ] || die "CMD must be npm start's command line, node itself with the same flags ($START_CMD), got ${CMD[*]}"
[ "${HEALTH[*]}" = "node dist/healthcheck.js" ] || die "HEALTHCHECK must run [\"node\", \"dist/healthcheck.js\"], got ${HEALTH[*]}"
[[ "$USER_SPEC" =~ ^([0-9]+):([0-9]+)$ ]] || die "USER must be numeric UID:GID (Kubernetes runAsNonRoot checks it), got $USER_SPEC"
RUN_UID=${BASH_REMATCH[1]}
RUN_GID=${BASH_REMATCH[2]}
[ "$RUN_UID" -ne 0 ] || die "USER must not be root"
printf '%s\n' "${IMAGE_ENV[@]}" | grep -qx 'NODE_ENV=production' || die "ENV NODE_ENV=production missing in the final stage"

for f in dist/server.js dist/healthcheck.js dist/openapi.json package.json openapi.yaml node_modules; do
  [ -e "$APP/$f" ] || die "$f missing from the image"
done
extra=$(cd "$APP" && ls -A | grep -vxE 'dist|node_modules|package.json|openapi.yaml' || true)
[ -z "$extra" ] || die "unexpected files in the image's app folder: $extra"
node -e '
  // package-lock.json marks what only devDependencies need ("dev": true): none of it may be installed.
  const { existsSync, readdirSync } = require("fs")
  const [app, lockFile] = process.argv.slice(1)
  const lock = require(lockFile)
  const entries = Object.entries(lock.packages).filter(([path]) => path.startsWith("node_modules/"))
  const devOnly = entries.filter(([path, meta]) => meta.dev === true && existsSync(`${app}/${path}`)).map(([path]) => path)
  if (devOnly.length > 0) { console.error(`development-only packages in the image: ${devOnly.slice(0, 10).join(", ")}`); process.exit(1) }
  const prod = entries.filter(([, meta]) => meta.dev !== true && meta.optional !== true).map(([path]) => path)
  const missing = prod.filter((path) => !existsSync(`${app}/${path}`))
  if (missing.length > 0) { console.error(`production packages missing from the image: ${missing.slice(0, 10).join(", ")}`); process.exit(1) }
  const top = readdirSync(`${app}/node_modules`).filter((n) => !n.startsWith("."))
    .flatMap((n) => n.startsWith("@") ? readdirSync(`${app}/node_modules/${n}`).map((m) => `${n}/${m}`) : [n])
  const unknown = top.filter((n) => lock.packages[`node_modules/${n}`] === undefined)
  if (unknown.length > 0) { console.error(`packages in the image that package-lock.json does not list: ${unknown.join(", ")}`); process.exit(1) }
  console.log(`${prod.length} production packages, ${entries.length - prod.length} development-only packages absent`)
' "$APP" "$ROOT/package-lock.json" || die "node_modules is not the production set"
for name in tap typescript eslint oidc-provider; do
  [ ! -e "$APP/node_modules/$name" ] || die "$name (a devDependency) is in the image"
done
say "image: USER $USER_SPEC, CMD ${CMD[*]}, HEALTHCHECK ${HEALTH[*]}, production dependencies only"

# ---- 3. run it ----------------------------------------------------------------------------------------------
helper keys "$WORK"
chmod 644 "$WORK/jwks.json"
node "$HELPER" serve "$WORK/jwks.json" "$WORK/jwks.port" &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$WORK/jwks.port" ] && break; sleep 0.1; done
[ -s "$WORK/jwks.port" ] || die "the JWKS file server did not start"
PORT=$(helper free-port)
ISSUER="https://issuer.container-check.invalid"   # only compared with iss; keys come from OIDC_JWKS_URI
AUDIENCE=container-check
NODE_DIR=$(dirname "$(command -v node)")

# The image's ENV, then the deployment's: an environment-only configuration (what a sidecar uses).
RUN_ENV=()
for kv in "${IMAGE_ENV[@]}"; do
  case $kv in
    PATH=*) RUN_ENV+=("PATH=$NODE_DIR:${kv#PATH=}") ;;   # this machine's node stands in for the image's
    *) RUN_ENV+=("$kv") ;;
  esac
done
RUN_ENV+=(HOST=127.0.0.1 "PORT=$PORT" LOG_LEVEL=info
  "OIDC_ISSUER=$ISSUER" "OIDC_AUDIENCE=$AUDIENCE" "OIDC_JWKS_URI=http://127.0.0.1:$(cat "$WORK/jwks.port")/jwks.json" OIDC_ALGORITHMS=ES256)
printf '%s\n' "${RUN_ENV[@]}" | grep -q '^PATH=' || RUN_ENV+=("PATH=$NODE_DIR:/usr/bin:/bin")

AS_USER=()
if [ "$(id -u)" -eq 0 ]; then
  AS_USER=(setpriv "--reuid=$RUN_UID" "--regid=$RUN_GID" --clear-groups --no-new-privs)
else
  say "not root: running as $(id -un) instead of UID $RUN_UID"
fi
# As the image would run it: in WORKDIR, as USER, with only the image's and the deployment's ENV.
in_image () { (cd "$APP" && exec "${AS_USER[@]}" env -i "${RUN_ENV[@]}" "$@"); }

touch "$WORK/started"
# One subshell that execs setpriv → env → node, so $! is the server's own PID.
(cd "$APP" && exec "${AS_USER[@]}" env -i "${RUN_ENV[@]}" "${CMD[@]}") > "$WORK/server.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")

healthy=
for _ in $(seq 100); do
  if in_image "${HEALTH[@]}" > "$WORK/health.out" 2>&1; then healthy=1; break; fi
  kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log"; die "the server exited at start"; }
  sleep 0.2
done
[ -n "$healthy" ] || { cat "$WORK/health.out" "$WORK/server.log"; die "the HEALTHCHECK command never passed"; }
say "HEALTHCHECK passes: $(cat "$WORK/health.out")"

if [ "$(id -u)" -eq 0 ]; then
  uid=$(awk '/^Uid:/ { print $2 }' "/proc/$SERVER/status")
  [ "$uid" = "$RUN_UID" ] || die "the server runs as UID $uid, not $RUN_UID"
fi

BASE="http://127.0.0.1:$PORT"
ready=
for _ in $(seq 50); do
  res=$(helper http GET "$BASE/readyz")
  [ "${res%% *}" = 200 ] && { ready=1; break; }
  sleep 0.2
done
[ -n "$ready" ] || { cat "$WORK/server.log"; die "/readyz never became 200: $res"; }
say "/readyz 200"

TOKEN=$(helper mint "$WORK" "$ISSUER" "$AUDIENCE" container-check-user)
res=$(helper http POST "$BASE/verify" "$TOKEN")
[ "${res%% *}" = 200 ] || die "a valid token was not verified: $res"
printf '%s' "$res" | grep -q '"subject":"container-check-user"' || die "unexpected identity: $res"
SIGNATURE=${TOKEN##*.}
[ "${SIGNATURE:0:1}" = A ] && FLIPPED=B || FLIPPED=A
res=$(helper http POST "$BASE/verify" "${TOKEN%.*}.$FLIPPED${SIGNATURE:1}")
[ "${res%% *}" = 401 ] || die "a tampered token was not refused with 401: $res"
say "a token signed with the served key verifies; a tampered one gets 401"

# The image's NODE_OPTIONS reaches node: its heap limit is the cap's, and a token cache too large for it is
# refused (exit 2, the fix named) as it would be in the image.
heap_mib=$(in_image node -p 'Math.round(require("node:v8").getHeapStatistics().heap_size_limit / 2 ** 20)')
old_space=$(printf '%s\n' "${IMAGE_ENV[@]}" | sed -n 's/^NODE_OPTIONS=.*--max-old-space-size=\([0-9]*\).*/\1/p')
[ -n "$old_space" ] || die "the image's ENV sets no NODE_OPTIONS=--max-old-space-size (README, \"Memory\")"
[ "$heap_mib" -ge "$old_space" ] && [ "$heap_mib" -le $((old_space + 64)) ] || die "node's heap limit is $heap_mib MiB, not the image's cap of $old_space MiB"
status=0
printf 'issuers:\n  - { id: a, issuer: "%s", audiences: [%s], jwksUri: "http://127.0.0.1:9/jwks.json" }\ntokenCache: { maxBytes: %s }\n' \
  "$ISSUER" "$AUDIENCE" $(( (old_space + 1) * 1024 * 1024 )) > "$WORK/big-cache.yaml"
chmod a+r "$WORK/big-cache.yaml"
in_image env -u OIDC_ISSUER -u OIDC_AUDIENCE -u OIDC_JWKS_URI -u OIDC_ALGORITHMS node dist/server.js --config "$WORK/big-cache.yaml" > "$WORK/big-cache.out" 2>&1 || status=$?
[ "$status" -eq 2 ] && grep -q 'tokenCache.maxBytes: .* does not fit' "$WORK/big-cache.out" || { cat "$WORK/big-cache.out"; die "a token cache larger than the heap cap was not refused (exit $status)"; }
say "node's heap limit is $heap_mib MiB under the image's --max-old-space-size=$old_space; a cache that cannot fit is refused"

if in_image node dist/dev.js > "$WORK/dev.out" 2>&1; then die "the development issuer started with NODE_ENV=production"; fi
grep -q 'refuses to run with NODE_ENV=production' "$WORK/dev.out" || { cat "$WORK/dev.out"; die "dist/dev.js failed for another reason"; }

written=$(find "$APP" -newer "$WORK/started" -print | head -5)
[ -z "$written" ] || die "the service wrote into its app folder (the root filesystem is read-only in Kubernetes): $written"

kill -TERM "$SERVER"
stopped=
for _ in $(seq $((GRACE_SECONDS * 10))); do
  kill -0 "$SERVER" 2>/dev/null || { stopped=1; break; }
  sleep 0.1
done
[ -n "$stopped" ] || die "SIGTERM: still running after ${GRACE_SECONDS}s"
status=0
wait "$SERVER" || status=$?
[ "$status" -eq 0 ] || { cat "$WORK/server.log"; die "SIGTERM: exit status $status, expected 0"; }
grep -q 'shutting down' "$WORK/server.log" || die "SIGTERM: no shutdown log line"
say "SIGTERM: clean exit 0"

say "passed in $((SECONDS - START)) s"
