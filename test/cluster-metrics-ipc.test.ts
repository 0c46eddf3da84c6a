/**
 * /metrics across the workers of one host (src/metrics/cluster-metrics.ts), with stand-ins for the IPC channel:
 * the primary's collection (one at a time, the next shared by the asks that arrive during one, bounded in time) and
 * the worker's aggregation; test/cluster-metrics.test.ts runs real workers.
 */
import t, { type Test } from 'tap'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { fakePrimary } from './helpers/fake-primary.js'
import { ClusterMetrics, serveClusterMetrics } from '../src/metrics/cluster-metrics.js'
import { parseMetrics, valueOf } from './helpers/prometheus.js'

interface FakeWorker { id: number, sent: Array<Record<string, unknown>>, dead: boolean, isDead: () => boolean, isConnected: () => boolean, send: (m: Record<string, unknown>, h: unknown, o: unknown, cb: () => void) => boolean }

/** serveClusterMetrics() with fake workers: `worker(id)` makes one, `say` and `exit` are the cluster's events. */
async function fakeCluster (t: Test): Promise<{ worker: (id: number) => FakeWorker, say: (w: FakeWorker, message: unknown) => void, exit: (w: FakeWorker) => void, collects: (w: FakeWorker) => Array<Record<string, unknown>>, results: (w: FakeWorker) => Array<Record<string, unknown>> }> {
  const cluster = (await import('node:cluster')).default
  const before = { message: new Set(cluster.listeners('message')), exit: new Set(cluster.listeners('exit')) }
  const workers: Record<string, FakeWorker> = {}
  const worker = (id: number): FakeWorker => {
    const w: FakeWorker = { id, sent: [], dead: false, isDead: () => w.dead, isConnected: () => !w.dead, send: (m, _h, _o, cb) => { w.sent.push(m); cb(); return true } }
    workers[String(id)] = w
    return w
  }
  const saved = cluster.workers
  Object.defineProperty(cluster, 'workers', { value: workers, configurable: true, writable: true })
  serveClusterMetrics(100)
  const added = (event: 'message' | 'exit'): Array<(...args: unknown[]) => void> => cluster.listeners(event).filter((l) => !before[event].has(l)) as Array<(...args: unknown[]) => void>
  const [onMessage] = added('message')
  const [onExit] = added('exit')
  t.teardown(() => {
    for (const event of ['message', 'exit'] as const) for (const l of added(event)) cluster.off(event, l)
    Object.defineProperty(cluster, 'workers', { value: saved, configurable: true, writable: true })
  })
  return {
    worker,
    say: (w, message) => { onMessage?.(w, message) },
    exit: (w) => { w.dead = true; onExit?.(w) },
    collects: (w) => w.sent.filter((m) => m.type === 'oidc-verifier:metrics-collect'),
    results: (w) => w.sent.filter((m) => m.type === 'oidc-verifier:metrics-result')
  }
}

t.test('asks from every worker during a collection cost one collection more; a worker that dies waiting is not answered', async (t) => {
  const { worker, say, exit, collects, results } = await fakeCluster(t)
  const ws = [1, 2, 3, 4].map(worker)
  for (const w of ws) say(w, { type: 'oidc-verifier:metrics-ready' })
  say(ws[0] as FakeWorker, { type: 'oidc-verifier:metrics-ask', ask: 1 })
  const first = collects(ws[0] as FakeWorker)[0]?.round
  for (let i = 0; i < 25; i++) for (const w of ws) say(w, { type: 'oidc-verifier:metrics-ask', ask: 100 + i })
  const dying = ws[3] as FakeWorker
  // It answers the collection in progress, then dies with its 25 asks waiting for the next.
  say(dying, { type: 'oidc-verifier:metrics-answer', round: first, metrics: ['D'] })
  exit(dying)
  for (const w of ws.slice(0, 3)) say(w, { type: 'oidc-verifier:metrics-answer', round: first, metrics: [`w${w.id}`] })
  const live = ws.slice(0, 3)
  t.same(live.map((w) => collects(w).length), [2, 2, 2], '101 asks, 2 collections')
  t.equal(results(ws[0] as FakeWorker).length, 1, 'the first collection answers only the ask that started it')
  const second = collects(ws[0] as FakeWorker)[1]?.round
  for (const w of live) say(w, { type: 'oidc-verifier:metrics-answer', round: second, metrics: [`w${w.id}'`] })
  for (const w of live) {
    const asked = results(w).filter((r) => (r.ask as number) >= 100)
    t.equal(asked.length, 25, `worker ${w.id}: each ask of the meantime answered`)
    t.same(new Set(asked.map((r) => JSON.stringify(r.metrics))), new Set([JSON.stringify([['w1\''], ['w2\''], ['w3\'']])]), 'by the second collection')
  }
  t.same(results(dying), [], 'nothing sent to the worker that died')
  t.same(live.map((w) => collects(w).length), [2, 2, 2], 'no third collection: nothing waits')

  // Only the dead worker's asks waiting: the collection in progress ends, and no other starts for nobody.
  const lone = ws[0] as FakeWorker
  say(lone, { type: 'oidc-verifier:metrics-ask', ask: 500 })
  const late = worker(5)
  say(late, { type: 'oidc-verifier:metrics-ask', ask: 600 })
  exit(late)
  for (const w of live) say(w, { type: 'oidc-verifier:metrics-answer', round: collects(w)[2]?.round, metrics: ['x'] })
  t.equal(results(lone).at(-1)?.ask, 500)
  t.same(live.map((w) => collects(w).length), [3, 3, 3])
})

