/**
 * What the failed-check bound remembers per client address stays small whatever the client sends: with
 * server.trustProxy: true the address is the left-most X-Forwarded-For entry, written by the client, in a
 * header of up to 32 KiB (server.maxTokenBytes + 16 KiB). Remembering a whole header per address (a long
 * entry, or a short one that V8 keeps as a slice of the header) let one client fill the heap.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
const heapUsedMB = (): number => { gc(); gc(); return process.memoryUsage().heapUsed / 1e6 }

const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex')
const issuers = [{ id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(makeKey('ES256')) }]
const PAD = 'a'.repeat(30_000)
const REQUESTS = 1500

t.test('distinct forwarded addresses in 30 KB headers do not keep 30 KB each', async (t) => {
  const app = await buildApp(configFor(issuers, {
    server: { trustProxy: true },
    callers: { keys: [{ id: 'web', sha256: sha256('the-right-key-0123456789abcdef') }] }
  }), { startVerifier: false })
  t.teardown(() => app.close())
  const guess = async (forwardedFor: string): Promise<number> => (await app.inject({
    method: 'POST', url: '/verify', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': forwardedFor, 'x-api-key': 'wrong-guess' }, payload: { token: 'x' }
  })).statusCode
  for (let i = 0; i < 20; i++) await guess('192.0.2.1')
  const shapes: Array<[string, (i: number) => string, number[]]> = [
    // Not an address: one bucket for all of them, so past maxFailuresPerMinute (60) they are refused together.
    ['an entry that is no address', (i) => `${i}${PAD}`, [403, 429]],
    ['an IPv4 address of 13+ characters before more entries', (i) => `198.${100 + (i >> 7)}.${100 + (i & 127)}.100,${PAD}`, [403]]
  ]
  for (const [name, header, expected] of shapes) {
    const before = heapUsedMB()
    const statuses = new Set<number>()
    for (let i = 0; i < REQUESTS; i++) statuses.add(await guess(header(i)))
    t.same([...statuses], expected, `${name}: statuses`)
    await new Promise((resolve) => setTimeout(resolve, 200))
    // inject()'s own streams (light-my-request) can still hold their requests through pending immediates: under CPU
    // contention, one per request made so far was still queued after the 200 ms (the failures seen: +63.6 MB with
    // 1,520 immediates, then released). What is measured is what the service keeps, so they are let run first (5 s at most).
    await settled()
    const grown = heapUsedMB() - before
    // 1,500 headers of 30 KB kept would be 45 MB.
    t.ok(grown < 15, `${name}: the heap grew by ${grown.toFixed(1)} MB${grown < 15 ? '' : await whenReleased(before)}`)
  }
})

/** Waits until no setImmediate callback is pending (inject()'s streams), at most 5 s. */
async function settled (): Promise<void> {
  const started = Date.now()
  while (process.getActiveResourcesInfo().includes('Immediate') && Date.now() - started < 5000) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/**
 * For a failure's message: what was running when the heap was found grown, and when (if within 5 s) it fell back.
 * This test has failed twice, both times under CPU contention (three test files at once) and never alone: the first
 * shape's heap +63.6 MB (~42 KB per request: each whole request held), released by the next measurement (-61.7 MB).
 * How long it takes to fall back and the resources alive meanwhile (timers, sockets) say what held them.
 */
async function whenReleased (before: number): Promise<string> {
  const resources = process.getActiveResourcesInfo().reduce<Record<string, number>>((counts, name) => ({ ...counts, [name]: (counts[name] ?? 0) + 1 }), {})
  const started = Date.now()
  while (Date.now() - started < 5000) {
    await new Promise((resolve) => setTimeout(resolve, 250))
    const grown = heapUsedMB() - before
    if (grown < 15) return `; active resources then: ${JSON.stringify(resources)}; back to +${grown.toFixed(1)} MB after ${Date.now() - started} ms more`
  }
  return `; active resources then: ${JSON.stringify(resources)}; still +${(heapUsedMB() - before).toFixed(1)} MB 5 s later`
}
