/**
 * Readiness across the workers of one host (src/cluster-readiness.ts): the worker's report and the primary's
 * count, with stand-ins for the IPC channel; test/cluster.test.ts runs real workers.
 */
import t from 'tap'
import { fakePrimary } from './helpers/fake-primary.js'
import { NO_WORKER_COUNT_YET, serveWorkerReadiness, WorkerReadinessReporter } from '../src/cluster-readiness.js'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { jwksOf, makeKey } from './helpers/tokens.js'


t.test('a worker reports its readiness when it changes, and keeps the primary\'s count', async (t) => {
  let ready = false
  const primary = fakePrimary()
  const reporter = new WorkerReadinessReporter(() => ready, primary, 10)
  t.teardown(() => { reporter.close() })
  t.same(primary.sent, [{ type: 'oidc-verifier:ready', ready: false }], 'at once')
  t.equal(reporter.workers(), undefined, 'no count before the primary says one')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(primary.sent.length, 1, 'unchanged: not sent again')
  ready = true
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(primary.sent, [{ type: 'oidc-verifier:ready', ready: false }, { type: 'oidc-verifier:ready', ready: true }])
  primary.tell({ type: 'oidc-verifier:workers-ready', ready: 1, total: 2 })
  t.same(reporter.workers(), { ready: 1, total: 2 })
  for (const junk of [null, 'x', { type: 'oidc-verifier:workers-ready', ready: '2', total: 2 }, { type: 'oidc-verifier:workers-ready', ready: 1.5, total: 2 }, { type: 'other', ready: 2, total: 2 }]) primary.tell(junk)
  t.same(reporter.workers(), { ready: 1, total: 2 }, 'other messages change nothing')
})

t.test('the primary counts the live workers that said they are ready, and tells them when the count changes', async (t) => {
  const cluster = (await import('node:cluster')).default
  const before = { message: new Set(cluster.listeners('message')), fork: new Set(cluster.listeners('fork')), exit: new Set(cluster.listeners('exit')) }
  const workers: Record<string, { id: number, sent: unknown[], dead: boolean, isDead: () => boolean, send: (m: unknown, cb: () => void) => boolean }> = {}
  const worker = (id: number): typeof workers[string] => {
    const w = { id, sent: [] as unknown[], dead: false, isDead: () => w.dead, send: (m: unknown, cb: () => void) => { w.sent.push(m); cb(); return true } }
    workers[String(id)] = w
    return w
  }
  const saved = cluster.workers
  Object.defineProperty(cluster, 'workers', { value: workers, configurable: true, writable: true })
  serveWorkerReadiness(2)
  const added = (event: 'message' | 'fork' | 'exit'): Array<(...args: unknown[]) => void> => cluster.listeners(event).filter((l) => !before[event].has(l)) as Array<(...args: unknown[]) => void>
  const [onMessage] = added('message')
  const [onFork] = added('fork')
  const [onExit] = added('exit')
  t.teardown(() => {
    for (const event of ['message', 'fork', 'exit'] as const) for (const l of added(event)) cluster.off(event, l)
    Object.defineProperty(cluster, 'workers', { value: saved, configurable: true, writable: true })
  })
  const report = (w: typeof workers[string], ready: boolean): void => { onMessage?.(w, { type: 'oidc-verifier:ready', ready }) }
  const last = (w: typeof workers[string]): unknown => w.sent.at(-1)

  const a = worker(1)
  const b = worker(2)
  onFork?.(b)
  report(a, true)
  t.same(last(a), { type: 'oidc-verifier:workers-ready', ready: 1, total: 2 }, 'b has not reported: not ready')
  report(b, false)
  t.same(last(b), { type: 'oidc-verifier:workers-ready', ready: 1, total: 2 }, 'a first report gets the count even when it did not change')
  report(b, true)
  t.same([last(a), last(b)], [{ type: 'oidc-verifier:workers-ready', ready: 2, total: 2 }, { type: 'oidc-verifier:workers-ready', ready: 2, total: 2 }], 'every worker is told')
  const sentBefore = a.sent.length
  report(a, true)
  t.equal(a.sent.length, sentBefore, 'no change, nothing sent')
  onMessage?.(a, { type: 'oidc-verifier:ready', ready: 'yes' })
  t.same(last(a), { type: 'oidc-verifier:workers-ready', ready: 1, total: 2 }, 'anything but true is not ready')
  report(a, true)

  // b dies; its replacement c counts as not ready until it says otherwise.
  b.dead = true
  onExit?.(b)
  t.same(last(a), { type: 'oidc-verifier:workers-ready', ready: 1, total: 2 }, 'a dead worker not replaced yet is one of WORKERS, not ready')
  const c = worker(3)
  onFork?.(c)
  t.same(last(a), { type: 'oidc-verifier:workers-ready', ready: 1, total: 2 }, 'a new worker is not ready yet')
  report(c, true)
  t.same([last(a), last(c)], [{ type: 'oidc-verifier:workers-ready', ready: 2, total: 2 }, { type: 'oidc-verifier:workers-ready', ready: 2, total: 2 }])
  onMessage?.(c, 'garbage')
  onMessage?.(c, { type: 'oidc-verifier:start-config?' })
  t.same(last(c), { type: 'oidc-verifier:workers-ready', ready: 2, total: 2 }, 'other messages are not reports')
})

t.test('/readyz of a worker: not ready before it has the primary\'s count, then ready only when every worker is', async (t) => {
  const app = await buildApp(configFor([{ id: 'c', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(makeKey('ES256')) }]))
  t.teardown(() => app.close())
  await app.ready()
  const readyz = async (): Promise<{ status: number, body: Record<string, unknown> }> => {
    const res = await app.inject({ method: 'GET', url: '/readyz' })
    return { status: res.statusCode, body: res.json() }
  }
  t.match(await readyz(), { status: 200, body: { ready: true } }, 'without WORKERS: its own readiness')
  app.workersReadiness = NO_WORKER_COUNT_YET
  t.match(await readyz(), { status: 503, body: { ready: false } }, 'a worker listening before its first count: it cannot speak for the host')
  app.workersReadiness = { workers: () => ({ ready: 1, total: 2 }) }
  t.match(await readyz(), { status: 503, body: { ready: false, workers: { ready: 1, total: 2 } } })
  app.workersReadiness = { workers: () => ({ ready: 2, total: 2 }) }
  t.match(await readyz(), { status: 200, body: { ready: true, workers: { ready: 2, total: 2 } } })
})
