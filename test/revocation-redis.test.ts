/**
 * The Redis revocation store against a real redis-server: publish on one store reaches another through
 * pub/sub; a store started later loads what is stored; merges keep the later cut-off and expiry; Redis
 * forgets a revocation at its expiry; fail closed when Redis is gone for longer than maxStalenessSeconds, and
 * current again (reloaded) when it is back; hostile messages and values are ignored; a full list refuses
 * without writing; key names hold no sid, sub or jti. Fails (does not skip) when redis-server is not installed.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { Redis } from 'ioredis'
import { RedisRevocationStore, type RedisRevocationStoreOptions } from '../src/revocation/redis-store.js'
import { revocationKey, type Revocation } from '../src/revocation/revocation.js'
import { RevocationStoreError } from '../src/revocation/store.js'
import { findRedisServer, startRedis, type RedisHandle } from './helpers/redis.js'
import { capturingLogger, newPrefix, newStore, nowSeconds, rawClient, revocation, waitFor } from './helpers/revocation-store.js'

// First, so that a missing redis-server fails at once with its message.
findRedisServer()

const redis = await startRedis()
t.teardown(async () => { await redis.close() })


interface TimerRecord {
  purpose: 'start' | 'stale'
  delayMs: number
  /** The store's clock reading the delay was computed from (its last now()). */
  at: number
  /** The store's lastCurrentAt when the timer was set. */
  lastCurrentAt: number | null
  fired: boolean
  /** Whether the list was available just before the timer's callback ran. */
  availableWhenFired?: boolean
}

/**
 * The store's clock and timers, passed through unchanged (Date.now, setTimeout) and recorded: when a timer is
 * due is then read from what the store computed, not from how long the test waited.
 */
function timeline (): { now: () => number, setTimer: NonNullable<RedisRevocationStoreOptions['setTimer']>, attach: (store: RedisRevocationStore) => void, timers: TimerRecord[] } {
  let lastNow = Number.NaN
  let store: RedisRevocationStore | undefined
  const timers: TimerRecord[] = []
  return {
    now: () => (lastNow = Date.now()),
    setTimer: (callback, delayMs, purpose) => {
      const record: TimerRecord = { purpose, delayMs, at: lastNow, lastCurrentAt: store?.status().lastCurrentAt ?? null, fired: false }
      timers.push(record)
      return setTimeout(() => {
        record.fired = true
        record.availableWhenFired = store?.list.available
        callback()
      }, delayMs)
    },
    attach: (s) => { store = s },
    timers
  }
}

async function keysOf (client: Redis, prefix: string): Promise<string[]> {
  return (await client.keys(`${prefix}*`)).sort()
}

const hashedKey = (prefix: string, r: Revocation): string =>
  `${prefix}revocation:${createHash('sha256').update(revocationKey(r.issuer, r.kind, r.value)).digest('hex')}`

t.test('the list starts unavailable; after start it is available, and a publish on one store reaches another', async (t) => {
  const keyPrefix = newPrefix()
  const a = newStore(t, { url: redis.url, keyPrefix })
  const b = newStore(t, { url: redis.url, keyPrefix })
  t.equal(a.list.available, false, 'unavailable before start')
  t.same(a.status(), { kind: 'redis', current: false, lastCurrentAt: null })
  await Promise.all([a.start(), b.start()])
  t.equal(a.list.available, true)
  t.equal(b.list.available, true)
  const status = b.status()
  t.equal(status.current, true)
  t.type(status.lastCurrentAt, 'number')

  const r = revocation('sid', 'session-1')
  t.equal(await a.publish(r), 'added')
  t.equal(a.list.check('main', { sid: 'session-1', iat: nowSeconds() }, nowSeconds()), 'sid', 'applied locally at once')
  await waitFor('B receives the revocation', () => b.list.get('main', 'sid', 'session-1', nowSeconds()) !== undefined)
  t.same(b.list.get('main', 'sid', 'session-1', nowSeconds()), r)
  t.equal(b.list.check('main', { sid: 'session-1', iat: nowSeconds() }, nowSeconds()), 'sid')
  t.equal(await a.publish(r), 'unchanged', 'the same revocation again changes nothing')
})

