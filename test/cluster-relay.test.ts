/**
 * The worker side of the cluster relay, through a stand-in for the IPC channel: what the primary sends is
 * checked before it is applied, the copy makes the list current, a revocation recorded here goes to the
 * primary, and a worker whose primary never answers starts not current instead of never starting.
 * (test/cluster-revocations.test.ts runs the real thing with WORKERS=2.)
 */
import t, { type Test } from 'tap'
import { EventEmitter } from 'node:events'
import type { Logger } from '../src/core/logger.js'
import { relayRevocations, WorkerRelay, type RelayPort } from '../src/revocation/cluster-relay.js'
import { STORE_START_WAIT_MS } from '../src/revocation/store.js'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { jwksOf, makeKey } from './helpers/tokens.js'
import { MemoryRevocationStore } from '../src/revocation/memory-store.js'
import { RevocationList } from '../src/revocation/revocation-list.js'
import type { Revocation } from '../src/revocation/revocation.js'

const NOW = Date.now()
const good: Revocation = { issuer: 'main', kind: 'sid', value: 's1', before: null, expiresAt: Math.floor(NOW / 1000) + 3600, source: 'api' }

function fakePort (answer = true): RelayPort & { sent: object[], deliver: (message: unknown) => void } {
  const events = new EventEmitter()
  const sent: object[] = []
  return {
    sent,
    deliver: (message) => { events.emit('message', message) },
    send: answer ? (message, callback) => { sent.push(message); callback(null) } : undefined,
    on: (event, listener) => events.on(event, listener),
    off: (event, listener) => events.off(event, listener)
  }
}

/** A worker's relay over a fake channel, started (it has asked the primary for its copy). */
function startRelay (t: Test, maxEntries: number) {
  const list = new RevocationList(maxEntries)
  const port = fakePort()
  const relay = new WorkerRelay(list, () => NOW, port)
  t.teardown(() => { relay.close() })
  return { list, port, relay, started: relay.start(5_000) }
}

t.test('the primary\'s copy is checked, applied, and makes the list current', async (t) => {
  const { list, port, started } = startRelay(t, 10)
  t.same(port.sent, [{ type: 'oidc-verifier:revocations-sync', sync: 1 }], 'asks the primary for its copy')
  t.notOk(list.available, 'not current until the copy arrives')
  port.deliver({ type: 'oidc-verifier:revocations', revocations: [good, { ...good, kind: 'email' }, 'garbage', null], done: false, sync: 1, complete: true })
  t.notOk(list.available, 'not current until the last chunk')
  port.deliver({ type: 'oidc-verifier:revocations', revocations: [], done: true, sync: 0, complete: true })
  t.notOk(list.available, 'a chunk of an older request is ignored')
  port.deliver({ type: 'oidc-verifier:revocations', revocations: [], done: true, sync: 1, complete: true })
  t.equal(await started, true)
  t.ok(list.available)
  t.equal(list.size, 1, 'only the valid revocation')
  port.deliver({ type: 'oidc-verifier:revocation', revocation: { ...good, value: 'x'.repeat(300) } })
  port.deliver('not an object')
  port.deliver({ type: 'oidc-verifier:revocations', revocations: 'not a list', done: true, sync: 1, complete: true })
  port.deliver({ type: 'oidc-verifier:revocation', revocation: { ...good, value: 's2', sub: 'u' } })
  t.equal(list.size, 2, 'a valid announcement is applied, invalid ones are not')
  t.equal(list.sessionsOf('main', 'u'), 1, 'with the session\'s user')
  t.equal(list.check('main', { sid: 's2', iat: 1 }, NOW / 1000), 'sid')
})

t.test('a revocation recorded in a worker goes to the primary', async (t) => {
  const list = new RevocationList(10)
  const port = fakePort()
  const store = new MemoryRevocationStore(list, { relay: new WorkerRelay(list, () => NOW, port), now: () => NOW })
  t.teardown(async () => { await store.close() })
  const started = store.start()
  port.deliver({ type: 'oidc-verifier:revocations', revocations: [], done: true, sync: 1, complete: true })
  await started
  t.match(store.status(), { kind: 'memory', current: true })
  t.equal(await store.publish(good), 'added')
  t.same(port.sent.at(-1), { type: 'oidc-verifier:revocation', revocation: good })
  const count = port.sent.length
  t.equal(await store.publish(good), 'unchanged')
  t.equal(port.sent.length, count + 1, 'sent again even when unchanged here: a retry must reach the other workers')
  port.send = (_message, callback) => { callback(new Error('channel closed')) }
  await t.rejects(store.publish({ ...good, value: 's9' }), { name: 'RevocationStoreError', reason: 'unreachable' }, 'a lost channel is 503, not 500')
})

