/**
 * WORKERS=N: /metrics answers for the whole host, whichever worker takes the scrape (src/metrics/cluster-metrics.ts):
 * counters add up every worker's, per-issuer gauges are merged by their own aggregator (not summed), and a
 * worker that does not answer is left out within the timeout, counted in oidc_verifier_metrics_workers.
 */
import t, { type Test } from 'tap'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { CLUSTER_METRICS_TIMEOUT_MS } from '../src/metrics/cluster-metrics.js'
import { startJwksServer } from './helpers/jwks-server.js'
import { startNode, type StartedProcess } from './helpers/node-process.js'
import { parseMetrics, valueOf, type Sample } from './helpers/prometheus.js'
import { tempDir } from './helpers/temp-dir.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://cluster-metrics.example.com'
const key = makeKey('ES256')
// Process tests: each starts node with the TypeScript loader, several seconds apiece on a busy machine.
t.setTimeout(240_000)

/** `base`: where /metrics is served; `main`: the main port (/verify). */
interface Started { server: StartedProcess, base: string, main: string, pids: number[] }

/** WORKERS=2 with a JWKS-fetched issuer `c`; `base` is where /metrics is served (the ops port when `ops`). */
async function startTwo (t: Test, ops: boolean): Promise<Started> {
  const idp = await startJwksServer({ json: jwksOf(key) })
  t.teardown(() => idp.close())
  const dir = tempDir(t, {
    'config.yaml': stringify({
      server: { host: '127.0.0.1', port: 0, ...(ops ? { opsPort: 0 } : {}), logLevel: 'info', shutdownGraceSeconds: 2 },
      loadShedding: { enabled: false },
      issuers: [{ id: 'c', issuer: ISS, audiences: ['aud'], jwksUri: idp.jwksUrl }]
    })
  })
  const server = startNode('src/server.ts', ['--config', join(dir, 'config.yaml')], { env: { WORKERS: '2' } })
  const pids = (await server.waitForLine(/started 2 workers \(pids (\d+), (\d+)\)/, { timeoutMs: 60_000 })).slice(1).map(Number)
  t.teardown(() => {
    // A worker stopped by the test first: SIGKILL ends it even stopped; the primary's children are ours.
    for (const pid of pids) { try { process.kill(pid, 'SIGKILL') } catch { /* already gone */ } }
    server.kill()
  })
  const listening = ops ? /"listener":"ops"[^\n]*"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/ : /^(?!.*"listener":"ops").*"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/m
  const base = (await server.waitForLine(listening, { timeoutMs: 60_000 }))[1] as string
  const main = ops ? (await server.waitForLine(/^(?!.*"listener":"ops").*"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/m, { timeoutMs: 60_000 }))[1] as string : base
  await server.waitForLine(/"msg":"oidc-verifier listening"[\s\S]*"msg":"oidc-verifier listening"/, { timeoutMs: 60_000 })
  return { server, base, main, pids }
}

/** One scrape on a new connection (so that either worker may take it). */
async function scrape (base: string, timeoutMs = 10_000): Promise<{ samples: Sample[], ms: number }> {
  const started = Date.now()
  const res = await fetch(`${base}/metrics`, { headers: { connection: 'close' }, signal: AbortSignal.timeout(timeoutMs) })
  const text = await res.text()
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${text}`)
  return { samples: parseMetrics(text), ms: Date.now() - started }
}

/** Scrapes until both workers answer (a worker answers once it has started). */
async function bothAnswer (base: string): Promise<Sample[]> {
  for (let i = 0; i < 60; i++) {
    const { samples } = await scrape(base)
    if (valueOf(samples, 'oidc_verifier_metrics_workers', { state: 'answered' }) === 2) return samples
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  throw new Error('the two workers never both answered')
}

t.test('WORKERS=2: one scrape counts the verifications of both workers, per-issuer gauges are not doubled, and a worker that dies leaves its counts', async (t) => {
  const { base, server, pids } = await startTwo(t, false)
  await bothAnswer(base)
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  const sent = 40
  // Each on its own connection: the cluster hands new connections to the workers in turn.
  for (let i = 0; i < sent; i++) {
    const res = await fetch(`${base}/verify`, { method: 'POST', headers: { authorization: `Bearer ${token}`, connection: 'close' } })
    t.equal(res.status, 200)
    await res.arrayBuffer()
  }
  const nowSeconds = Date.now() / 1000
  // Several scrapes, each on a new connection (so taken by either worker): every one answers for the host.
  for (let i = 0; i < 4; i++) {
    const { samples } = await scrape(base)
    t.equal(valueOf(samples, 'oidc_verifier_verifications_total', { issuer: 'c', result: 'ok' }), sent, `scrape ${i}: every verification, whichever worker took it`)
    t.equal(valueOf(samples, 'oidc_verifier_verification_duration_seconds_count', { issuer: 'c', outcome: 'ok' }), sent, 'histograms add up too')
    // Each worker has its own verified-token cache, which keeps a token from its second verification on: two
    // misses per worker that saw the token, so four says that both workers verified it.
    t.equal(valueOf(samples, 'oidc_verifier_token_cache_misses_total', { issuer: 'c' }), 4, 'both workers took verifications')
    t.equal(valueOf(samples, 'oidc_verifier_metrics_workers', { state: 'answered' }), 2)
    t.equal(valueOf(samples, 'oidc_verifier_metrics_workers', { state: 'missing' }), 0)
    t.equal(valueOf(samples, 'oidc_verifier_keys', { issuer: 'c' }), 1, 'one key, not one per worker')
    t.equal(valueOf(samples, 'oidc_verifier_issuer_ready', { issuer: 'c' }), 1)
    t.equal(valueOf(samples, 'oidc_verifier_keys_state', { issuer: 'c', state: 'fresh' }), 1)
    t.equal(valueOf(samples, 'oidc_verifier_keys_state', { issuer: 'c', state: 'missing' }), 0)
    const refreshed = valueOf(samples, 'oidc_verifier_keys_last_refresh_timestamp_seconds', { issuer: 'c' }) as number
    t.ok(refreshed > nowSeconds - 120 && refreshed <= nowSeconds + 1, `a time, not a sum of times (${refreshed})`)
    t.ok((valueOf(samples, 'oidc_verifier_keys_age_seconds', { issuer: 'c' }) as number) < 120)
    t.equal(valueOf(samples, 'nodejs_version_info', { version: process.version }), 1, 'prom-client\'s own aggregators: version "first"')
    t.equal(samples.filter((s) => s.name === 'process_start_time_seconds').length, 0, 'and start time "omit"')
  }

  // A worker dies: what it counted stays in the host's counters (a drop would read as a counter reset).
  const before = server.output().length
  process.kill(pids[0] as number, 'SIGKILL')
  await server.waitForLine(/started replacement \d+/, { from: before })
  await server.waitForLine(/"msg":"oidc-verifier listening"/, { from: before, timeoutMs: 60_000 })
  let samples = await bothAnswer(base)
  // Until the replacement has fetched its keys, the host's keys gauge (the workers' least) is 0.
  for (let i = 0; i < 40 && valueOf(samples, 'oidc_verifier_keys', { issuer: 'c' }) !== 1; i++) {
    await new Promise((resolve) => setTimeout(resolve, 250))
    samples = (await scrape(base)).samples
  }
  t.equal(valueOf(samples, 'oidc_verifier_verifications_total', { issuer: 'c', result: 'ok' }), sent, 'after a worker died: every verification still counted')
  t.equal(valueOf(samples, 'oidc_verifier_verification_duration_seconds_count', { issuer: 'c', outcome: 'ok' }), sent, 'histograms too')
  t.equal(valueOf(samples, 'oidc_verifier_keys', { issuer: 'c' }), 1, 'gauges are the live workers\' own (not doubled by the one that died)')
})

t.test('WORKERS=2: concurrent scrapes each count every verification made before them', async (t) => {
  const { base } = await startTwo(t, false)
  await bothAnswer(base)
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  const burst = async (): Promise<Sample[][]> => await Promise.all(Array.from({ length: 20 }, async () => (await scrape(base)).samples))
  const counted = (samples: Sample[]): number | undefined => valueOf(samples, 'oidc_verifier_verifications_total', { issuer: 'c', result: 'ok' })
  for (let verified = 1; verified <= 5; verified++) {
    // Scrapes in flight while a verification is made, and more once it has been answered: those count it, even
    // when collections of the earlier ones are still running.
    const during = burst()
    const res = await fetch(`${base}/verify`, { method: 'POST', headers: { authorization: `Bearer ${token}`, connection: 'close' } })
    t.equal(res.status, 200)
    await res.arrayBuffer()
    const after = burst()
    for (const samples of await during) t.ok([verified - 1, verified].includes(counted(samples) ?? 0), 'a scrape made during the verification')
    const answers = await after
    t.same(new Set(answers.map(counted)), new Set([verified]), `20 scrapes after verification ${verified}: every one counts it`)
    t.same(new Set(answers.map((samples) => valueOf(samples, 'oidc_verifier_metrics_workers', { state: 'answered' }))), new Set([2]))
  }
})

t.test('WORKERS=2: a worker that does not answer is left out within the timeout, and counted missing (ops port)', async (t) => {
  const { server, base, pids, main } = await startTwo(t, true)
  await bothAnswer(base)
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  for (let i = 0; i < 10; i++) {
    const res = await fetch(`${main}/verify`, { method: 'POST', headers: { authorization: `Bearer ${token}`, connection: 'close' } })
    t.equal(res.status, 200)
    await res.arrayBuffer()
  }
  t.equal(valueOf((await scrape(base)).samples, 'oidc_verifier_verifications_total', { issuer: 'c', result: 'ok' }), 10)

  const stopped = pids[0] as number
  process.kill(stopped, 'SIGSTOP')
  t.teardown(() => { try { process.kill(stopped, 'SIGCONT') } catch { /* already gone */ } })
  // A scrape the cluster hands to the stopped worker waits (it has no answer to give): the next goes to the other.
  let answered: { samples: Sample[], ms: number } | undefined
  for (let i = 0; i < 4 && answered === undefined; i++) {
    try {
      answered = await scrape(base, CLUSTER_METRICS_TIMEOUT_MS + 3_000)
    } catch { /* taken by the stopped worker: the time is up, try again */ }
  }
  t.ok(answered !== undefined, 'a scrape taken by the running worker answers')
  const { samples, ms } = answered as { samples: Sample[], ms: number }
  t.ok(ms < CLUSTER_METRICS_TIMEOUT_MS + 2_000, `within the timeout (${ms} ms)`)
  t.equal(valueOf(samples, 'oidc_verifier_metrics_workers', { state: 'answered' }), 1)
  t.equal(valueOf(samples, 'oidc_verifier_metrics_workers', { state: 'missing' }), 1, 'the stopped worker is counted missing')
  const total = valueOf(samples, 'oidc_verifier_verifications_total', { issuer: 'c', result: 'ok' }) as number
  t.ok(total > 0 && total < 10, `only the running worker's share (${total})`)

  process.kill(stopped, 'SIGCONT')
  const back = await bothAnswer(base)
  t.equal(valueOf(back, 'oidc_verifier_verifications_total', { issuer: 'c', result: 'ok' }), 10, 'once it answers again, the whole count')
  t.equal(valueOf(back, 'oidc_verifier_metrics_workers', { state: 'missing' }), 0)
  server.child.kill('SIGTERM')
  t.equal((await server.exited).code, 0)
})