t.test('a store started after revocations were published loads them at start', async (t) => {
  const keyPrefix = newPrefix()
  const a = newStore(t, { url: redis.url, keyPrefix })
  await a.start()
  const published = [revocation('sid', 's-1'), { ...revocation('sid', 's-2'), sub: 'user-2' }, revocation('sub', 'user-1'), revocation('jti', 'j-1'), revocation('issuer', '')]
  for (const r of published) await a.publish(r)
  const longer = { ...revocation('sid', 's-2'), expiresAt: nowSeconds() + 7200 }
  t.equal(await a.publish(longer), 'extended', 'the session again, longer, without its user')
  t.equal(await a.publish({ ...longer, sub: 'someone-else' }), 'unchanged', 'and naming another user: a session keeps its first')
  published[1] = { ...longer, sub: 'user-2' }
  const { logger, lines } = capturingLogger()
  const late = newStore(t, { url: redis.url, keyPrefix, logger })
  await late.start()
  t.equal(late.list.available, true, 'available once loaded')
  t.equal(late.list.size, published.length)
  for (const r of published) t.same(late.list.get(r.issuer, r.kind, r.value, nowSeconds()), r, `${r.kind} loaded`)
  t.equal(late.list.sessionsOf('main', 'user-2'), 1, 'a session keeps its user through Redis, and through a merge that did not name it')
  const loaded = lines.find((l) => l.level === 'info' && (l.obj as { count?: number }).count !== undefined)
  t.equal((loaded?.obj as { count?: number } | undefined)?.count, published.length, 'the load is logged with its count')
})

t.test('merge: the later before and the later expiresAt win; Redis forgets a revocation at its expiry (PXAT)', async (t) => {
  const keyPrefix = newPrefix()
  const client = rawClient(t, redis.url)
  const a = newStore(t, { url: redis.url, keyPrefix })
  const b = newStore(t, { url: redis.url, keyPrefix })
  await Promise.all([a.start(), b.start()])
  const now = nowSeconds()

  const first = revocation('sub', 'user-1', { before: now - 10, expiresAt: now + 1000 })
  const second = revocation('sub', 'user-1', { before: now - 100, expiresAt: now + 2000 }) // earlier cut-off, later expiry
  const third = revocation('sub', 'user-1', { before: now - 5, expiresAt: now + 500 }) // later cut-off, earlier expiry
  t.equal(await a.publish(first), 'added')
  t.equal(await a.publish(second), 'extended')
  // The answer is what the publish changed in B's own list: once A's announcement has reached B, "extended".
  await waitFor('B has heard of A\'s revocation', () => b.list.get('main', 'sub', 'user-1', nowSeconds())?.expiresAt === now + 2000)
  t.equal(await b.publish(third), 'extended', 'B merges with what A stored, not only with its own list')
  const key = hashedKey(keyPrefix, first)
  const stored = JSON.parse((await client.get(key))!) as Revocation
  t.equal(stored.before, now - 5, 'the later before is stored')
  t.equal(stored.expiresAt, now + 2000, 'the later expiresAt is stored')
  t.equal(await client.pexpiretime(key), (now + 2000) * 1000, 'the key expires at expiresAt')
  for (const store of [a, b]) {
    await waitFor('both lists hold the merged revocation', () => {
      const held = store.list.get('main', 'sub', 'user-1', nowSeconds())
      return held?.before === now - 5 && held.expiresAt === now + 2000
    })
  }

  // A garbage value under the right key is replaced by the next publish.
  const sid = revocation('sid', 'session-x')
  await client.set(hashedKey(keyPrefix, sid), '{not json')
  t.equal(await a.publish(sid), 'added')
  t.same(JSON.parse((await client.get(hashedKey(keyPrefix, sid)))!), sid)

  // Expiry: Redis deletes the key at expiresAt.
  const soon = revocation('sid', 'short-lived', { expiresAt: Date.now() / 1000 + 1.5 })
  await a.publish(soon)
  const shortKey = hashedKey(keyPrefix, soon)
  t.equal(await client.exists(shortKey), 1, 'stored')
  const pttl = await client.pttl(shortKey)
  t.ok(pttl > 0 && pttl <= 1500, `expires in at most 1.5 s (pttl ${pttl})`)
  await waitFor('Redis forgets the expired revocation', async () => (await client.exists(shortKey)) === 0, 4000)
  t.equal(a.list.get('main', 'sid', 'short-lived', nowSeconds() + 2), undefined, 'and so do checks')
})