t.test('a revocation that does not fit makes the list incomplete until a resync fits', async (t) => {
  const { list, port, relay, started } = startRelay(t, 1)
  port.deliver({ type: 'oidc-verifier:revocations', revocations: [good, { ...good, value: 's2' }], done: true, sync: 1, complete: true })
  t.equal(await started, true)
  t.notOk(list.available, 'a copy that does not fit: not current (fail closed)')
  t.notOk(list.complete)
  relay.resync()
  t.same(port.sent.at(-1), { type: 'oidc-verifier:revocations-sync', sync: 2 }, 'asks again')
  list.sweep(Number.POSITIVE_INFINITY)
  port.deliver({ type: 'oidc-verifier:revocations', revocations: [good, { ...good, value: 's2' }], done: true, sync: 1, complete: true })
  t.notOk(list.available, 'the rest of an earlier answer does not make it complete')
  list.sweep(Number.POSITIVE_INFINITY)
  port.deliver({ type: 'oidc-verifier:revocations', revocations: [good], done: true, sync: 2, complete: true })
  t.ok(list.available, 'everything fits now')
  port.deliver({ type: 'oidc-verifier:revocation', revocation: { ...good, value: 's3' } })
  t.notOk(list.available, 'an announcement that does not fit: not current either')
})

t.test('a primary that never answers: the worker starts anyway, not current', async (t) => {
  const list = new RevocationList(10)
  const port = fakePort()
  const relay = new WorkerRelay(list, () => NOW, port)
  t.teardown(() => { relay.close() })
  const keepAlive = setTimeout(() => {}, 1_000)
  t.equal(await relay.start(50), false)
  clearTimeout(keepAlive)
  t.notOk(list.available, 'verifications fail closed')
  port.deliver({ type: 'oidc-verifier:revocations', revocations: [good], done: true, sync: 1, complete: true })
  t.ok(list.available, 'a copy that arrives later is taken')
  t.equal(list.size, 1)
})

t.test('the default wait ends before Fastify gives up on the app starting', async (t) => {
  // start() runs in an onReady hook: past the plugin timeout the worker would exit, and be replaced, for ever.
  const app = await buildApp(configFor([{ id: 'main', issuer: 'https://idp.example.com', audiences: ['a'], jwks: jwksOf(makeKey('ES256')) }], { revocation: { enabled: true } }))
  t.teardown(() => app.close())
  t.ok(STORE_START_WAIT_MS + 1_000 <= (app.initialConfig.pluginTimeout ?? 0), `${STORE_START_WAIT_MS} ms, with a second to spare, within ${app.initialConfig.pluginTimeout} ms`)
})

t.test('the memory store refuses a revocation when full and leaves the list as it was', async (t) => {
  const list = new RevocationList(1)
  const store = new MemoryRevocationStore(list, { now: () => NOW })
  await store.start()
  t.teardown(async () => { await store.close() })
  t.equal(await store.publish(good), 'added')
  await t.rejects(store.publish({ ...good, value: 'other' }), { name: 'RevocationStoreError', reason: 'full' })
  t.equal(list.size, 1)
})

