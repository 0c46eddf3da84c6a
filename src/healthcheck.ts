/**
 * `node dist/healthcheck.js [PATH]`: the image's HEALTHCHECK, and an exec probe for a sidecar that listens on
 * loopback only. GETs PATH (default /healthz) on the local service and exits 0 on a 2xx, 1 otherwise, 2 on a
 * usage error. Node only: the runtime image has no shell, curl or wget.
 */
import { probe, probeUrl, ProbeTargetError } from './health/probe.js'

let url: URL
try {
  url = await probeUrl(process.argv[2], { warn: (message) => process.stderr.write(`healthcheck: ${message}\n`) })
} catch (err) {
  process.stderr.write(`healthcheck: ${err instanceof ProbeTargetError ? err.message : String(err)}\n`)
  process.exit(2)
}
const result = await probe(url)
const line = `healthcheck: GET ${url.href}: ${result.status !== undefined ? `status ${result.status}` : result.error ?? 'failed'}\n`
if (result.ok) process.stdout.write(line)
else process.stderr.write(line)
// Exit now, whatever the state of the socket: the answer is known.
process.exit(result.ok ? 0 : 1)