t.test('Redis down: publish fails fast, the list fails closed after maxStalenessSeconds; back: reloaded and available', async (t) => {
  const own: RedisHandle = await startRedis()
  t.teardown(async () => { await own.close() })
  const keyPrefix = newPrefix()
  const { logger, text } = capturingLogger()
  const commandTimeoutMs = 2000
  const maxStalenessSeconds = 1
  const clock = timeline()
  const a = newStore(t, { url: own.url, keyPrefix, logger, maxStalenessSeconds, commandTimeoutMs, now: clock.now, setTimer: clock.setTimer })
  clock.attach(a)
  await a.start()
  t.equal(a.list.available, true)
  await a.publish(revocation('sid', 'before-outage'))

  await own.stop()
  const error = await a.publish(revocation('sid', 'during-outage')).then(() => undefined, (err: unknown) => err)
  t.ok(error instanceof RevocationStoreError, 'rejects with a RevocationStoreError')
  t.equal((error as RevocationStoreError).reason, 'unreachable')
  // Without the offline queue the command is refused at once (the connection is down); only a command that
  // waited for an answer ends with "Command timed out" (ours after commandTimeoutMs, or ioredis's).
  const cause = (error as RevocationStoreError).cause
  t.type(cause, Error)
  t.notMatch((cause as Error).message, /timed out/i, `fails fast, without waiting for the command timeout (${(cause as Error).message})`)
  t.equal(a.list.get('main', 'sid', 'during-outage', nowSeconds()), undefined, 'the list is unchanged')

  await waitFor('the list becomes unavailable', () => !a.list.available, 5000)
  const stale = clock.timers.filter((timer) => timer.purpose === 'stale')
  t.equal(stale.length, 1, 'one staleness timer for the outage')
  const [timer] = stale
  t.ok(timer?.fired, 'the list was marked unavailable by the staleness timer')
  t.equal(timer?.availableWhenFired, true, 'and was available until then: not before maxStalenessSeconds')
  t.type(timer?.lastCurrentAt, 'number')
  t.equal((timer?.at ?? 0) + (timer?.delayMs ?? 0), Math.max(timer?.at ?? 0, (timer?.lastCurrentAt ?? 0) + maxStalenessSeconds * 1000),
    'due maxStalenessSeconds after the list was last known current')
  t.equal(a.status().current, false)
  t.type(a.status().lastCurrentAt, 'number')
  t.match(text(), /fail closed/, 'the error says that verifications now fail closed')
  t.match(text(), new RegExp(`127\\.0\\.0\\.1:${own.port}`), 'and names the Redis host')

  // Back on the same port (empty: no persistence), with a password at first, so that the store cannot load
  // before the revocation written meanwhile by another store is there; the store must then load it.
  const password = 'pw-4a7f0c2e9b'
  await own.restart(['--requirepass', password])
  const withPassword = `redis://:${password}@127.0.0.1:${own.port}`
  const other = newStore(t, { url: withPassword, keyPrefix })
  await other.start()
  t.equal(other.list.available, true, 'a store with the password loads')
  const missed = revocation('sub', 'user-while-disconnected')
  await other.publish(missed)
  t.equal(a.list.available, false, 'the first store, without the password, is still not current')
  await waitFor('the first store is refused by the password', () => /NOAUTH/.test(text()), 8000)
  t.equal(a.list.available, false, 'and stays unavailable')
  const admin = rawClient(t, withPassword)
  await admin.config('SET', 'requirepass', '')
  await waitFor('the store reconnects, reloads and is available again', () => a.list.available, 8000)
  t.same(a.list.get('main', 'sub', 'user-while-disconnected', nowSeconds()), missed, 'the revocation written while it was disconnected is loaded')
  t.ok(a.list.get('main', 'sid', 'before-outage', nowSeconds()) !== undefined, 'what it held before is kept (merged, not replaced)')
  t.equal(a.status().current, true)
  t.equal(await a.publish(revocation('sid', 'after-outage')), 'added', 'publish works again')
  t.notMatch(text(), password, 'no log line holds the password')
  t.notMatch(text(), /before-outage|during-outage|after-outage|user-while-disconnected/, 'no log line holds a revocation value')
})