t.test('the primary\'s side: forwards to the other workers, answers a sync from its copy, and logs an error when the copy is full', async (t) => {
  const cluster = (await import('node:cluster')).default
  const lines: Array<{ msg: string, level: number | undefined }> = []
  t.teardown(() => { cluster.removeAllListeners('fork') })
  const copy = relayRevocations(1, (msg, level) => { lines.push({ msg, level }) }, () => NOW)
  const worker = (id: number) => Object.assign(new EventEmitter(), { id, sent: [] as object[], isConnected: () => true, send (message: object, _h: unknown, _o: unknown, cb: () => void) { this.sent.push(message); cb() } })
  const [a, b] = [worker(1), worker(2)]
  for (const w of [a, b]) cluster.emit('fork', w)
  t.teardown(() => { for (const w of [a, b]) w.removeAllListeners() })
  // The primary's table of workers, as cluster.fork() would have filled it.
  const table = cluster as unknown as { workers: Record<number, unknown> }
  table.workers = { 1: a, 2: b }
  t.teardown(() => { table.workers = {} })

  a.emit('message', { type: 'oidc-verifier:revocation', revocation: good })
  t.same(b.sent, [{ type: 'oidc-verifier:revocation', revocation: good }], 'forwarded to the other worker')
  t.same(a.sent, [], 'not back to its sender')
  t.equal(copy.size, 1)
  a.emit('message', { type: 'oidc-verifier:revocation', revocation: { ...good, value: 's2' } })
  t.equal(copy.size, 1, 'the copy is full')
  t.equal(lines.length, 1, 'one line, for the one revocation the copy could not keep')
  t.match(lines, [{ msg: /the primary's copy of the revocations is full/, level: 50 }], 'an error, not an info line')
  t.equal(b.sent.length, 2, 'still forwarded: the running workers hold it')
  b.emit('message', { type: 'oidc-verifier:revocations-sync', sync: 4 })
  t.same(b.sent.at(-1), { type: 'oidc-verifier:revocations', revocations: [good], done: true, sync: 4, complete: false, completeAt: good.expiresAt },
    'the copy, said incomplete: it lacks s2, until s2 expires')
  a.emit('message', { type: 'oidc-verifier:revocation', revocation: { ...good, kind: 'nope' } })
  t.equal(b.sent.length, 3, 'an invalid revocation is not forwarded')
})

t.test('a done chunk that does not say complete leaves the list incomplete: verifications fail closed', async (t) => {
  for (const complete of [false, undefined, 'yes']) {
    const { list, port, relay, started } = startRelay(t, 10)
    port.deliver({ type: 'oidc-verifier:revocations', revocations: [good], done: true, sync: 1, complete })
    t.equal(await started, true, `complete: ${String(complete)}: the copy arrived`)
    t.equal(list.size, 1, 'and was applied')
    t.notOk(list.complete, 'but the list is not complete')
    t.notOk(list.available, 'so it is not current (fail closed)')
    relay.resync()
    port.deliver({ type: 'oidc-verifier:revocations', revocations: [good], done: true, sync: 2, complete: true })
    t.ok(list.available, 'current once an answer says complete')
  }
})

t.test('a revocation the primary\'s copy cannot keep: a worker started before it expires fails closed until then', async (t) => {
  const cluster = (await import('node:cluster')).default
  t.teardown(() => { cluster.removeAllListeners('fork') })
  let now = NOW
  const lines: string[] = []
  relayRevocations(2, (msg) => { lines.push(msg) }, () => now)
  // Workers as the primary sees them, each wired to a WorkerRelay through a stand-in channel.
  const table = cluster as unknown as { workers: Record<number, unknown> }
  table.workers = {}
  t.teardown(() => { table.workers = {} })
  const startWorker = (id: number, maxEntries = 2) => {
    const port = fakePort()
    const worker = Object.assign(new EventEmitter(), {
      id,
      isConnected: () => true,
      send (message: object, _h: unknown, _o: unknown, cb: () => void) { port.deliver(structuredClone(message)); cb() }
    })
    port.send = (message, callback) => { worker.emit('message', structuredClone(message)); callback(null) }
    table.workers[id] = worker
    cluster.emit('fork', worker)
    t.teardown(() => { worker.removeAllListeners() })
    const list = new RevocationList(maxEntries)
    const relay = new WorkerRelay(list, () => now, port)
    t.teardown(() => { relay.close() })
    return { list, relay, started: relay.start(5_000) }
  }
  const a = startWorker(1)
  // B's list is larger than the primary's copy, so that it holds what the copy cannot (and stays current).
  const b = startWorker(2, 3)
  t.equal(await a.started, true)
  t.equal(await b.started, true)
  t.ok(a.list.available && b.list.available, 'both current with the empty copy')

  // Three revocations recorded by worker A: the primary's copy (2 entries) cannot keep the third.
  const nowSeconds = Math.floor(NOW / 1000)
  const revocations: Revocation[] = [
    { ...good, value: 'r1', expiresAt: nowSeconds + 3600 },
    { ...good, value: 'r2', expiresAt: nowSeconds + 3600 },
    { ...good, value: 'r3', expiresAt: nowSeconds + 600 }
  ]
  for (const r of revocations) await a.relay.send(r)
  t.same(lines, [
    'the primary\'s copy of the revocations is full (revocation.maxEntries): it cannot keep a sid revocation of issuer main, so a worker ' +
    `started before ${new Date((nowSeconds + 600) * 1000).toISOString()} fails closed (503 revocations_unavailable) until then`
  ], 'the primary logs the one it could not keep, once, and until when: r3\'s expiry')
  t.equal(b.list.check('main', { sid: 'r3', iat: nowSeconds }, NOW / 1000), 'sid', 'a running worker refuses r3\'s tokens')
  t.ok(b.list.available, 'and is current')

  // A replacement started now receives a copy without r3: it must not be current.
  const c = startWorker(3)
  t.equal(await c.started, true, 'the copy arrived')
  // Another, run by its store as the service runs it: its list is full (r1, r2) and has nothing of its own to
  // expire before r3 does, so only the primary's word says when to ask again.
  const d = startWorker(4)
  t.equal(await d.started, true)
  const dStore = new MemoryRevocationStore(d.list, { relay: d.relay, now: () => now })
  t.teardown(async () => { await dStore.close() })
  t.notOk(d.list.available, 'the store\'s worker fails closed too')
  t.equal(c.list.check('main', { sid: 'r3', iat: nowSeconds }, NOW / 1000), undefined, 'it lacks r3')
  t.notOk(c.list.complete, 'so its list is incomplete')
  t.notOk(c.list.available, 'and verifications fail closed, rather than accept the token B refuses')

  // Asked again before r3 expires: still incomplete. After: complete, current.
  now = (nowSeconds + 599) * 1000
  c.relay.resync()
  t.notOk(c.list.available, 'still failing closed one second before r3 expires')
  now = (nowSeconds + 600) * 1000
  c.relay.resync()
  t.ok(c.list.complete, 'complete once r3 has expired')
  t.ok(c.list.available, 'and current')

  // The store's minute sweep: before r3 expires it does not ask; once it has, it does, though its list is full.
  now = (nowSeconds + 599) * 1000
  dStore.sweep()
  t.notOk(d.list.available, 'the sweep before r3 expires leaves it failing closed')
  now = (nowSeconds + 601) * 1000
  dStore.sweep()
  t.equal(d.list.size, 2, 'its list is full (r1, r2)')
  t.ok(d.list.complete && d.list.available, 'the sweep after r3 expired asked again: complete and current')
})

t.test('a worker whose copy arrived incomplete says so in an error log line, not as received', async (t) => {
  const lines: Array<{ level: string, msg: string | undefined }> = []
  const at = (level: string) => (_obj: object, msg?: string): void => { lines.push({ level, msg }) }
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => logger }
  const list = new RevocationList(10)
  const port = fakePort()
  const store = new MemoryRevocationStore(list, { relay: new WorkerRelay(list, () => NOW, port), now: () => NOW, logger })
  t.teardown(async () => { await store.close() })
  const started = store.start()
  port.deliver({ type: 'oidc-verifier:revocations', revocations: [good], done: true, sync: 1, complete: false })
  await started
  t.match(store.status(), { kind: 'memory', current: false }, '/readyz says not current')
  const errors = lines.filter((l) => l.level === 'error')
  t.equal(errors.length, 1, 'one error line')
  t.match(errors, [{ level: 'error', msg: /incomplete.*fail closed \(503 revocations_unavailable\)/ }])
  t.notOk(lines.some((l) => l.msg === 'revocations received from the cluster primary'), 'not logged as received')
})

t.test('a worker told the primary\'s copy is complete again at some time asks again then, without waiting for a sweep', async (t) => {
  const list = new RevocationList(1)
  const port = fakePort()
  // The relay's timers, recorded and fired by hand: when the retry is due is read from what the relay asked for.
  const timers: Array<{ purpose: string, delayMs: number, fire: () => void }> = []
  const relay = new WorkerRelay(list, () => NOW, port, (callback, delayMs, purpose) => {
    timers.push({ purpose, delayMs, fire: callback })
    // A handle for clearTimeout that never calls back itself.
    const handle = setTimeout(() => {}, 0)
    clearTimeout(handle)
    return handle
  })
  t.teardown(() => { relay.close() })
  const started = relay.start(5_000)
  const completeAt = Math.floor(NOW / 1000) + 600
  port.deliver({ type: 'oidc-verifier:revocations', revocations: [good], done: true, sync: 1, complete: false, completeAt })
  t.equal(await started, true)
  t.notOk(list.available, 'fails closed: the copy lacks one')
  const syncs = (): number => port.sent.filter((m) => (m as { type?: string }).type === 'oidc-verifier:revocations-sync').length
  const retries = timers.filter((timer) => timer.purpose === 'retry')
  t.same(retries.map((timer) => timer.delayMs), [completeAt * 1000 - NOW + 1000], 'one retry, due a second after completeAt')
  t.equal(syncs(), 1, 'not asked again before the retry is due')
  retries[0]?.fire()
  t.equal(syncs(), 2, 'asked again when the retry is due')
  t.same(port.sent.at(-1), { type: 'oidc-verifier:revocations-sync', sync: 2 })
  port.deliver({ type: 'oidc-verifier:revocations', revocations: [good], done: true, sync: 2, complete: true, completeAt: null })
  t.ok(list.available, 'current')
  t.equal(timers.filter((timer) => timer.purpose === 'retry').length, 1, 'a complete copy schedules no retry')
})
