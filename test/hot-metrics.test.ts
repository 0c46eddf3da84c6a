/**
 * HotCounter and HotHistogram must expose exactly what prom-client's own Counter and Histogram expose for the
 * same observations (same text, in both exposition formats), so that swapping them in changes no series.
 */
import t from 'tap'
import { Counter, Histogram, Registry } from 'prom-client'
import { HotCounter, HotHistogram } from '../src/metrics/hot-metrics.js'

const BOUNDS = [0.001, 0.01, 0.1, 1]
const OBSERVATIONS: Array<[string, string, number]> = [
  ['a', 'ok', 0.0005], ['a', 'ok', 0.001], ['a', 'ok', 0.0011], ['a', 'ok', 0.5], ['a', 'ok', 7],
  ['b', 'rejected', 0], ['b', 'rejected', 1], ['a', 'rejected', 0.02], ['quote"back\\slash', 'ok', 0.05]
]

async function both (openMetrics = false): Promise<{ ours: string, theirs: string }> {
  const oursRegistry = new Registry()
  const theirsRegistry = new Registry()
  if (openMetrics) {
    // The registries' type is bound to their content type; the runtime switch is what is tested.
    for (const r of [oursRegistry, theirsRegistry]) (r as unknown as Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>).setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
  }
  const counter = new HotCounter<'issuer' | 'result'>('x_total', 'Help "with" quotes\\.', oursRegistry)
  const histogram = new HotHistogram<'issuer' | 'result'>('x_seconds', 'Durations.', BOUNDS, oursRegistry)
  const promCounter = new Counter({ name: 'x_total', help: 'Help "with" quotes\\.', labelNames: ['issuer', 'result'], registers: [theirsRegistry] })
  const promHistogram = new Histogram({ name: 'x_seconds', help: 'Durations.', labelNames: ['issuer', 'result'], buckets: BOUNDS, registers: [theirsRegistry] })
  for (const [issuer, result, value] of OBSERVATIONS) {
    counter.inc(`${issuer}\n${result}`, () => ({ issuer, result }))
    histogram.observe(`${issuer}\n${result}`, () => ({ issuer, result }), value)
    promCounter.inc({ issuer, result })
    promHistogram.observe({ issuer, result }, value)
  }
  return { ours: await oursRegistry.metrics(), theirs: await theirsRegistry.metrics() }
}

t.test('the same text as prom-client for the same observations', async (t) => {
  const { ours, theirs } = await both()
  t.equal(ours, theirs)
  t.match(ours, /x_seconds_bucket\{le="0\.001",issuer="a",result="ok"\} 2/, 'a value equal to a bound counts in that bucket')
  t.match(ours, /x_seconds_bucket\{le="\+Inf",issuer="a",result="ok"\} 5/)
  t.match(ours, /issuer="quote\\"back\\\\slash"/, 'label values are escaped by the registry')
})

t.test('the same text in the OpenMetrics format', async (t) => {
  const { ours, theirs } = await both(true)
  t.match(ours, /# EOF/)
  t.equal(ours, theirs)
})

t.test('labels are read once per series; reset forgets every series', async (t) => {
  const registry = new Registry()
  const counter = new HotCounter<'issuer'>('y_total', 'Y.', registry)
  let built = 0
  for (let i = 0; i < 100; i++) counter.inc('k', () => { built++; return { issuer: 'k' } })
  t.equal(built, 1)
  t.match(await registry.metrics(), /y_total\{issuer="k"\} 100/)
  registry.resetMetrics()
  t.notMatch(await registry.metrics(), /issuer="k"/)
  const histogram = new HotHistogram<'issuer'>('y_seconds', 'Y.', [1], registry)
  histogram.observe('k', () => ({ issuer: 'k' }), 2)
  registry.resetMetrics()
  t.notMatch(await registry.metrics(), /y_seconds_count\{issuer="k"\}/)
})
