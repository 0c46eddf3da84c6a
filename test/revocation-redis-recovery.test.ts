/**
 * The Redis revocation store recovers from what a real Redis does to it, against a real redis-server (each test
 * starts its own):
 * - half-open connections (a failover, a dropped NAT entry: silent, never closed): the commands connection is
 *   started again after a timeout, so reads and writes recover once Redis is reachable, not ~15 minutes later;
 * - two deployments kept apart by database number only: pub/sub ignores databases, so the channel names it;
 * - a database that cannot be selected: nothing read from or written to database 0 instead (fail closed);
 * - Redis restarted empty: the revocations the running replicas hold are written back for the next one, after the
 *   list is current again (pipelined), and a subscriber lost meanwhile is noticed;
 *   a write-back that failed (a write pause past commandTimeoutMs, as in a failover) is tried again;
 * - the database is selected again when the commands connection reconnects alone (Redis's idle timeout).
 */
import t, { type Test } from 'tap'
import { createServer, createConnection, type Socket, type Server } from 'node:net'
import { once } from 'node:events'
import { findRedisServer, startRedis, type RedisHandle } from './helpers/redis.js'
import { capturingLogger, newPrefix, newStore, nowSeconds, rawClient, revocation, waitFor } from './helpers/revocation-store.js'

findRedisServer()


async function redisFor (t: Test): Promise<RedisHandle> {
  const own = await startRedis()
  t.teardown(async () => { await own.close() })
  return own
}

/**
 * A TCP proxy in front of Redis. blackholeExisting() makes every connection open at that moment silent in both
 * directions without closing it (what a half-open connection after a failover, a NAT/conntrack reset or a
 * network partition looks like); connections made afterwards are forwarded normally.
 */
async function proxyTo (t: Test, port: number): Promise<{ url: string, blackholeExisting: () => number }> {
  const pairs = new Set<{ client: Socket, upstream: Socket, dead: boolean }>()
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port })
    const pair = { client, upstream, dead: false }
    pairs.add(pair)
    client.on('data', (chunk) => { if (!pair.dead) upstream.write(chunk) })
    upstream.on('data', (chunk) => { if (!pair.dead) client.write(chunk) })
    const end = (): void => { if (!pair.dead) { client.destroy(); upstream.destroy() } }
    client.on('error', end); upstream.on('error', end)
    client.on('close', end); upstream.on('close', end)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  t.teardown(async () => {
    for (const pair of pairs) { pair.client.destroy(); pair.upstream.destroy() }
    await new Promise((resolve) => server.close(resolve))
  })
  return {
    url: `redis://127.0.0.1:${address.port}`,
    blackholeExisting: () => {
      let n = 0
      for (const pair of pairs) if (!pair.dead && !pair.client.destroyed) { pair.dead = true; n++ }
      return n
    }
  }
}

t.test('half-open connections (silent, never closed): once Redis is reachable again the store recovers, for reads and writes', async (t) => {
  const own = await redisFor(t)
  const proxy = await proxyTo(t, own.port)
  const { logger } = capturingLogger()
  const store = newStore(t, { url: proxy.url, keyPrefix: newPrefix(), logger, maxStalenessSeconds: 2, commandTimeoutMs: 500 })
  await store.start()
  t.equal(store.list.available, true)
  t.equal(await store.publish(revocation('sid', 'before')), 'added')

  t.equal(proxy.blackholeExisting(), 2, 'both connections (commands, subscriber) go silent')
  // The subscriber's PING times out, it reconnects (through the proxy, which forwards new connections): Redis is
  // reachable again at once. The reload on the silent commands connection times out, and that connection is
  // started again. Whether the list went unavailable meanwhile depends on how fast that is (maxStalenessSeconds
  // is 2): what matters is that it is current once the staleness has passed. (Before the fix, the commands
  // connection was never started again: the list stayed unavailable until the kernel dropped the socket.)
  await new Promise((resolve) => setTimeout(resolve, 2500))
  let recovered = true
  try {
    await waitFor('the list is current again (Redis is reachable on a new connection)', () => store.list.available, 15_000)
  } catch { recovered = false }
  t.ok(recovered, 'current again within 15 s of Redis being reachable')
  const published = await store.publish(revocation('sid', 'after')).then((r) => r, (err: unknown) => `${String(err)} / ${String((err as Error).cause)}`)
  t.equal(published, 'added', 'and a revocation can be recorded again')
})

