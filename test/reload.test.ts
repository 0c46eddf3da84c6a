/**
 * Configuration reload (src/reload.ts) driven directly: a valid configuration is swapped in, an invalid
 * one is refused and the old one keeps serving, settings that need a restart are reported, a request in
 * flight during the swap completes on the Verifier it started with, and SIGHUPs never overlap.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { ConfigError, loadConfig } from '../src/config/load.js'
import type { Config } from '../src/config/types.js'
import { Verifier } from '../src/core/verifier.js'
import { loggerOptions } from '../src/logger.js'
import type { FetchJson } from '../src/net/fetch-json.js'
import { changedSettings, reloadConfiguration, reloadOnSighup, RELOADABLE } from '../src/reload.js'
import { VERIFIER_INPUTS } from '../src/reload-plan.js'
import { configFor as baseConfigFor } from './helpers/config.js'
import { startJwksServer } from './helpers/jwks-server.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'
import { captureLog } from './helpers/log-capture.js'
import { waitFor } from './helpers/wait-for.js'

/** Load shedding is not under test here: a busy CI machine must not turn these answers into 503s. */
function configFor (issuers: Array<Record<string, unknown>>, extra: Record<string, unknown> = {}): Config {
  return baseConfigFor(issuers, { loadShedding: { enabled: false }, ...extra })
}

const ISS_A = 'https://a.example.com'
const ISS_B = 'https://b.example.com'
const keyA = makeKey('ES256')
const keyB = makeKey('RS256')
const tokenA = mint(keyA, idTokenClaims(ISS_A, 'aud-a'))
const tokenB = mint(keyB, idTokenClaims(ISS_B, 'aud-b'))
const issuerA = { id: 'a', issuer: ISS_A, audiences: ['aud-a'], jwks: jwksOf(keyA) }
const issuerB = { id: 'b', issuer: ISS_B, audiences: ['aud-b'], jwks: jwksOf(keyB) }
const INFO = { server: { logLevel: 'info' } }

/** A configuration file's text loaded the way server.ts does, from an in-memory file. */
function fileLoader (text: () => string): () => Config {
  return () => loadConfig({ argv: ['--config', '/etc/oidc-verifier.yaml'], env: {}, readFile: () => text() })
}

async function verifyStatus (app: Awaited<ReturnType<typeof buildApp>>, token: string, apiKey?: string): Promise<{ status: number, code: unknown }> {
  const res = await app.inject({ method: 'POST', url: '/verify', payload: { token }, ...(apiKey === undefined ? {} : { headers: { 'x-api-key': apiKey } }) })
  return { status: res.statusCode, code: (res.json() as { code?: unknown }).code }
}

