/**
 * /metrics renders are coalesced (src/metrics/coalesce.ts): concurrent scrapes cost at most two renders, never
 * share one that started before they came (an answer counts everything counted before its request), and a render
 * that fails answers every scrape that shared it, as it would one alone; nothing waits for ever.
 */
import t from 'tap'
import { Gauge } from 'prom-client'
import { buildApp } from '../src/app.js'
import { coalesce, RENDER_MIN_INTERVAL_MS } from '../src/metrics/coalesce.js'
import { ServiceMetrics } from '../src/metrics/metrics.js'
import { configFor } from './helpers/config.js'
import { parseMetrics, valueOf } from './helpers/prometheus.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

/** A gate a run waits at until the test opens it. */
function gate (): { opened: Promise<void>, open: () => void } {
  let open = (): void => {}
  const opened = new Promise<void>((resolve) => { open = resolve })
  return { opened, open }
}

const turn = async (): Promise<void> => { await new Promise((resolve) => { setImmediate(resolve) }) }

t.test('coalesce: calls during a run share the next one, which starts after they came and when the run ends', async (t) => {
  let counted = 0
  const gates: Array<ReturnType<typeof gate>> = []
  /** A run reads `counted` as it starts (as a render reads the series), then waits at its gate. */
  const run = coalesce(async () => {
    const read = counted
    const g = gate()
    gates.push(g)
    await g.opened
    return read
  })
  const first = Array.from({ length: 20 }, async () => await run())
  await turn()
  t.equal(gates.length, 1, 'calls made in the same turn share one run')
  counted++
  const second = Array.from({ length: 30 }, async () => await run())
  await turn()
  t.equal(gates.length, 1, 'a call during a run does not start another while it is in progress')
  gates[0]?.open()
  t.same(new Set(await Promise.all(first)), new Set([0]))
  await turn()
  t.equal(gates.length, 2, 'the next run starts as the first ends')
  counted++
  const third = run()
  await turn()
  t.equal(gates.length, 2, 'a call during the second run waits for a third')
  gates[1]?.open()
  t.same(new Set(await Promise.all(second)), new Set([1]), 'the calls of the meantime see what was counted before them')
  await turn()
  gates[2]?.open()
  t.equal(await third, 2)
  t.equal(gates.length, 3, '51 calls, 3 runs')
})

t.test('coalesce: a run that fails fails every call that shares it; the next is tried afresh', async (t) => {
  let runs = 0
  const run = coalesce(async () => {
    runs++
    if (runs === 1) throw new Error('render failed')
    if (runs === 2) return await Promise.reject(new Error('render failed again'))
    return runs
  })
  const failed = await Promise.allSettled(Array.from({ length: 10 }, async () => await run()))
  t.same(failed.map((r) => r.status === 'rejected' ? (r.reason as Error).message : 'fulfilled'), Array(10).fill('render failed'), 'each call: the error, none left waiting')
  const again = await Promise.allSettled([run(), run()])
  t.same(again.map((r) => r.status), ['rejected', 'rejected'])
  t.equal(await run(), 3)
  t.equal(runs, 3)
})

t.test('coalesce: a run that throws before its first await fails its calls too', async (t) => {
  let runs = 0
  const run = coalesce((): Promise<number> => {
    runs++
    if (runs === 1) throw new Error('at once')
    return Promise.resolve(runs)
  })
  await t.rejects(run(), { message: 'at once' })
  t.equal(await run(), 2)
})

t.test('coalesce minIntervalMs: callers that ask again as soon as answered (a flood) get runs that start that far apart', async (t) => {
  const starts: number[] = []
  const run = coalesce(async () => { starts.push(Date.now()); return starts.length }, { minIntervalMs: 100 })
  // 20 callers, each asking again as soon as it has its answer, for 40 answers apiece: without the interval a run
  // would start as each ended (hundreds of runs back to back); with it, 40 rounds of about 100 ms each.
  await Promise.all(Array.from({ length: 20 }, async () => { for (let i = 0; i < 40; i++) await run() }))
  const gaps = starts.slice(1).map((at, i) => at - (starts[i] as number))
  // Timers may fire a millisecond or two early by Date.now()'s clock.
  t.ok(gaps.every((gap) => gap >= 98), `every run at least 100 ms after the one before (shortest gap ${Math.min(...gaps)} ms)`)
  t.ok(starts.length <= 41, `800 calls, ${starts.length} runs`)
})

