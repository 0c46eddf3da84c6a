/**
 * An exec probe that runs the image's health check (node dist/healthcheck.js) must be given longer than the
 * health check's own timeout (PROBE_TIMEOUT_MS), as the Dockerfile's HEALTHCHECK --timeout is: otherwise the
 * kubelet kills it first (timeoutSeconds defaults to 1 s) and a slow answer, or a node start slowed by a busy
 * container, is a failure without the check's own line saying why.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseAllDocuments } from 'yaml'
import { PROBE_TIMEOUT_MS } from '../src/health/probe.js'

interface Probe { exec?: { command?: string[] }, timeoutSeconds?: number }
interface Container { name: string, startupProbe?: Probe, livenessProbe?: Probe, readinessProbe?: Probe }

for (const file of ['deploy/kubernetes/examples/sidecar.yaml', 'examples/kubernetes/sidecar.yaml']) {
  t.test(file, async (t) => {
    const text = readFileSync(fileURLToPath(new URL(`../${file}`, import.meta.url)), 'utf8')
    const docs = parseAllDocuments(text).map((d) => d.toJS() as { kind?: string, spec?: { template?: { spec?: { containers?: Container[], initContainers?: Container[] } } } })
    let seen = 0
    for (const doc of docs.filter((d) => d?.kind === 'Deployment')) {
      const pod = doc.spec?.template?.spec
      for (const c of [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])]) {
        for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe'] as const) {
          const probe = c[kind]
          if (probe?.exec?.command?.includes('dist/healthcheck.js') !== true) continue
          seen++
          const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000
          t.ok(timeoutMs > PROBE_TIMEOUT_MS, `${c.name} ${kind}: timeoutSeconds ${probe.timeoutSeconds ?? '1 (default)'} leaves the health check its ${PROBE_TIMEOUT_MS} ms`)
        }
      }
    }
    t.ok(seen > 0, 'exec probes found')
  })
}