t.test('a valid configuration is swapped in: new issuers accepted, removed ones refused', async (t) => {
  const { lines, logger } = captureLog()
  const app = await buildApp(configFor([issuerA], INFO), { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.ready()
  const before = app.verifier
  t.same(await verifyStatus(app, tokenA), { status: 200, code: undefined })
  t.same(await verifyStatus(app, tokenB), { status: 401, code: 'issuer_unknown' })

  const result = await reloadConfiguration(app, () => configFor([issuerB], INFO))
  t.equal(result.outcome, 'applied')
  t.same(result.problems, [])
  t.same(result.needsRestart, [])
  t.not(app.verifier, before, 'a new Verifier is in place')
  t.equal(app.verifierSlot.config.issuers[0]?.id, 'b', 'the slot carries the new configuration')
  t.same(await verifyStatus(app, tokenB), { status: 200, code: undefined })
  t.same(await verifyStatus(app, tokenA), { status: 401, code: 'issuer_unknown' })
  await result.retired
  t.equal(app.verifierSlot.retiring, 0, 'the old Verifier is closed')

  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.same(ready.json().issuers.map((i: { id: string }) => i.id), ['b'], '/readyz shows the new issuers')
  const line = lines().find((l) => l.msg === 'configuration reloaded')
  t.match(line, { component: 'reload', issuers: ['b'], changed: ['issuers'] })
})

t.test('an invalid configuration is refused with every problem logged; the old one keeps serving', async (t) => {
  const { lines, logger } = captureLog()
  const app = await buildApp(configFor([issuerA], INFO), { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.ready()
  const before = app.verifier

  const cases: Array<[string, string, RegExp[]]> = [
    ['unknown option and empty audiences', 'issuers:\n  - id: a\n    issuer: https://a.example.com\n    audiences: []\n    audience: x\n',
      [/issuers\[0\]\.audiences/, /issuers\[0\]\.audience: unknown option/]],
    ['not YAML', 'issuers: [\n', [/invalid YAML/]],
    ['empty file', '', [/empty/]],
    ['no issuers', 'server: { port: 9 }\n', [/issuers/]],
    ['huge nonsense', `issuers: ${'x'.repeat(200_000)}\n`, [/issuers/]]
  ]
  for (const [name, text, expected] of cases) {
    const result = await reloadConfiguration(app, fileLoader(() => text))
    t.equal(result.outcome, 'refused', name)
    for (const pattern of expected) t.ok(result.problems.some((p) => pattern.test(p)), `${name}: ${String(pattern)} in ${JSON.stringify(result.problems)}`)
    t.equal(app.verifier, before, `${name}: the old Verifier stays`)
    t.same(await verifyStatus(app, tokenA), { status: 200, code: undefined }, `${name}: the old configuration keeps serving`)
  }
  const refusals = lines().filter((l) => l.msg?.toString().startsWith('configuration reload refused'))
  t.equal(refusals.length, cases.length, 'one log line per refusal')
  t.match(refusals[0], { level: 50, component: 'reload', problems: [/audiences/, /unknown option/] })
  t.match(String(refusals[0]?.msg), /the previous configuration keeps serving/)

  const thrown = await reloadConfiguration(app, () => { throw new Error('EACCES') })
  t.equal(thrown.outcome, 'refused', 'an unexpected error while loading refuses too')
  t.match(thrown.problems, [/EACCES/])
  t.ok(new ConfigError(['x']) instanceof Error)
})

t.test('settings that need a restart are reported and not applied; the rest is', async (t) => {
  const { lines, logger } = captureLog()
  const app = await buildApp(configFor([issuerA], { server: { logLevel: 'info', port: 8080 } }), { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.ready()

  const next = configFor([issuerA, issuerB], {
    server: { logLevel: 'debug', port: 9090, bodyLimit: 100000, maxTokenBytes: 20000 },
    rateLimit: { max: 5 },
    jwks: { defaultFreshnessSeconds: 300 },
    batch: { maxTokens: 1, maxBodyBytes: 300000 }
  })
  const result = await reloadConfiguration(app, () => next)
  t.equal(result.outcome, 'applied')
  t.same(result.needsRestart, ['batch.maxBodyBytes', 'rateLimit.max', 'server.bodyLimit', 'server.port'])
  const batch = await app.inject({ method: 'POST', url: '/verify/batch', payload: { tokens: [tokenB, tokenB] } })
  t.match(batch.json(), { code: 'batch_too_large' }, 'batch.maxTokens is applied: the route reads it per request')
  t.equal(app.log.level, 'debug', 'the log level is applied')
  t.same(await verifyStatus(app, tokenB), { status: 200, code: undefined }, 'the issuers are applied')
  const warning = lines().find((l) => l.level === 40 && l.component === 'reload')
  t.match(warning, { settings: ['batch.maxBodyBytes', 'rateLimit.max', 'server.bodyLimit', 'server.port'] })
  t.match(String(warning?.msg), /needs a restart/)
  t.notMatch(JSON.stringify(lines()), /9090|100000|300000/, 'values are not logged, only the names of settings')
})

t.test('a change that needs a restart is reported by every reload until then; changing it back is no change', async (t) => {
  const { lines, logger } = captureLog()
  const running = { server: { logLevel: 'info', port: 8080 }, rateLimit: { max: 5 } }
  const app = await buildApp(configFor([issuerA], running), { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.ready()

  const changed = (): Config => configFor([issuerA], { server: { logLevel: 'info', port: 9090 }, rateLimit: { max: 50 } })
  for (const attempt of ['first', 'second', 'third']) {
    const result = await reloadConfiguration(app, changed)
    t.equal(result.outcome, 'applied', attempt)
    t.same(result.needsRestart, ['rateLimit.max', 'server.port'], `${attempt} reload: still waiting for a restart`)
  }
  t.equal(app.verifierSlot.config.server.port, 8080, 'the configuration in force has the running port')
  t.equal(app.verifierSlot.config.rateLimit.max, 5, 'and the running rate limit, which routes read per request')

  const back = await reloadConfiguration(app, () => configFor([issuerA], running))
  t.same(back.needsRestart, [], 'back to the running values: nothing waits for a restart')
  t.match(lines().filter((l) => l.msg === 'configuration reloaded').at(-1), { changed: [] }, 'and nothing changed')
  t.equal(lines().filter((l) => l.level === 40 && l.component === 'reload').length, 3, 'one warning per reload that had the change')
})

t.test('a new Verifier is built with the running values of what needs a restart', async (t) => {
  const app = await buildApp(configFor([issuerA], { server: { signatureChecks: 'event-loop' } }))
  t.teardown(() => app.close())
  await app.ready()
  const result = await reloadConfiguration(app, () => configFor([issuerA, issuerB], { server: { signatureChecks: 'thread-pool' } }))
  t.same(result.needsRestart, ['server.signatureChecks'])
  t.equal(app.verifier.signatureChecks, 'event-loop', 'the reported change is not applied behind the report\'s back')
  t.same(await verifyStatus(app, tokenB), { status: 200, code: undefined }, 'the issuers are applied')
})

const WEB_KEY = 'wk_0a1b2c3d4e5f60718293a4b5c6d7e8f9'
const webCaller = (rateLimit: Record<string, unknown>): Record<string, unknown> =>
  ({ keys: [{ id: 'web', sha256: createHash('sha256').update(WEB_KEY).digest('hex'), rateLimit }] })

async function callsAsWeb (app: Awaited<ReturnType<typeof buildApp>>, count: number): Promise<number[]> {
  const statuses: number[] = []
  for (let i = 0; i < count; i++) {
    statuses.push((await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': WEB_KEY }, payload: { token: tokenA } })).statusCode)
  }
  return statuses
}

t.test('a caller\'s own limit without max keeps following the running rateLimit.max after a reload that changed it', async (t) => {
  const callers = webCaller({ windowSeconds: 60 })
  const app = await buildApp(configFor([issuerA], { rateLimit: { max: 2 }, callers }))
  t.teardown(() => app.close())
  await app.ready()
  const result = await reloadConfiguration(app, () => configFor([issuerA], { rateLimit: { max: 1000 }, callers }))
  t.equal(result.outcome, 'applied')
  t.same(result.needsRestart, ['rateLimit.max'])
  t.same(await callsAsWeb(app, 3), [200, 200, 429], 'the running max of 2, not the 1000 that waits for a restart')
})

t.test('a caller\'s own limit without max is refused when the running rateLimit has none', async (t) => {
  const app = await buildApp(configFor([issuerA], { callers: webCaller({ max: 2 }) }))
  t.teardown(() => app.close())
  await app.ready()
  const before = app.verifier
  const result = await reloadConfiguration(app, () => configFor([issuerA], { rateLimit: { max: 1000 }, callers: webCaller({ windowSeconds: 60 }) }))
  t.equal(result.outcome, 'refused')
  t.match(result.problems, [/^callers\.keys\[0\]\.rateLimit\.max: missing: the running rateLimit\.max is not set .*set one, or restart instead of reloading$/])
  t.same(result.needsRestart, ['rateLimit.max'])
  t.equal(app.verifier, before)
  t.same(await callsAsWeb(app, 3), [200, 200, 429], 'the caller keeps its limit of 2')
})

t.test('a reload that would leave no caller keys is refused: a callers section dropped by mistake must not open every route', async (t) => {
  const app = await buildApp(configFor([issuerA], { callers: webCaller({ max: 100 }) }))
  t.teardown(() => app.close())
  await app.ready()
  const noKey = async (): Promise<number> => (await app.inject({ method: 'POST', url: '/verify', payload: { token: tokenA } })).statusCode
  t.equal(await noKey(), 403)
  const result = await reloadConfiguration(app, () => configFor([issuerA, issuerB]))
  t.equal(result.outcome, 'refused')
  t.match(result.problems, [/^callers\.keys: the new configuration has no caller keys, which would turn caller authentication off .*restart the service to run without them$/])
  t.equal(await noKey(), 403, 'a request without a key is still refused')
  t.same(await callsAsWeb(app, 1), [200], 'the caller\'s key still works')
  t.same(await verifyStatus(app, tokenB, WEB_KEY), { status: 401, code: 'issuer_unknown' }, 'nothing else of the refused reload is applied')
  // Keys replaced by others, and keys given where there were none, are reloads like any other.
  const rotated = await reloadConfiguration(app, () => configFor([issuerA], { callers: { keys: [{ id: 'next', sha256: createHash('sha256').update('wk_next').digest('hex') }] } }))
  t.equal(rotated.outcome, 'applied')
  const open = await buildApp(configFor([issuerA]))
  t.teardown(() => open.close())
  await open.ready()
  t.equal((await reloadConfiguration(open, () => configFor([issuerA], { callers: webCaller({ max: 100 }) }))).outcome, 'applied')
  t.equal((await open.inject({ method: 'POST', url: '/verify', payload: { token: tokenA } })).statusCode, 403, 'authentication turned on by a reload')
})

t.test('changedSettings compares leaves and lists whole, ignores the source', async (t) => {
  t.same(changedSettings({ a: { b: 1, c: [1, 2] }, source: 'x' }, { a: { b: 1, c: [1, 2] }, source: 'y' }), [])
  t.same(changedSettings({ a: { b: 1, c: [1, 2] } }, { a: { b: 2, c: [2, 1] }, d: true }), ['a.b', 'a.c', 'd'])
  t.same(changedSettings({ server: { tls: { cert: 'x' } } }, { server: {} }), ['server.tls'])
  t.ok(RELOADABLE.includes('issuers'))
  // A setting the Verifier is built from that a reload cannot apply would never rebuild it: a dead entry.
  t.same(VERIFIER_INPUTS.filter((input) => !RELOADABLE.some((r) => input === r || input.startsWith(`${r}.`))), [])
})

/** A fetcher whose first `held` calls wait until `release()`; the others answer at once. */
function gatedFetcher (jwks: unknown, held: number): { fetcher: FetchJson, calls: () => number, release: () => void } {
  let calls = 0
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const fetcher: FetchJson = async (url) => {
    calls++
    if (calls <= held) await gate
    return { url, body: jwks, durationMs: 1 }
  }
  return { fetcher, calls: () => calls, release }
}

async function until (condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5))
  if (!condition()) throw new Error(`timed out waiting for ${what}`)
}

t.test('a request in flight during a reload completes on the Verifier it started with', async (t) => {
  const remote = { id: 'a', issuer: ISS_A, audiences: ['aud-a'], jwksUri: 'https://a.example.com/jwks' }
  const gated = gatedFetcher(jwksOf(keyA), 1)
  const app = await buildApp(configFor([remote]), { fetcher: gated.fetcher, startVerifier: false })
  t.teardown(() => app.close())
  await app.ready()
  const old = app.verifier

  // The first request waits for the old Verifier's (held) JWKS fetch.
  const inFlight = app.inject({ method: 'POST', url: '/verify', payload: { token: tokenA } })
  await until(() => gated.calls() === 1, 'the first fetch')

  const result = await reloadConfiguration(app, () => configFor([remote], { jwks: { defaultFreshnessSeconds: 300 } }))
  t.equal(result.outcome, 'applied')
  t.not(app.verifier, old, 'swapped while the request is still running')
  t.equal(app.verifierSlot.retiring, 1, 'the old Verifier waits for its request')
  let retired = false
  void result.retired.then(() => { retired = true })
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(retired, 'not closed while a request from before the swap runs')

  t.same(await verifyStatus(app, tokenA), { status: 200, code: undefined }, 'a new request uses the new Verifier at once')

  gated.release()
  const res = await inFlight
  t.equal(res.statusCode, 200, 'the request in flight completes')
  t.equal(res.json().issuer.id, 'a')
  await result.retired
  t.equal(app.verifierSlot.retiring, 0, 'the old Verifier is closed once its request is done')
})

t.test('closing a Verifier does not break a verification already running on it', async (t) => {
  const gated = gatedFetcher(jwksOf(keyA), 1)
  const verifier = new Verifier(configFor([{ id: 'a', issuer: ISS_A, audiences: ['aud-a'], jwksUri: 'https://a.example.com/jwks' }]), { fetcher: gated.fetcher })
  const pending = verifier.verify(tokenA)
  await until(() => gated.calls() === 1, 'the fetch')
  verifier.close()
  gated.release()
  const identity = await pending
  t.equal(identity.issuer.id, 'a')
})

t.test('a reload that would leave a serving issuer without keys is refused; a new unreachable issuer is not', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(keyA) })
  t.teardown(() => idp.close())
  idp.set({ status: 500 }, '/broken')
  const remote = { id: 'a', issuer: ISS_A, audiences: ['aud-a'], jwksUri: idp.jwksUrl }
  const app = await buildApp(configFor([remote], { jwks: { backoffInitialSeconds: 60, backoffMaxSeconds: 60 } }))
  t.teardown(() => app.close())
  await app.ready()
  await until(() => app.verifier.ready, 'keys')

  const broken = await reloadConfiguration(app, () => configFor([{ ...remote, jwksUri: `${idp.url}/broken` }]), { readyTimeoutMs: 1000 })
  t.equal(broken.outcome, 'refused')
  t.match(broken.problems, [/issuers: a \(https:\/\/a\.example\.com\) has usable keys now but got none.*HTTP 500/])
  t.same(await verifyStatus(app, tokenA), { status: 200, code: undefined }, 'the old keys keep serving')

  const added = await reloadConfiguration(app, () => configFor([remote, { id: 'c', issuer: 'https://c.example.com', audiences: ['c'], jwksUri: `${idp.url}/broken` }]), { readyTimeoutMs: 1000 })
  t.equal(added.outcome, 'applied', 'an issuer that had no keys before does not block the reload')
  t.same(app.verifier.status().map((s) => [s.id, s.ready]), [['a', true], ['c', false]])
  t.same(await verifyStatus(app, tokenA), { status: 200, code: undefined })
})

t.test('SIGHUP reloads; signals during a reload run one more reload, never two at once', async (t) => {
  const { lines, logger } = captureLog()
  const app = await buildApp(configFor([issuerA], INFO), { loggerInstance: logger })
  const listenersBefore = process.listenerCount('SIGHUP')
  let loads = 0
  reloadOnSighup(app, () => {
    loads++
    return configFor([issuerA, issuerB], INFO)
  })
  await app.ready()
  t.equal(process.listenerCount('SIGHUP'), listenersBefore + 1)
  process.emit('SIGHUP', 'SIGHUP')
  process.emit('SIGHUP', 'SIGHUP')
  process.emit('SIGHUP', 'SIGHUP')
  // A reload logs 'configuration reloaded' as it ends; what follows it (one more reload, if a signal asks for
  // it, which loads the configuration first) runs in the same turn of the event loop, before this wait looks again.
  await until(() => lines().filter((l) => l.msg === 'configuration reloaded').length >= 2 && app.verifierSlot.retiring === 0, 'two reloads')
  t.equal(loads, 2, 'the first reload, then one more for the signals that came during it')
  t.equal(lines().filter((l) => l.msg === 'configuration reloaded').length, 2)
  t.same(await verifyStatus(app, tokenB), { status: 200, code: undefined })
  await app.close()
  t.equal(process.listenerCount('SIGHUP'), listenersBefore, 'the listener is removed when the app closes')
})

t.test('SIGHUP: a reload or a callback that throws is logged, and the next SIGHUP still reloads', async (t) => {
  const { lines, logger } = captureLog()
  const app = await buildApp(configFor([issuerA], INFO), { loggerInstance: logger })
  t.teardown(() => app.close())
  const unhandled: unknown[] = []
  const onUnhandled = (err: unknown): void => { unhandled.push(err) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })
  let applied = 0
  let refused = 0
  // A callback that throws once: a cluster worker telling a primary that is gone (ERR_IPC_CHANNEL_CLOSED).
  // And a reload that throws once: options whose heap limit cannot be read throw inside the reload itself.
  let heapThrows = false
  const options = {
    get heapLimitBytes (): number | undefined {
      if (heapThrows) { heapThrows = false; throw new Error('unreadable heap limit') }
      return undefined
    },
    onApplied: () => { if (++applied === 1) throw Object.assign(new Error('Channel closed'), { code: 'ERR_IPC_CHANNEL_CLOSED' }) },
    onRefused: () => { refused++ }
  }
  reloadOnSighup(app, () => configFor([issuerA, issuerB], INFO), options)
  await app.ready()
  const messages = (): string[] => lines().map((l) => String(l.msg))
  process.emit('SIGHUP', 'SIGHUP')
  await until(() => messages().includes('unexpected error after a configuration reload'), 'the callback\'s error logged')
  t.equal(applied, 1)
  heapThrows = true
  process.emit('SIGHUP', 'SIGHUP')
  await until(() => refused === 1, 'the failed reload ends as refused')
  t.ok(messages().some((m) => m.startsWith('configuration reload failed with an unexpected error')), 'the reload\'s error logged')
  process.emit('SIGHUP', 'SIGHUP')
  await until(() => applied === 2, 'a later SIGHUP still reloads')
  t.same(await verifyStatus(app, tokenB), { status: 200, code: undefined })
  await new Promise((resolve) => setImmediate(resolve))
  t.same(unhandled, [], 'no unhandled rejection')
})

t.test('a step after the swap that throws (here: the log line of the reload) leaves the reload applied, and the steps after it run', async (t) => {
  const raw: string[] = []
  let throwOnce = true
  // A destination as pino takes one (sonic-boom's shape: write a line, or throw), not a stream that would keep
  // the failed write pending.
  const destination = {
    write (text: string): void {
      if (throwOnce && text.includes('"msg":"configuration reloaded"')) {
        throwOnce = false
        throw new Error('EPIPE: the log destination is gone')
      }
      raw.push(...text.split('\n').filter(Boolean))
    }
  }
  const app = await buildApp(configFor([issuerA], INFO), { loggerInstance: pino(loggerOptions('info'), destination) })
  t.teardown(() => app.close())
  await app.ready()
  // server.port changed: a setting that needs a restart, whose warning comes after the line that throws.
  const result = await reloadConfiguration(app, () => configFor([issuerA, issuerB], { server: { logLevel: 'info', port: 9090 } }))
  t.equal(result.outcome, 'applied', 'the configuration is in force: applied, not refused')
  t.same(await verifyStatus(app, tokenB), { status: 200, code: undefined }, 'the new issuer is served')
  const lines = raw.map((l) => JSON.parse(l) as Record<string, unknown>)
  t.match(lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('configuration reloaded and in force, but a step after it failed')),
    { level: 50, err: { message: 'EPIPE: the log destination is gone' } }, 'the failure is logged')
  t.ok(lines.some((l) => typeof l.msg === 'string' && l.msg.includes('needs a restart to take effect')), 'the later steps ran: the needs-restart warning')
})

t.test('reloads called at once run one after the other: the last one called is the one in force', async (t) => {
  const slow = await startJwksServer({ json: jwksOf(keyB), delayMs: 400 })
  t.teardown(() => slow.close())
  const app = await buildApp(configFor([issuerA]))
  t.teardown(() => app.close())
  await app.ready()
  // The first waits for the new issuer's keys; the second only changes the log level of the configuration before it.
  const first = reloadConfiguration(app, () => configFor([issuerA, { id: 'b', issuer: ISS_B, audiences: ['aud-b'], jwksUri: slow.jwksUrl }]))
  const second = reloadConfiguration(app, () => configFor([issuerA], { server: { logLevel: 'debug' } }))
  const order: string[] = []
  await Promise.all([first.then(() => order.push('first')), second.then(() => order.push('second'))])
  t.same(order, ['first', 'second'])
  t.equal((await first).outcome, 'applied')
  t.equal((await second).outcome, 'applied')
  t.same(app.verifier.issuerIds, ['a'], 'the second reload was planned against what the first installed')
  t.equal(app.verifierSlot.config.server.logLevel, 'debug')
  t.equal(app.log.level, 'debug')
})

t.test('the configuration in force is checked as a whole: new values against the running ones', async (t) => {
  // A new token limit above the running body limit (whose change waits for a restart) would answer 413 for
  // tokens the limit admits.
  const app = await buildApp(configFor([issuerA]))
  t.teardown(() => app.close())
  await app.ready()
  const bigger = await reloadConfiguration(app, () => configFor([issuerA], { server: { bodyLimit: 262144, maxTokenBytes: 131072 } }))
  t.equal(bigger.outcome, 'refused')
  t.match(bigger.problems, [/^server\.maxTokenBytes: expected less than the running server\.bodyLimit \(65536\), got 131072 \(the new server\.bodyLimit waits for a restart: restart to apply both\)$/])
  t.same(bigger.needsRestart, ['server.bodyLimit'])
  t.equal(app.verifierSlot.config.server.maxTokenBytes, 16384, 'nothing applied')
  t.equal((await reloadConfiguration(app, () => configFor([issuerA], { server: { maxTokenBytes: 32768 } }))).outcome, 'applied', 'within the running limit it is')

  // The heap budget counts the running revocation list (its removal waits for a restart) beside a new cache.
  const MiB = 1024 * 1024
  const revoking = await buildApp(configFor([issuerA], { revocation: { enabled: true, maxEntries: 100_000 }, tokenCache: { maxBytes: 8 * MiB } }))
  t.teardown(() => revoking.close())
  await revoking.ready()
  const next = (): Config => configFor([issuerA], { tokenCache: { maxBytes: 64 * MiB } })
  const heapLimitBytes = 128 * MiB // 64 MiB of cache + 48 of headroom fit; with 100,000 revocations (~38 MiB) they do not
  const refused = await reloadConfiguration(revoking, next, { heapLimitBytes })
  t.equal(refused.outcome, 'refused')
  t.match(refused.problems, [/^tokenCache\.maxBytes \(64 MiB\) and revocation\.maxEntries \(100000, up to 39 MiB\) do not fit in this process's V8 heap: its limit is 128 MiB.*\. Counted with the running revocation list \(revocation\.enabled, revocation\.maxEntries changed, and waits for a restart\): lower tokenCache\.maxBytes to reload now, or restart to apply the new revocation settings$/])
  t.equal(revoking.verifierSlot.config.tokenCache.maxBytes, 8 * MiB)
  t.equal((await reloadConfiguration(revoking, next, { heapLimitBytes: 256 * MiB })).outcome, 'applied', 'with room for both it is applied')
})

t.test('a reload that changes nothing the Verifier is built from keeps it, keys and cache, even with the provider down', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(keyA) })
  const remote = { id: 'a', issuer: ISS_A, audiences: ['aud-a'], jwksUri: idp.jwksUrl }
  const hash = createHash('sha256').update('k1').digest('hex')
  const withCallers = (ids: string[]): Config => configFor([remote], { ...INFO, callers: { keys: ids.map((id) => ({ id, sha256: hash })) } })
  const { lines, logger } = captureLog()
  const app = await buildApp(withCallers(['one']), { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.ready()
  const verify = async (): Promise<number> => (await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': 'k1' }, payload: { token: tokenA } })).statusCode
  t.equal(await verify(), 200)
  await idp.close()

  const before = app.verifier
  const callersOnly = await reloadConfiguration(app, () => withCallers(['two']), { readyTimeoutMs: 300 })
  t.equal(callersOnly.outcome, 'applied', 'an unreachable provider does not block a change of caller keys')
  t.equal(app.verifier, before, 'the same Verifier')
  t.equal(app.verifierSlot.config.callers.keys[0]?.id, 'two', 'the configuration in force is the new one')
  t.equal(await verify(), 200, 'its keys are still there')
  t.match(lines().find((l) => l.msg === 'configuration reloaded'), { verifier: 'kept', changed: ['callers.keys'] })

  const quieter = await reloadConfiguration(app, () => configFor([remote], { server: { logLevel: 'error' }, callers: { keys: [{ id: 'two', sha256: hash }] } }), { readyTimeoutMs: 300 })
  t.equal(quieter.outcome, 'applied', 'nor a change of the log level')
  t.equal(app.verifier, before)
  t.equal(app.log.level, 'error', 'the app logs at the new level')
  const verifierLogger = (app.verifier as unknown as { logger: { isLevelEnabled: (level: string) => boolean } }).logger
  t.notOk(verifierLogger.isLevelEnabled('warn'), 'and so does the kept Verifier: its logger follows the app\'s')

  const jwksChange = await reloadConfiguration(app, () => configFor([remote], { ...INFO, jwks: { defaultFreshnessSeconds: 120 }, callers: { keys: [{ id: 'two', sha256: hash }] } }), { readyTimeoutMs: 300 })
  t.equal(jwksChange.outcome, 'applied', 'a new Verifier takes over the keys held: the provider down does not matter')
  const rebuilt = app.verifier
  t.not(rebuilt, before, 'a new Verifier')
  t.equal(await verify(), 200, 'with the keys')

  const smallerLimit = await reloadConfiguration(app, () => configFor([remote], { ...INFO, jwks: { defaultFreshnessSeconds: 120 }, fetch: { maxResponseBytes: 65536 }, callers: { keys: [{ id: 'two', sha256: hash }] } }), { readyTimeoutMs: 300 })
  t.equal(smallerLimit.outcome, 'refused', 'keys read under a larger response limit must be fetched again, and cannot')
  t.match(smallerLimit.problems, [/^issuers: a \(https:\/\/a\.example\.com\) has usable keys now but got none under the new configuration/])
  t.equal(app.verifier, rebuilt)
})

t.test('a stop overtakes reloads: none starts once the app closes, and one waiting for keys is abandoned, its Verifier closed', async (t) => {
  let release = (): void => {}
  const idp = await startJwksServer({ json: jwksOf(keyB), hold: new Promise<void>((resolve) => { release = resolve }) })
  t.teardown(async () => { release(); await idp.close() })
  const remoteB = { id: 'b', issuer: ISS_B, audiences: ['aud-b'], jwksUri: idp.jwksUrl }
  const { lines, logger } = captureLog()
  // b has keys (inline); the reload moves them to a URL whose answer is held: it waits for them.
  const app = await buildApp(configFor([issuerA, issuerB], INFO), { loggerInstance: logger })
  let callbacks = 0
  const listeners = process.listenerCount('SIGHUP')
  reloadOnSighup(app, () => configFor([issuerA, remoteB], INFO), { readyTimeoutMs: 60_000, onApplied: () => { callbacks++ }, onRefused: () => { callbacks++ } })
  // A hook of the close's first step, after reloadOnSighup's: what a SIGHUP would find as the drain begins.
  let duringClose: number | undefined
  app.addHook('preClose', (done) => { duringClose = process.listenerCount('SIGHUP'); done() })
  await app.ready()
  const before = app.verifier
  const waiting = reloadConfiguration(app, () => configFor([issuerA, remoteB], INFO), { readyTimeoutMs: 60_000 })
  await waitFor('the key fetch has begun', () => idp.requests() >= 1)
  await app.close()
  // From the close's first step (the drain of a stop), no SIGHUP listener of the app's: a SIGHUP starts nothing. (Not
  // emitted here: it would reach tap's signal-exit handler alone, which re-raises it and ends the test process.)
  t.equal(duringClose, listeners, 'the reload-on-SIGHUP listener is gone as the close begins')
  const result = await waiting
  t.equal(result.outcome, 'refused')
  t.same(result.problems, ['the service is stopping'])
  t.equal(app.verifier, before, 'nothing swapped in after the close')
  t.equal(callbacks, 0, 'no SIGHUP reload ran')
  t.ok(lines().some((l) => l.msg === 'configuration reload abandoned: the service is stopping' && l.level === 30), 'said at info, not as a refusal')
  t.equal((await reloadConfiguration(app, () => configFor([issuerA, issuerB], INFO))).outcome, 'refused', 'a reload asked after the close is abandoned at once')
})