t.test('Redis that stops answering (SIGSTOP, the connection stays open): fail closed maxStalenessSeconds after the last contact, not later', async (t) => {
  const own: RedisHandle = await startRedis()
  const info = await rawClient(t, own.url).info('server')
  const pid = Number(/process_id:(\d+)/.exec(info)?.[1])
  t.ok(pid > 0, `redis-server's pid from INFO (${pid})`)
  let stopped = false
  t.teardown(async () => {
    // A stopped redis-server would not act on the SIGTERM that close() sends.
    if (stopped) process.kill(pid, 'SIGCONT')
    await own.close()
  })
  const maxStalenessSeconds = 2
  // A PING to a stopped Redis fails only after commandTimeoutMs; the list was last known current before it was sent.
  const commandTimeoutMs = 1000
  const { logger, text } = capturingLogger()
  const clock = timeline()
  const store = newStore(t, { url: own.url, keyPrefix: newPrefix(), logger, maxStalenessSeconds, commandTimeoutMs, now: clock.now, setTimer: clock.setTimer })
  clock.attach(store)
  await store.start()
  t.equal(store.list.available, true)
  const loadedAt = store.status().lastCurrentAt
  await waitFor('a PING answered after the load', () => store.status().lastCurrentAt !== loadedAt, 5000)

  process.kill(pid, 'SIGSTOP')
  stopped = true
  await waitFor('the list becomes unavailable', () => !store.list.available, 10_000)
  const stale = clock.timers.filter((timer) => timer.purpose === 'stale')
  t.equal(stale.length, 1, 'one staleness timer')
  const [timer] = stale
  const lastCurrentAt = timer?.lastCurrentAt ?? Number.NaN
  t.equal(store.status().lastCurrentAt, lastCurrentAt, 'no contact since the timer was set')
  // The failed PING is noticed commandTimeoutMs after it was sent, after the last answer: counted from then,
  // the list would fail closed up to commandTimeoutMs + a PING interval too late.
  t.ok((timer?.at ?? 0) > lastCurrentAt, 'the failure was noticed after the last contact')
  t.ok(timer?.fired, 'the list was marked unavailable by the staleness timer')
  t.equal(timer?.availableWhenFired, true, 'and was available until then: not before maxStalenessSeconds after the last contact')
  t.equal((timer?.at ?? 0) + (timer?.delayMs ?? 0), Math.max(timer?.at ?? 0, lastCurrentAt + maxStalenessSeconds * 1000),
    'due maxStalenessSeconds after the last contact, not after the failed PING')
  t.match(text(), /fail closed/)

  process.kill(pid, 'SIGCONT')
  stopped = false
  await waitFor('current again once Redis answers', () => store.list.available, 10_000)
})