t.test('coalesce minIntervalMs: a call once the interval has passed starts its run on the next turn, without a timer', async (t) => {
  let clock = 1_000_000
  let runs = 0
  const run = coalesce(async () => ++runs, { minIntervalMs: 60_000, now: () => clock })
  t.equal(await run(), 1, 'the first run: no wait')
  clock += 60_000 // the interval has passed (on the clock it was given; no real timer could be waited for here)
  const second = run()
  await turn()
  t.equal(runs, 2, 'the run started on the next turn of the event loop')
  t.equal(await second, 2)
})

t.test('ServiceMetrics.text(): renders start at least RENDER_MIN_INTERVAL_MS apart, so scrapes in a row wait for it', async (t) => {
  const metrics = new ServiceMetrics({ status: () => [] })
  const starts: number[] = []
  const render = metrics.registry.metrics.bind(metrics.registry)
  metrics.registry.metrics = async () => { starts.push(Date.now()); return await render() }
  for (let i = 0; i < 5; i++) await metrics.text()
  const gaps = starts.slice(1).map((at, i) => at - (starts[i] as number))
  t.equal(starts.length, 5)
  // Timers may fire a millisecond or two early by Date.now()'s clock.
  t.ok(gaps.every((gap) => gap >= RENDER_MIN_INTERVAL_MS - 2), `renders ${gaps.join(', ')} ms apart (at least ${RENDER_MIN_INTERVAL_MS})`)
})

t.test('ServiceMetrics.text(): 50 concurrent scrapes cost two renders, and each counts what came before it', async (t) => {
  let renders = 0
  let held: ReturnType<typeof gate> | undefined
  // The issuers' status is read once per render by each key gauge: a spy on renders, and a place to hold one.
  const metrics = new ServiceMetrics({ status: () => [] })
  new Gauge({
    name: 'test_renders',
    help: 'renders',
    registers: [metrics.registry],
    async collect () {
      renders++
      if (held !== undefined) await held.opened
    }
  })
  await metrics.text()
  t.equal(renders, 1)
  renders = 0
  await new Promise((resolve) => { setTimeout(resolve, RENDER_MIN_INTERVAL_MS) }) // the next render may start at once

  held = gate()
  const first = metrics.text()
  await turn()
  t.equal(renders, 1, 'a render in progress, held')
  metrics.revocationRecorded('api', 'sub')
  const rest = Array.from({ length: 49 }, async () => await metrics.text())
  await turn()
  t.equal(renders, 1, 'no render started for the scrapes that came during one')
  const firstHeld = held
  held = undefined
  firstHeld.open()
  const counted = (text: string): number | undefined => valueOf(parseMetrics(text), 'oidc_verifier_revocations_recorded_total', { source: 'api', kind: 'sub' })
  t.equal(counted(await first), undefined, 'the first render read its series before the revocation was counted')
  for (const text of await Promise.all(rest)) t.equal(counted(text), 1, 'a scrape that came after it was counted sees it')
  t.equal(renders, 2, '50 scrapes, 2 renders')
})

t.test('GET /metrics: a render that fails answers every concurrent scrape 500 internal_error, as one alone; the next render answers', async (t) => {
  const app = await buildApp(configFor([{ id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(makeKey('ES256')) }]))
  t.teardown(() => app.close())
  await app.ready()
  let failing = true
  let renders = 0
  new Gauge({
    name: 'test_failing',
    help: 'fails while the test says so',
    registers: [app.metrics?.registry].filter((r) => r !== undefined),
    collect () {
      renders++
      if (failing) throw new Error('collect failed')
    }
  })
  const alone = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(alone.statusCode, 500)
  t.equal(alone.json().code, 'internal_error')
  const together = await Promise.all(Array.from({ length: 30 }, async () => await app.inject({ method: 'GET', url: '/metrics' })))
  for (const res of together) {
    t.equal(res.statusCode, 500)
    t.same({ ...res.json(), requestId: undefined }, { ...alone.json(), requestId: undefined }, 'the answer a scrape alone gets')
  }
  t.ok(renders < 31, `fewer renders than scrapes (${renders} for 31)`)
  failing = false
  const ok = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(ok.statusCode, 200)
  t.ok(ok.body.includes('test_failing'))
})