t.test('the primary asks every ready worker once per collection, shares the next between the asks that came during one, and counts the missing', async (t) => {
  const { worker, say, exit, collects, results } = await fakeCluster(t)

  const a = worker(1)
  const b = worker(2)
  const starting = worker(3)
  say(a, { type: 'oidc-verifier:metrics-ready' })
  say(b, { type: 'oidc-verifier:metrics-ready' })
  say(a, { type: 'oidc-verifier:metrics-ask', ask: 7 })
  t.equal(collects(a).length, 1)
  t.equal(collects(b).length, 1)
  t.equal(collects(starting).length, 0, 'a worker that has not said it answers is not asked')
  const round = collects(a)[0]?.round
  say(a, { type: 'oidc-verifier:metrics-answer', round, metrics: ['A'] })
  // a has answered: b's scrape, which comes now, may count what a's answer does not have.
  say(b, { type: 'oidc-verifier:metrics-ask', ask: 1 })
  say(a, { type: 'oidc-verifier:metrics-ask', ask: 2 })
  t.equal(collects(a).length + collects(b).length, 2, 'an ask during a collection does not start another')
  say(a, { type: 'oidc-verifier:metrics-answer', round, metrics: ['again'] })
  t.same(results(a), [], 'not before every worker asked has answered')
  say(b, { type: 'oidc-verifier:metrics-answer', round: 999, metrics: ['old'] })
  t.same(results(a), [], 'an answer to another collection is not one')
  say(b, { type: 'oidc-verifier:metrics-answer', round, metrics: ['B'] })
  t.same(results(a), [{ type: 'oidc-verifier:metrics-result', ask: 7, metrics: [['A'], ['B']], missing: 1, retired: [] }], 'the starting worker is counted missing at once, not waited for')
  t.same(results(b), [], 'an ask that came during a collection is not answered by it (a had answered before it came)')
  t.equal(collects(a).length, 2, 'the next collection starts as that one ends')
  t.equal(collects(b).length, 2)
  const shared = collects(a)[1]?.round
  t.not(shared, round)
  say(a, { type: 'oidc-verifier:metrics-answer', round: shared, metrics: ['A1'] })
  say(b, { type: 'oidc-verifier:metrics-answer', round: shared, metrics: ['B1'] })
  t.same(results(b), [{ type: 'oidc-verifier:metrics-result', ask: 1, metrics: [['A1'], ['B1']], missing: 1, retired: [] }], 'answered by the next collection')
  t.same(results(a).at(-1), { type: 'oidc-verifier:metrics-result', ask: 2, metrics: [['A1'], ['B1']], missing: 1, retired: [] }, 'which every ask of the meantime shares')
  t.equal(collects(a).length, 2, 'and nothing waiting: no collection after it')

  // b does not answer: the collection ends at the timeout without it.
  exit(starting)
  say(a, { type: 'oidc-verifier:metrics-ask', ask: 8 })
  const second = collects(a)[2]?.round
  t.not(second, shared)
  say(a, { type: 'oidc-verifier:metrics-answer', round: second, metrics: ['A2'] })
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.same(results(a).at(-1), { type: 'oidc-verifier:metrics-result', ask: 8, metrics: [['A2']], missing: 1, retired: [] }, 'b left out, counted missing')
  say(b, { type: 'oidc-verifier:metrics-answer', round: second, metrics: ['late'] })
  t.equal(results(a).length, 3, 'a late answer changes nothing')

  // A worker that dies during a collection ends the wait for it.
  say(a, { type: 'oidc-verifier:metrics-ask', ask: 9 })
  say(a, { type: 'oidc-verifier:metrics-answer', round: collects(a)[3]?.round, metrics: ['A3'] })
  exit(b)
  t.same(results(a).at(-1), { type: 'oidc-verifier:metrics-result', ask: 9, metrics: [['A3']], missing: 1, retired: [] }, 'at once, not at the timeout')
  say(a, { type: 'oidc-verifier:metrics-answer', round: 'x', metrics: 'junk' })
  say(a, null)
  say(a, 'garbage')
  t.equal(results(a).length, 4, 'other messages change nothing')

  // A worker whose registry failed answers without metrics: counted missing, its answer not added.
  say(a, { type: 'oidc-verifier:metrics-ask', ask: 10 })
  say(a, { type: 'oidc-verifier:metrics-answer', round: collects(a)[4]?.round })
  t.same(results(a).at(-1), { type: 'oidc-verifier:metrics-result', ask: 10, metrics: [], missing: 1, retired: [] }, 'a failed answer is a missing worker')

  // No worker ready to be asked: the answer comes at once, not at the timeout.
  exit(a)
  const fresh = worker(4)
  say(fresh, { type: 'oidc-verifier:metrics-ask', ask: 11 })
  t.same(results(fresh), [{ type: 'oidc-verifier:metrics-result', ask: 11, metrics: [], missing: 1, retired: [] }], 'nobody to wait for')
})