t.test('start() with Redis down resolves at once, unavailable; the store keeps trying and loads once Redis is up', async (t) => {
  const own: RedisHandle = await startRedis()
  t.teardown(async () => { await own.close() })
  await own.stop()
  const keyPrefix = newPrefix()
  const { logger, lines } = capturingLogger()
  const clock = timeline()
  const store = newStore(t, { url: own.url, keyPrefix, logger, maxStalenessSeconds: 1, setTimer: clock.setTimer })
  clock.attach(store)
  await store.start()
  const safeguard = clock.timers.filter((timer) => timer.purpose === 'start')
  t.equal(safeguard.length, 1, 'start() set its safeguard timer')
  t.equal(safeguard[0]?.fired, false, 'start() does not wait for Redis: the failed first attempt settled it, not the safeguard')
  t.equal(store.list.available, false)
  t.same(store.status(), { kind: 'redis', current: false, lastCurrentAt: null })
  await own.restart()
  await waitFor('the store connects and loads by itself', () => store.list.available, 8000)
  t.type(store.status().lastCurrentAt, 'number')
  t.ok(lines.filter((l) => l.level === 'warn').length <= 4, 'a Redis that stays down is not logged on every retry')
})

t.test('hostile data: garbage on the channel and under revocation keys is ignored, valid entries still applied', async (t) => {
  const keyPrefix = newPrefix()
  const client = rawClient(t, redis.url)
  const channel = `${keyPrefix}revocations`
  const good = revocation('sid', 'good-stored')
  await client.set(hashedKey(keyPrefix, good), JSON.stringify(good))
  await client.set(`${keyPrefix}revocation:garbage`, 'not json at all')
  await client.set(`${keyPrefix}revocation:wrong-shape`, JSON.stringify({ issuer: 'main', kind: 'sid', value: 'x', before: 5, expiresAt: nowSeconds() + 100, source: 'api' }))
  await client.set(`${keyPrefix}revocation:bad-issuer`, JSON.stringify({ ...revocation('sid', 'y'), issuer: 'Not An Issuer Id' }))
  await client.set(`${keyPrefix}revocation:array`, '[1,2,3]')
  await client.set(`${keyPrefix}revocation:huge`, JSON.stringify({ ...revocation('sid', 'z'), padding: 'p'.repeat(100_000) }))
  await client.hset(`${keyPrefix}revocation:hash`, 'a', 'b')

  const { logger, lines, text } = capturingLogger()
  const store = newStore(t, { url: redis.url, keyPrefix, logger })
  await store.start()
  t.equal(store.list.available, true, 'loaded despite the garbage')
  t.equal(store.list.size, 1, 'only the valid stored revocation is applied')
  t.same(store.list.get('main', 'sid', 'good-stored', nowSeconds()), good)
  t.ok(lines.some((l) => l.level === 'warn' && (l.obj as { invalid?: number }).invalid === 5), 'the invalid values are counted in a warning')

  for (const message of ['not json', '{"issuer":"main"}', '[]', 'null', '42', JSON.stringify({ ...revocation('jti', 'j'), kind: 'everything' }), 'x'.repeat(10_000)]) {
    await client.publish(channel, message)
  }
  const valid = revocation('jti', 'after-garbage')
  await client.publish(channel, JSON.stringify(valid))
  await waitFor('the valid message is applied', () => store.list.get('main', 'jti', 'after-garbage', nowSeconds()) !== undefined)
  t.equal(store.list.size, 2, 'none of the garbage was applied')
  t.equal(lines.filter((l) => l.level === 'warn' && /not a revocation/.test(l.msg ?? '') && (l.obj as { channel?: string }).channel === channel).length, 7,
    'each garbage message is logged')
  t.notMatch(text(), /not json|everything|xxxxxxxx/, 'without its content')
  t.equal(store.list.available, true)
})

