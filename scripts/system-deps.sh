#!/usr/bin/env bash
# The system packages the tests need (the real servers the service meets), installed when missing.
# Run by `npm test` (pretest) and by .ci/run. As root it installs them with apt-get; otherwise it says how.
set -euo pipefail
# openssl: certificates for the TLS and mutual-TLS tests (test/helpers/certs.ts)
# nginx: the forward-auth tests put a real nginx in front of an app (test/helpers/nginx.ts)
# redis-server: the Redis revocation store is tested against a real Redis (test/helpers/redis.ts)
PACKAGES=(openssl nginx redis-server)

missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "The tests need: ${missing[*]} (not installed, and there is no apt-get here). Install them and run again." >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "The tests need: ${missing[*]}. Install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing the system packages the tests need: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