/** A worker's answer: getMetricsAsJSON() of a counter and a histogram per issuer, and a gauge. */
async function answerOf (counts: Record<string, number>, gauge: number): Promise<unknown[]> {
  const registry = new Registry()
  const counter = new Counter({ name: 'v_total', help: 'v', labelNames: ['issuer'] as const, registers: [registry] })
  const histogram = new Histogram({ name: 'd_seconds', help: 'd', labelNames: ['issuer'] as const, buckets: [1], registers: [registry] })
  for (const [issuer, n] of Object.entries(counts)) {
    counter.inc({ issuer }, n)
    for (let i = 0; i < n; i++) histogram.observe({ issuer }, 0.5)
  }
  new Gauge({ name: 'g_now', help: 'g', registers: [registry], aggregator: 'sum' }).set(gauge)
  return await registry.getMetricsAsJSON()
}

t.test('a worker that exits leaves its counters and histograms, not its gauges, in every result after it', async (t) => {
  const { worker, say, exit, collects, results } = await fakeCluster(t)
  const [a, b] = [worker(1), worker(2)] as [FakeWorker, FakeWorker]
  for (const w of [a, b]) say(w, { type: 'oidc-verifier:metrics-ready' })
  const answerA = await answerOf({ c: 5 }, 1)
  const answerB = await answerOf({ c: 3, gone: 2 }, 1)
  say(a, { type: 'oidc-verifier:metrics-ask', ask: 1 })
  say(a, { type: 'oidc-verifier:metrics-answer', round: collects(a)[0]?.round, metrics: answerA })
  say(b, { type: 'oidc-verifier:metrics-answer', round: collects(b)[0]?.round, metrics: answerB })
  t.same(results(a)[0], { type: 'oidc-verifier:metrics-result', ask: 1, metrics: [answerA, answerB], missing: 0, retired: [] })

  // b answers the next collection, then exits before it ends: its answer is counted once, as retired.
  say(a, { type: 'oidc-verifier:metrics-ask', ask: 2 })
  say(b, { type: 'oidc-verifier:metrics-answer', round: collects(b)[1]?.round, metrics: answerB })
  exit(b)
  say(a, { type: 'oidc-verifier:metrics-answer', round: collects(a)[1]?.round, metrics: answerA })
  const result = results(a)[1] as { metrics: unknown[], missing: number, retired: Array<Array<{ name: string }>> }
  t.same(result.metrics, [answerA], 'the live worker\'s answer')
  t.equal(result.missing, 0)
  t.same(result.retired.map((part) => part.map((m) => m.name)), [['v_total', 'd_seconds']], 'the exited worker\'s counter and histogram, not its gauge')

  // The worker that takes the scrape adds them in.
  const primary = fakePrimary()
  const metrics = new ClusterMetrics(new Registry(), primary)
  t.teardown(() => { metrics.close() })
  const text = metrics.text()
  await new Promise((resolve) => setTimeout(resolve, 10))
  const ask = primary.sent.at(-1) as { ask: number }
  primary.tell({ type: 'oidc-verifier:metrics-result', ask: ask.ask, metrics: result.metrics, missing: 0, retired: result.retired })
  const samples = parseMetrics(await text)
  t.equal(valueOf(samples, 'v_total', { issuer: 'c' }), 8, 'the host\'s count does not go down when a worker exits')
  t.equal(valueOf(samples, 'd_seconds_count', { issuer: 'c' }), 8, 'histograms too')
  t.equal(valueOf(samples, 'g_now'), 1, 'a gauge is the live workers\' only')
  t.equal(valueOf(samples, 'v_total', { issuer: 'gone' }), undefined, 'the series of an issuer no live worker has (removed by a reload) do not come back')
  t.equal(valueOf(samples, 'oidc_verifier_metrics_workers', { state: 'answered' }), 1)
})