t.test('two deployments on one Redis in different databases (/0, /1) do not see each other\'s revocations', async (t) => {
  const own = await redisFor(t)
  const keyPrefix = 'oidc-verifier:' // the default: each deployment has its own database, so nothing says to change it
  const prod = newStore(t, { url: `${own.url}/0`, keyPrefix })
  const staging = newStore(t, { url: `${own.url}/1`, keyPrefix })
  await Promise.all([prod.start(), staging.start()])
  const keys0 = rawClient(t, `${own.url}/0`)
  const keys1 = rawClient(t, `${own.url}/1`)

  // Staging's operator logs everyone of its issuer "main" out.
  await staging.publish(revocation('issuer', ''))
  t.equal((await keys1.keys('*')).length, 1, 'stored in staging\'s database')
  t.equal((await keys0.keys('*')).length, 0, 'not in production\'s')
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal(prod.list.check('main', { sub: 'anyone', iat: nowSeconds() - 10 }, nowSeconds()), undefined,
    'production does not refuse its tokens because of staging\'s revocation (PUBLISH ignores the database number)')
  // And production replicas now disagree: one started later does not hold it.
  const prodLate = newStore(t, { url: `${own.url}/0`, keyPrefix })
  await prodLate.start()
  t.equal(prodLate.list.size, prod.list.size, 'a production replica started later holds what the others hold')
})

t.test('a database in the URL that cannot be selected is not silently replaced by database 0', async (t) => {
  const own = await redisFor(t)
  const other = rawClient(t, `${own.url}/0`)
  const keyPrefix = 'oidc-verifier:'
  // Another deployment lives in database 0.
  const neighbour = newStore(t, { url: `${own.url}/0`, keyPrefix })
  await neighbour.start()
  await neighbour.publish(revocation('issuer', ''))
  const { logger, text } = capturingLogger()
  // databases is 16 by default: 16 is out of range (a typo, a managed Redis with fewer databases, an ACL without SELECT).
  const store = newStore(t, { url: `${own.url}/16`, keyPrefix, logger })
  await store.start()
  t.equal(store.list.available, false, 'not current: it cannot read its database')
  t.equal(store.list.size, 0, 'and holds none of database 0\'s revocations')
  const write = await store.publish(revocation('sid', 'written-somewhere')).then((r) => r, () => 'refused')
  t.equal(write, 'refused', 'a revocation is not written to database 0')
  t.equal((await other.keys('*')).length, 1, 'database 0 holds only its own')
  t.match(text(), /Redis refuses to select database 16 of revocation\.redis\.url \(ERR DB index is out of range\)/, 'the log names the setting')
})

t.test('Redis restarted empty (no persistence, or an RDB snapshot older than the last revocations): revocations held by the running replicas are not lost for the next one', async (t) => {
  const own = await redisFor(t)
  const keyPrefix = newPrefix()
  const { logger, text } = capturingLogger()
  const a = newStore(t, { url: own.url, keyPrefix, logger, maxStalenessSeconds: 1, commandTimeoutMs: 300 })
  await a.start()
  await a.publish(revocation('sub', 'victim'))
  await own.restart()
  await waitFor('A is current again after the restart', async () => {
    return a.list.available && a.status().lastCurrentAt !== null && (await rawClient(t, own.url).ping()) === 'PONG'
  }, 10_000)
  await waitFor('A reloaded and wrote back after the restart', () => /written back/.test(text()), 10_000)
  t.ok(a.list.get('main', 'sub', 'victim', nowSeconds()), 'A still refuses the victim\'s tokens')
  const b = newStore(t, { url: own.url, keyPrefix })
  await b.start()
  t.ok(b.list.get('main', 'sub', 'victim', nowSeconds()), 'a replica started after the restart refuses them too')
  t.match(text(), /Redis had lost revocations this process holds .*; written back/)
})

t.test('a database in the URL is selected again when the commands connection reconnects alone', async (t) => {
  const own = await redisFor(t)
  const raw = rawClient(t, own.url)
  const store = newStore(t, { url: `${own.url}/1`, keyPrefix: newPrefix() })
  await store.start()
  t.equal(await store.publish(revocation('sid', 'first')), 'added')
  // As Redis's idle `timeout` does (pub/sub clients are exempt): the commands connection only.
  await raw.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
  await waitFor('a new commands connection', async () => ((await raw.client('LIST')) as string).includes('name=oidc-verifier-revocations '), 5000)
  t.equal(store.list.available, true, 'still current (the subscriber never left)')
  let second: unknown
  await waitFor('a revocation recorded again', async () => {
    second = await store.publish(revocation('sid', 'second')).then((r) => r, (err: unknown) => String((err as Error).cause))
    return second === 'added'
  }, 5000).catch(() => {})
  t.equal(second, 'added', 'recorded, in database 1')
  t.equal((await rawClient(t, `${own.url}/1`).keys('*')).length, 2, 'both in database 1')
  t.equal((await raw.keys('*')).length, 0, 'none in database 0')
})