t.test("'full': short of the list's bound (a tenth kept for other replicas) a new revocation is refused without writing anything", async (t) => {
  const keyPrefix = newPrefix()
  const client = rawClient(t, redis.url)
  const store = newStore(t, { url: redis.url, keyPrefix }, 10)
  await store.start()
  t.equal(await store.publish(revocation('sid', 's-1')), 'added')
  for (let i = 2; i <= 9; i++) t.equal(await store.publish(revocation('sid', `s-${i}`)), 'added')
  const before = await keysOf(client, keyPrefix)
  t.equal(before.length, 9, 'nine of ten: the tenth is for what other replicas record meanwhile')
  const error = await store.publish(revocation('sid', 's-10')).then(() => undefined, (err: unknown) => err)
  t.ok(error instanceof RevocationStoreError)
  t.equal((error as RevocationStoreError).reason, 'full')
  t.same(await keysOf(client, keyPrefix), before, 'nothing written')
  t.equal(store.list.get('main', 'sid', 's-10', nowSeconds()), undefined)
  t.equal(await store.publish(revocation('sid', 's-1', { expiresAt: nowSeconds() + 7200 })), 'extended', 'one already held can still be extended')
})

t.test('a revocation stored by another process that does not fit: fail closed, then current again once it fits', async (t) => {
  const keyPrefix = newPrefix()
  const big = newStore(t, { url: redis.url, keyPrefix, maxStalenessSeconds: 1 })
  const small = newStore(t, { url: redis.url, keyPrefix, maxStalenessSeconds: 1 }, 1)
  await Promise.all([big.start(), small.start()])
  const soon = nowSeconds() + 2
  await big.publish(revocation('sid', 'short-lived', { expiresAt: soon }))
  await waitFor('the small store holds the first', () => small.list.size === 1)
  t.ok(small.list.available)
  await big.publish(revocation('sid', 'second'))
  await waitFor('the small store fails closed', () => !small.list.available)
  t.notOk(small.list.complete, 'incomplete: it misses a revocation every other process holds')
  t.equal(small.status().current, false, '/readyz says so')
  // Once the first expires, a reload fits everything again.
  await waitFor('the small store is current again', () => small.list.available, 6000)
  t.ok(small.list.complete)
  t.ok(small.list.get('main', 'sid', 'second', nowSeconds()), 'with the revocation it had missed')
})

t.test('a load of more stored revocations than the list holds: fail closed, without sweeping for each', async (t) => {
  const keyPrefix = newPrefix()
  const big = newStore(t, { url: redis.url, keyPrefix }, 5000)
  await big.start()
  for (let i = 0; i < 3000; i++) await big.publish(revocation('jti', `j-${i}`))
  const small = newStore(t, { url: redis.url, keyPrefix }, 100)
  let sweeps = 0
  const sweep = small.list.sweep.bind(small.list)
  small.list.sweep = (now: number) => { sweeps++; return sweep(now) }
  await small.start()
  t.equal(small.list.size, 100)
  t.notOk(small.list.available, 'not current: 2,900 revocations do not fit')
  t.ok(sweeps <= 2, `the list was not swept for every refused revocation (${sweeps})`)
})

t.test('Redis key names hold no sid, sub or jti: they are hashed', async (t) => {
  const keyPrefix = newPrefix()
  const client = rawClient(t, redis.url)
  const { logger, text } = capturingLogger()
  const store = newStore(t, { url: redis.url, keyPrefix, logger })
  await store.start()
  const published = [revocation('sid', 'secret-session-id'), revocation('sub', 'alice@example.com'), revocation('jti', 'token-id-123'), revocation('issuer', '')]
  for (const r of published) await store.publish(r)
  const keys = await keysOf(client, keyPrefix)
  t.equal(keys.length, published.length)
  for (const key of keys) {
    t.match(key, new RegExp(`^${keyPrefix}revocation:[0-9a-f]{64}$`))
    t.notMatch(key, /secret-session-id|alice|token-id-123|main/)
  }
  t.same(keys, published.map((r) => hashedKey(keyPrefix, r)).sort(), 'sha256 of revocationKey(issuer, kind, value)')
  t.notMatch(text(), /secret-session-id|alice|token-id-123/, 'no log line holds a revocation value')
})
