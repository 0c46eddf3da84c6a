/**
 * src/metrics/cluster-metrics.ts when the primary does not answer a scrape: the answer is the scraped worker's
 * own series, and oidc_verifier_metrics_workers{state="missing"} must still say that others were left out, as a
 * number: README's alert `oidc_verifier_metrics_workers{state="missing"} > 0` never fires on NaN (in PromQL
 * every comparison with NaN is false), and this is the case where counters drop to one worker's share.
 */
import t from 'tap'
import { Counter, Registry } from 'prom-client'
import { fakePrimary } from './helpers/fake-primary.js'
import { ClusterMetrics } from '../src/metrics/cluster-metrics.js'
import { RENDER_MIN_INTERVAL_MS } from '../src/metrics/coalesce.js'
import { parseMetrics, valueOf } from './helpers/prometheus.js'
import { waitFor } from './helpers/wait-for.js'


function registryWith (count: number): Registry {
  const registry = new Registry()
  new Counter({ name: 'c_total', help: 'c', registers: [registry] }).inc(count)
  return registry
}

t.test('the primary silent: the other workers are counted missing by the last count known, never NaN', async (t) => {
  const own = registryWith(3)
  const primary = fakePrimary()
  const metrics = new ClusterMetrics(own, primary)
  t.teardown(() => { metrics.close() })

  // Nothing known yet: still at least one other worker (WORKERS > 1), not NaN.
  const unknown = parseMetrics(await metrics.text())
  t.equal(valueOf(unknown, 'c_total'), 3, 'this worker\'s own series')
  const missingUnknown = valueOf(unknown, 'oidc_verifier_metrics_workers', { state: 'missing' }) as number
  t.notOk(Number.isNaN(missingUnknown), 'a number')
  t.ok(missingUnknown > 0, `an alert on missing > 0 fires (${missingUnknown})`)

  // A scrape the primary answers: 3 workers of the host (2 answered, 1 missing).
  const answered = metrics.text()
  await new Promise((resolve) => setTimeout(resolve, 10))
  const ask = primary.sent.at(-1) as { type: string, ask: number }
  primary.tell({ type: 'oidc-verifier:metrics-result', ask: ask.ask, metrics: [await own.getMetricsAsJSON(), await registryWith(4).getMetricsAsJSON()], missing: 1 })
  t.equal(valueOf(parseMetrics(await answered), 'c_total'), 7)

  // Then the primary does not answer: this worker's own series, the two others missing.
  const silent = parseMetrics(await metrics.text())
  t.equal(valueOf(silent, 'c_total'), 3)
  t.equal(valueOf(silent, 'oidc_verifier_metrics_workers', { state: 'answered' }), 1)
  t.equal(valueOf(silent, 'oidc_verifier_metrics_workers', { state: 'missing' }), 2, 'the last count known (3 workers) less this one')
})

t.test('concurrent scrapes on one worker share one ask: the primary sends that worker one result, not one per scrape', async (t) => {
  const own = registryWith(3)
  const primary = fakePrimary()
  const metrics = new ClusterMetrics(own, primary)
  t.teardown(() => { metrics.close() })
  const asks = (): Array<{ type: string, ask: number }> => primary.sent.filter((m) => m.type === 'oidc-verifier:metrics-ask') as Array<{ type: string, ask: number }>
  const scrapes = Array.from({ length: 50 }, async () => await metrics.text())
  await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(asks().length, 1, 'one ask for 50 scrapes in flight together')
  for (const { ask } of asks()) {
    primary.tell({ type: 'oidc-verifier:metrics-result', ask, metrics: [await own.getMetricsAsJSON(), await registryWith(4).getMetricsAsJSON()], missing: 0 })
  }
  for (const text of await Promise.all(scrapes)) t.equal(valueOf(parseMetrics(text), 'c_total'), 7)
  // The next scrape, after that one has ended, asks again (asks start at least RENDER_MIN_INTERVAL_MS apart).
  const next = metrics.text()
  await new Promise((resolve) => setTimeout(resolve, RENDER_MIN_INTERVAL_MS + 10))
  t.equal(asks().length, 2)
  primary.tell({ type: 'oidc-verifier:metrics-result', ask: asks()[1]?.ask, metrics: [await own.getMetricsAsJSON()], missing: 1 })
  t.equal(valueOf(parseMetrics(await next), 'oidc_verifier_metrics_workers', { state: 'missing' }), 1)
})

