# syntax=docker/dockerfile:1
#
# oidc-verifier container image.
#   docker build -t oidc-verifier .               the production image (the last stage, "runtime")
#   docker build --target dev -t oidc-verifier:dev .   the development issuer, for docker-compose.yml
#
# There is no Docker engine in CI: scripts/container-check.sh repeats these steps in a temporary folder
# (same files copied, same installs, same USER, CMD and HEALTHCHECK, which it reads from this file). Keep the
# two in step. For reproducible builds pin the FROM images by digest (image@sha256:…) in your pipeline.

# ---- build: every dependency, then tsc and the contract's JSON copy. -------------------------------------
# The official Debian slim image of the current Node LTS.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No dependency needs an install script; refusing them all keeps a compromised package from running code here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json openapi.yaml ./
COPY src ./src
# tsc, then dist/openapi.json: openapi.yaml as JSON, which the service reads at start instead of the YAML.
RUN npm run build

# ---- prod-deps: production dependencies only (no tap, typescript, eslint, oidc-provider). ------------------
FROM node:24-bookworm-slim AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# ---- dev: `docker compose up` (docker-compose.yml). The built-in development issuer, INSECURE by design: -------
# anyone who reaches port 9400 can mint tokens. It refuses NODE_ENV=production, so it is never the default.
# Both listen on every interface of the container (publish them on the host's loopback only); the issuer is
# still named http://127.0.0.1:9400, which is where the service, in the same container, fetches its keys.
FROM node:24-bookworm-slim AS dev
WORKDIR /app
ENV NODE_ENV=development HOST=0.0.0.0 PORT=8080 DEV_ISSUER_HOST=0.0.0.0 DEV_ISSUER_PORT=9400
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json openapi.yaml ./
# The official image's unprivileged "node" user.
USER 1000:1000
EXPOSE 8080 9400
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["node", "dist/healthcheck.js"]
CMD ["node", "dist/dev.js"]

# ---- runtime: the production image. ------------------------------------------------------------------------
# Distroless rather than node:24-bookworm-slim: the same Debian 12 and Node 24, but no shell, no package
# manager, no npm/corepack and no setuid binaries, so far fewer CVEs to triage and nothing for an intruder to
# use. What we give up (a shell for `docker exec`) a verifier does not need: the health check and the CLI
# are Node scripts. ":nonroot" runs as UID/GID 65532; USER repeats it numerically so Kubernetes'
# runAsNonRoot can check it.
FROM gcr.io/distroless/nodejs24-debian12:nonroot AS runtime
WORKDIR /app
# HOST: in a container the service must listen beyond loopback (it overrides server.host of a config file).
# PATH: distroless keeps node in /nodejs/bin; with it on PATH, CMD and exec probes say "node" like anywhere else.
ENV NODE_ENV=production HOST=0.0.0.0 PATH=/nodejs/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# V8's old generation capped at 160 MiB, sized for the default token cache (64 MiB): RSS then stays ~40 MB over
# the start however many new tokens arrive (without a cap Node lets the heap grow to half the container's
# memory, at least ~256 MiB, before it collects the garbage of evicted entries). A configuration whose cache
# does not fit is refused at start (src/config/heap-budget.ts). Set NODE_OPTIONS to change it (README, "Memory").
# The CMD's --max-semi-space-size=4 is repeated here so that every node of the image (the health check,
# `node dist/cli.js check-config`) has the server's heap limit: check-config's heap budget is then the server's.
ENV NODE_OPTIONS="--max-old-space-size=160 --max-semi-space-size=4"
# Root-owned and read-only to the service: it cannot rewrite its own code or dependencies.
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json openapi.yaml ./
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["node", "dist/healthcheck.js"]
# The base image's ENTRYPOINT is node itself; cleared so that CMD is the whole command line and
# `docker run IMAGE node dist/cli.js check-config` works as it reads. node is PID 1 and handles SIGTERM
# itself (close-with-grace): no npm in between to swallow the signal. --max-semi-space-size=4 caps V8's
# young generation (4 MiB semi-spaces instead of 16): no more CPU per request, less RSS (README, "Memory");
# npm start and the benchmark target start the service with the same flag.
ENTRYPOINT []
CMD ["node", "--max-semi-space-size=4", "dist/server.js"]