t.test('a subscriber lost while revocations are written back is noticed: nothing published meanwhile is missed', async (t) => {
  const own = await redisFor(t)
  const raw = rawClient(t, own.url)
  const keyPrefix = newPrefix()
  const subscriberId = async (name: string): Promise<string> => {
    const line = ((await raw.client('LIST')) as string).split('\n').find((l) => l.includes(`name=${name} `) && /sub=[1-9]/.test(l))
    if (line === undefined) throw new Error(`no subscriber ${name}`)
    return /id=(\d+)/.exec(line)![1]!
  }
  const a = newStore(t, { url: own.url, keyPrefix, commandTimeoutMs: 4000, redisOptions: { connectionName: 'replica-a' } })
  const b = newStore(t, { url: own.url, keyPrefix, commandTimeoutMs: 4000, redisOptions: { connectionName: 'replica-b' } })
  await Promise.all([a.start(), b.start()])
  await a.publish(revocation('sid', 'held-by-a'))
  await raw.flushdb() // Redis lost it: A writes it back after its next load
  await raw.call('CLIENT', 'PAUSE', '1500', 'WRITE') // the write-back waits (a slow or busy Redis)
  await raw.client('KILL', 'ID', await subscriberId('replica-a')) // A reloads, then writes back (held up)
  await new Promise((resolve) => setTimeout(resolve, 500))
  await raw.client('KILL', 'ID', await subscriberId('replica-a')) // and loses its subscriber again meanwhile
  t.equal(await b.publish(revocation('sid', 'revoked-elsewhere')), 'added', 'another replica records one meanwhile')
  await waitFor('A holds it', () => a.list.get('main', 'sid', 'revoked-elsewhere', nowSeconds()) !== undefined, 8000).catch(() => {})
  t.ok(a.list.get('main', 'sid', 'revoked-elsewhere', nowSeconds()), 'A holds it (it read everything again)')
  await waitFor('the write-back', async () => (await raw.keys('*')).length === 2, 8000).catch(() => {})
  t.equal((await raw.keys('*')).length, 2, 'and Redis holds both again')
})

t.test('Redis restarted empty under a large list: the list stays available while thousands are written back', async (t) => {
  const own = await redisFor(t)
  const { logger, text } = capturingLogger()
  const store = newStore(t, { url: own.url, keyPrefix: newPrefix(), maxStalenessSeconds: 2, commandTimeoutMs: 500, logger }, 30_000)
  await store.start()
  const N = 20_000
  for (let i = 0; i < N; i++) store.list.receive(revocation('sid', `s${i}`), nowSeconds())
  await own.restart()
  const restartedAt = Date.now()
  const raw = rawClient(t, own.url)
  let currentWhileWriting = false
  // Until Redis holds them all again: the list read back is current while the write-back runs.
  await waitFor('the write-back', async () => {
    const size = await raw.dbsize()
    // Current again: read back after the restart (until the staleness passes, the list is still the old one).
    if (store.list.available && (store.status().lastCurrentAt ?? 0) >= restartedAt && size > 0 && size < N) currentWhileWriting = true
    return size === N
  }, 20_000)
  t.equal(await raw.dbsize(), N, 'every revocation written back')
  t.match(text(), new RegExp(`"count":${N}[^\\n]*written back`), 'and said so')
  // Before the fix the write-back ran first, one round trip each, before the list was current again: for 30,000
  // revocations longer than the staleness, every verification failing closed meanwhile.
  t.ok(currentWhileWriting, 'the list was current again before the write-back ended')
})

t.test('a write-back that failed once (a write pause longer than commandTimeoutMs, as during a failover) is tried again', async (t) => {
  const own = await redisFor(t)
  const raw = rawClient(t, own.url)
  const keyPrefix = newPrefix()
  const { logger, text } = capturingLogger()
  const a = newStore(t, { url: own.url, keyPrefix, logger, maxStalenessSeconds: 2, commandTimeoutMs: 300, redisOptions: { connectionName: 'replica-a' } })
  await a.start()
  await a.publish(revocation('sub', 'victim'))
  await raw.flushdb() // Redis lost it (restarted without persistence)
  await raw.call('CLIENT', 'PAUSE', '1000', 'WRITE') // writes held up for longer than commandTimeoutMs
  const line = ((await raw.client('LIST')) as string).split('\n').find((l) => l.includes('name=replica-a ') && /sub=[1-9]/.test(l))!
  await raw.client('KILL', 'ID', /id=(\d+)/.exec(line)![1]!) // A reloads, then writes back
  await waitFor('the write-back failed', () => /could not be written back/.test(text()), 5000)
  // Redis takes writes again; A is current; give it several ping intervals and a reconnection.
  await new Promise((resolve) => setTimeout(resolve, 4000))
  t.equal(a.list.available, true, 'A is current')
  t.equal((await raw.keys('*')).length, 1, 'Redis holds the revocation again (written back on a later try)')
  const b = newStore(t, { url: own.url, keyPrefix })
  await b.start()
  t.ok(b.list.get('main', 'sub', 'victim', nowSeconds()), 'a replica started now refuses the victim\'s tokens')
})