t.test('a result from the primary that is not one (missing not a count, metrics not a list of lists) is no answer, never exported', async (t) => {
  const own = registryWith(3)
  const primary = fakePrimary()
  const metrics = new ClusterMetrics(own, primary)
  t.teardown(() => { metrics.close() })
  let lastAsk = -1
  /**
   * A scrape, told `result` for its ask (sent on the next turn, which scrapes of the same turn share, once asks'
   * interval has passed since the last: waited for first, so that the result answers this scrape's own ask).
   */
  const scrape = async (result: Record<string, unknown>): Promise<ReturnType<typeof parseMetrics>> => {
    await new Promise((resolve) => { setTimeout(resolve, RENDER_MIN_INTERVAL_MS) })
    const text = metrics.text()
    await new Promise((resolve) => { setImmediate(resolve) })
    const ask = primary.sent.at(-1) as { type: string, ask: number }
    t.equal(ask.type, 'oidc-verifier:metrics-ask')
    t.ok(ask.ask > lastAsk, 'a new ask: the result is this scrape\'s')
    lastAsk = ask.ask
    primary.tell({ type: 'oidc-verifier:metrics-result', ask: ask.ask, ...result })
    return parseMetrics(await text)
  }
  const good = [await own.getMetricsAsJSON(), await registryWith(4).getMetricsAsJSON()]
  // 3 workers of the host known: 2 answered, 1 missing.
  t.equal(valueOf(await scrape({ metrics: good, missing: 1 }), 'c_total'), 7)
  for (const [name, result] of [
    ['missing NaN', { metrics: good, missing: Number.NaN }],
    ['missing negative', { metrics: good, missing: -1 }],
    ['missing infinite', { metrics: good, missing: Number.POSITIVE_INFINITY }],
    ['missing a fraction', { metrics: good, missing: 0.5 }],
    ['missing a string', { metrics: good, missing: '1' }],
    ['missing absent', { metrics: good }],
    ['metrics not a list', { metrics: { a: good[0] }, missing: 1 }],
    ['metrics with an entry not a list', { metrics: [good[0], 'b'], missing: 1 }],
    ['metrics with series not in getMetricsAsJSON()\'s shape', { metrics: [good[0], [null]], missing: 1 }],
    // Added up without complaint, but no text can be made of them.
    ['metrics with a series without a name', { metrics: [good[0], [{ help: 'h', type: 'counter', aggregator: 'sum', values: [] }]], missing: 1 }],
    ['metrics with a series named as the workers gauge', { metrics: [good[0], [{ name: 'oidc_verifier_metrics_workers', help: 'h', type: 'gauge', aggregator: 'sum', values: [] }]], missing: 1 }]
  ] as const) {
    const samples = await scrape(result)
    // As when the primary is silent: this worker's own series, the others counted missing by the last count known.
    t.equal(valueOf(samples, 'c_total'), 3, `${name}: this worker's own series`)
    t.equal(valueOf(samples, 'oidc_verifier_metrics_workers', { state: 'answered' }), 1, `${name}: one answered`)
    t.equal(valueOf(samples, 'oidc_verifier_metrics_workers', { state: 'missing' }), 2, `${name}: two missing, from the last count known (3 workers)`)
  }
})

t.test('a scrape that comes while the worker asks the primary waits for the next ask, and counts what came before it', async (t) => {
  const own = new Registry()
  const counter = new Counter({ name: 'c_total', help: 'c', registers: [own] })
  const primary = fakePrimary()
  const metrics = new ClusterMetrics(own, primary)
  t.teardown(() => { metrics.close() })
  const asks = (): Array<{ type: string, ask: number }> => primary.sent.filter((m) => m.type === 'oidc-verifier:metrics-ask') as Array<{ type: string, ask: number }>
  const turn = async (): Promise<void> => { await new Promise((resolve) => { setImmediate(resolve) }) }
  const other = await registryWith(4).getMetricsAsJSON()

  const first = metrics.text()
  await turn()
  t.equal(asks().length, 1)
  // The primary collects now: this worker's answer is its series as they are (copied, as IPC does).
  const before: unknown = JSON.parse(JSON.stringify(await own.getMetricsAsJSON()))
  counter.inc()
  const later = Array.from({ length: 30 }, async () => await metrics.text())
  await turn()
  t.equal(asks().length, 1, 'no second ask while one is in progress')
  primary.tell({ type: 'oidc-verifier:metrics-result', ask: asks()[0]?.ask, metrics: [before, other], missing: 0 })
  t.equal(valueOf(parseMetrics(await first), 'c_total'), 4, 'the first scrape: the collection it asked for')
  await waitFor('the second ask', () => asks().length >= 2, 5000, 5)
  t.equal(asks().length, 2, 'one ask for the 30 scrapes that came meanwhile, sent once the first ended (and the asks\' interval passed)')
  primary.tell({ type: 'oidc-verifier:metrics-result', ask: asks()[1]?.ask, metrics: [await own.getMetricsAsJSON(), other], missing: 0 })
  for (const text of await Promise.all(later)) t.equal(valueOf(parseMetrics(text), 'c_total'), 5, 'counts the increment made before the scrape')
  t.equal(asks().length, 2, '31 scrapes, 2 asks')
})

t.test('scrapes waiting behind an ask the primary never answers end too: each its own series, none waits for ever', async (t) => {
  const primary = fakePrimary()
  const metrics = new ClusterMetrics(registryWith(3), primary)
  t.teardown(() => { metrics.close() })
  const first = metrics.text()
  await new Promise((resolve) => { setImmediate(resolve) })
  const later = Array.from({ length: 10 }, async () => await metrics.text())
  for (const text of [await first, ...await Promise.all(later)]) {
    const samples = parseMetrics(text)
    t.equal(valueOf(samples, 'c_total'), 3)
    t.equal(valueOf(samples, 'oidc_verifier_metrics_workers', { state: 'missing' }), 1)
  }
  t.equal(primary.sent.filter((m) => m.type === 'oidc-verifier:metrics-ask').length, 2)
})