t.test('the retired series of many exited workers are added up into one now and then, and still count each', async (t) => {
  const { worker, say, exit, collects, results } = await fakeCluster(t)
  const a = worker(1)
  say(a, { type: 'oidc-verifier:metrics-ready' })
  let asks = 0
  const collect = async (w: FakeWorker, answer: unknown[]): Promise<void> => {
    say(a, { type: 'oidc-verifier:metrics-ask', ask: ++asks })
    say(w, { type: 'oidc-verifier:metrics-answer', round: collects(w).at(-1)?.round, metrics: answer })
    if (w !== a) say(a, { type: 'oidc-verifier:metrics-answer', round: collects(a).at(-1)?.round, metrics: await answerOf({ c: 1 }, 0) })
  }
  for (let id = 2; id < 12; id++) {
    const w = worker(id)
    say(w, { type: 'oidc-verifier:metrics-ready' })
    await collect(w, await answerOf({ c: 10 }, 0))
    exit(w)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  await collect(a, await answerOf({ c: 1 }, 0))
  const retired = (results(a).at(-1) as { retired: unknown[][] }).retired
  t.ok(retired.length <= 5, `${retired.length} parts for 10 exited workers`)
  const primary = fakePrimary()
  const metrics = new ClusterMetrics(new Registry(), primary)
  t.teardown(() => { metrics.close() })
  const text = metrics.text()
  await new Promise((resolve) => setTimeout(resolve, 10))
  primary.tell({ type: 'oidc-verifier:metrics-result', ask: (primary.sent.at(-1) as { ask: number }).ask, metrics: [await answerOf({ c: 1 }, 0)], missing: 0, retired })
  t.equal(valueOf(parseMetrics(await text), 'v_total', { issuer: 'c' }), 101, 'ten workers\' 10 each, and the live one\'s 1')
})

/** A worker's registry: a counter, and a gauge merged by `min`. */
function registryWith (count: number, keys: number): Registry {
  const registry = new Registry()
  new Counter({ name: 'c_total', help: 'c', registers: [registry] }).inc(count)
  new Gauge({ name: 'g_keys', help: 'g', labelNames: ['issuer'] as const, registers: [registry], aggregator: 'min' }).set({ issuer: 'i' }, keys)
  return registry
}

t.test('a worker answers the primary with its metrics, and aggregates the host\'s with each metric\'s aggregator', async (t) => {
  const own = registryWith(3, 2)
  const primary = fakePrimary()
  const metrics = new ClusterMetrics(own, primary)
  t.teardown(() => { metrics.close() })
  t.same(primary.sent, [{ type: 'oidc-verifier:metrics-ready' }], 'says it answers')
  primary.tell({ type: 'oidc-verifier:metrics-collect', round: 4 })
  await new Promise((resolve) => setTimeout(resolve, 10))
  const answer = primary.sent[1] as { type: string, round: number, metrics: unknown[] }
  t.match(answer, { type: 'oidc-verifier:metrics-answer', round: 4 })
  t.same(answer.metrics, await own.getMetricsAsJSON(), 'its getMetricsAsJSON()')

  const text = metrics.text()
  await new Promise((resolve) => setTimeout(resolve, 10))
  const ask = primary.sent.at(-1) as { type: string, ask: number }
  t.equal(ask.type, 'oidc-verifier:metrics-ask')
  primary.tell({ type: 'oidc-verifier:metrics-result', ask: ask.ask + 1, metrics: [], missing: 5 })
  primary.tell({ type: 'oidc-verifier:metrics-result', ask: ask.ask, metrics: [await own.getMetricsAsJSON(), await registryWith(4, 1).getMetricsAsJSON()], missing: 1, retired: [] })
  const samples = parseMetrics(await text)
  t.equal(valueOf(samples, 'c_total'), 7, 'counters add up')
  t.equal(valueOf(samples, 'g_keys', { issuer: 'i' }), 1, 'a gauge by its own aggregator')
  t.equal(valueOf(samples, 'oidc_verifier_metrics_workers', { state: 'answered' }), 2)
  t.equal(valueOf(samples, 'oidc_verifier_metrics_workers', { state: 'missing' }), 1)
})

t.test('no answer from the primary: the worker\'s own metrics, the others counted missing (at least one, never NaN)', async (t) => {
  const primary = fakePrimary()
  const metrics = new ClusterMetrics(registryWith(3, 2), primary)
  t.teardown(() => { metrics.close() })
  const started = Date.now()
  const samples = parseMetrics(await metrics.text())
  t.ok(Date.now() - started < 4_000, 'bounded')
  t.equal(valueOf(samples, 'c_total'), 3)
  t.equal(valueOf(samples, 'oidc_verifier_metrics_workers', { state: 'answered' }), 1)
  t.equal(valueOf(samples, 'oidc_verifier_metrics_workers', { state: 'missing' }), 1, 'no count known yet: at least one')
})
