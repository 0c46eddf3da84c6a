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
  const counter = new HotCounter('x_total', 'Help "with" quotes\\.', ['issuer', 'result'], oursRegistry)
  const histogram = new HotHistogram('x_seconds', 'Durations.', ['issuer', 'result'], BOUNDS, oursRegistry)
  const promCounter = new Counter({ name: 'x_total', help: 'Help "with" quotes\\.', labelNames: ['issuer', 'result'], registers: [theirsRegistry] })
  const promHistogram = new Histogram({ name: 'x_seconds', help: 'Durations.', labelNames: ['issuer', 'result'], buckets: BOUNDS, registers: [theirsRegistry] })
  for (const [issuer, result, value] of OBSERVATIONS) {
    counter.inc(issuer, result)
    histogram.observe(value, issuer, result)
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

t.test('one series per label values; reset forgets every series', async (t) => {
  const registry = new Registry()
  const counter = new HotCounter('y_total', 'Y.', ['issuer'], registry)
  for (let i = 0; i < 100; i++) counter.inc('k')
  t.match(await registry.metrics(), /y_total\{issuer="k"\} 100/)
  registry.resetMetrics()
  t.notMatch(await registry.metrics(), /issuer="k"/)
  counter.inc('k')
  t.match(await registry.metrics(), /y_total\{issuer="k"\} 1\n/, 'counts again from zero after a reset')
  const histogram = new HotHistogram('y_seconds', 'Y.', ['issuer'], [1], registry)
  histogram.observe(2, 'k')
  registry.resetMetrics()
  t.notMatch(await registry.metrics(), /y_seconds_count\{issuer="k"\}/)
})

t.test('four labels: numbers are written as decimal text, and values never run into each other', async (t) => {
  const registry = new Registry()
  const counter = new HotCounter('z_total', 'Z.', ['route', 'method', 'status', 'caller'], registry)
  counter.inc('/verify', 'POST', 200, 'none')
  counter.inc('/verify', 'POST', 200, 'none')
  counter.inc('/verify', 'POST', 401, 'none')
  counter.inc('/verify', 'GET', 200, 'none')
  // With a key joined by a separator, these two would have been one series.
  counter.inc('a\nb', 'c', 1, 'd')
  counter.inc('a', 'b\nc', 1, 'd')
  const text = await registry.metrics()
  t.match(text, /z_total\{route="\/verify",method="POST",status="200",caller="none"\} 2/)
  t.match(text, /z_total\{route="\/verify",method="POST",status="401",caller="none"\} 1/)
  t.match(text, /z_total\{route="\/verify",method="GET",status="200",caller="none"\} 1/)
  t.match(text, /route="a\\nb",method="c"/)
  t.match(text, /route="a",method="b\\nc"/)
  t.equal(text.split('\n').filter((l) => l.startsWith('z_total{')).length, 5)
})

t.test('forget drops the series of refused label values and keeps the others, found again by the same values', async (t) => {
  const registry = new Registry()
  const counter = new HotCounter('f_total', 'F.', ['issuer', 'status'], registry)
  counter.inc('gone', 200)
  counter.inc('kept', 200)
  counter.inc('kept', 401)
  counter.forget('issuer', (issuer) => issuer !== 'gone')
  counter.inc('kept', 200)
  const text = await registry.metrics()
  t.notMatch(text, /issuer="gone"/, 'dropped')
  t.match(text, /f_total\{issuer="kept",status="200"\} 2\n/, 'kept, and a number label finds its series again (no second series)')
  t.match(text, /f_total\{issuer="kept",status="401"\} 1\n/)
  t.equal(text.split('\n').filter((l) => l.startsWith('f_total{')).length, 2)
  const histogram = new HotHistogram('f_seconds', 'F.', ['issuer'], [1], registry)
  histogram.observe(2, 'gone')
  histogram.observe(0.5, 'kept')
  histogram.forget('issuer', (issuer) => issuer === 'kept')
  histogram.observe(0.5, 'kept')
  const after = await registry.metrics()
  t.notMatch(after, /f_seconds_count\{issuer="gone"\}/)
  t.match(after, /f_seconds_count\{issuer="kept"\} 2\n/)
})

t.test('a call with the wrong number of label values is a programming error, found on first use', async (t) => {
  const registry = new Registry()
  const counter = new HotCounter('w_total', 'W.', ['issuer', 'result'], registry)
  t.throws(() => { counter.inc('only-one') }, /2 label values expected, got 1/)
  const histogram = new HotHistogram('w_seconds', 'W.', ['route'], [1], registry)
  t.throws(() => { histogram.observe(1, 'a', 'b') }, /1 label values expected, got 2/)
})
