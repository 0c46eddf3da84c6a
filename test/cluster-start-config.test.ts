/**
 * The configuration a cluster worker starts with (src/cluster-start-config.ts): the text the other workers last
 * applied, with the values the service started with for the settings a reload cannot change; the file as it is
 * now when that text no longer resolves; no start when nothing fits; and the questions and reports to the primary
 * over a stand-in channel. test/cluster-revocations.test.ts runs a replacement worker for real (WORKERS=2).
 */
import t from 'tap'
import { EventEmitter } from 'node:events'
import { askStartConfig, reportApplied, reportRefused, serveStartConfig, workerConfig, type StartConfigAnswer, type WorkerConfigSources } from '../src/cluster-start-config.js'
import type { PrimaryChannel } from '../src/cluster-primary.js'
import type { LogLevelNumber } from '../src/cluster-log.js'
import { ConfigError } from '../src/config/load.js'
import type { Config } from '../src/config/types.js'
import { configFor } from './helpers/config.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

const jwks = jwksOf(makeKey('ES256'))
const issuer = (audiences: string[]) => [{ id: 'main', issuer: 'https://idp.example.com', audiences, jwks }]
const atStart = configFor(issuer(['aud']), { revocation: { enabled: true }, server: { port: 8080 } })
const answer = (applied: string | null = 'the text the workers applied'): StartConfigAnswer => ({ start: JSON.stringify(atStart), applied })

/** Sources whose texts resolve to the given configurations (a ConfigError for a text not listed). */
function sources (texts: Record<string, Config>, now: () => Config): WorkerConfigSources & { lines: Array<[string, LogLevelNumber | undefined]> } {
  const lines: Array<[string, LogLevelNumber | undefined]> = []
  return {
    lines,
    fromText: (text) => { const config = texts[text]; if (config === undefined) throw new ConfigError([`keys.pem: cannot read the file: it does not exist (${text})`]); return config },
    now,
    log: (msg, level) => { lines.push([msg, level]) }
  }
}
const notNow = (): Config => { throw new Error('the file as it is now must not be read') }

t.test('the applied text, with the start values of what a reload cannot change', async (t) => {
  const applied = configFor(issuer(['aud', 'aud2']), { revocation: { enabled: false }, server: { port: 9090 } })
  const s = sources({ 'the text the workers applied': applied }, notNow)
  const config = workerConfig(answer(), s)
  t.same(config.issuers[0]?.audiences, ['aud', 'aud2'], 'a reloadable setting: the applied value')
  t.equal(config.revocation.enabled, true, 'revocation: the value the service started with')
  t.equal(config.server.port, 8080, 'the port too')
  t.equal(s.lines.length, 1)
  t.match(s.lines[0]?.[0], /revocation\.enabled, server\.port changed since the service started and needs a restart of the whole service/)
  t.equal(s.lines[0]?.[1], 40, 'a warning')
})

t.test('an unchanged configuration: the same values, nothing logged', async (t) => {
  const s = sources({ 'the text the workers applied': configFor(issuer(['aud']), { revocation: { enabled: true }, server: { port: 8080 } }) }, notNow)
  const config = workerConfig(answer(), s)
  t.same(JSON.parse(JSON.stringify(config)), JSON.parse(answer().start))
  t.same(s.lines, [])
})

t.test('a text that no longer resolves: the file as it is now, the same way', async (t) => {
  const now = configFor(issuer(['aud', 'aud3']), { revocation: { enabled: false }, server: { port: 8080 } })
  const s = sources({}, () => now)
  const config = workerConfig(answer(), s)
  t.same(config.issuers[0]?.audiences, ['aud', 'aud3'])
  t.equal(config.revocation.enabled, true, 'still the start value')
  t.match(s.lines[0], [/the configuration the other workers run no longer resolves \(keys\.pem: cannot read the file/, 40])
  t.throws(() => workerConfig(answer(), sources({}, () => { throw new ConfigError(['c.yaml: typo: unknown option']) })), ConfigError, 'neither resolves: no start')
  t.throws(() => workerConfig(answer(), sources({}, () => { throw new Error('disk on fire') })), /disk on fire/)
})

t.test('the file as it is now without the caller keys the service started with: no start, as a reload would be refused', async (t) => {
  const callers = { keys: [{ id: 'web', sha256: 'a'.repeat(64) }] }
  const withKeys = configFor(issuer(['aud']), { revocation: { enabled: true }, server: { port: 8080 }, callers })
  const keyed: StartConfigAnswer = { start: JSON.stringify(withKeys), applied: 'the text the workers applied' }
  const refused = ((): unknown => {
    try { return workerConfig(keyed, sources({}, () => configFor(issuer(['aud']), { revocation: { enabled: true }, server: { port: 8080 } }))) } catch (err) { return err }
  })()
  t.type(refused, ConfigError)
  t.match((refused as ConfigError).problems, [/^callers\.keys: the new configuration has no caller keys, which would turn caller authentication off/])
  const rotated = { keys: [{ id: 'web2', sha256: 'b'.repeat(64) }] }
  t.same(workerConfig(keyed, sources({}, () => configFor(issuer(['aud']), { revocation: { enabled: true }, server: { port: 8080 }, callers: rotated }))).callers.keys.map((k) => k.id), ['web2'], 'other keys: started with them')
})

t.test('started from the environment: the environment as it is, the same way', async (t) => {
  const s = sources({}, () => configFor(issuer(['aud']), { revocation: { enabled: false }, server: { port: 8080 } }))
  t.equal(workerConfig(answer(null), s).revocation.enabled, true)
})

t.test('values that do not fit the running ones: no start, as a reload would be refused', async (t) => {
  // A token limit the running body limit cannot carry (bodyLimit waits for a restart).
  const tooBig = configFor(issuer(['aud']), { revocation: { enabled: true }, server: { port: 8080, maxTokenBytes: 100_000, bodyLimit: 200_000 }, batch: { maxBodyBytes: 400_000 } })
  const err = (() => { try { workerConfig(answer(), sources({ 'the text the workers applied': tooBig }, notNow)) } catch (e) { return e } })()
  t.ok(err instanceof ConfigError)
  t.match((err as ConfigError).problems, [/server\.maxTokenBytes: expected less than the running server\.bodyLimit/])
})

function fakePrimary (answerWith: (message: unknown) => unknown): PrimaryChannel & { listeners: () => number, sent: unknown[] } {
  const events = new EventEmitter()
  const sent: unknown[] = []
  return {
    sent,
    listeners: () => events.listenerCount('message'),
    send: (message, callback) => {
      sent.push(message)
      callback(null)
      const reply = answerWith(message)
      if (reply !== undefined) setImmediate(() => events.emit('message', reply))
      return true
    },
    on: (event, listener) => events.on(event, listener),
    off: (event, listener) => events.off(event, listener)
  }
}

t.test('asking the primary, and telling it what was applied', async (t) => {
  const primary = fakePrimary(() => ({ type: 'oidc-verifier:start-config', start: '{}', applied: 'issuers: []' }))
  t.same(await askStartConfig(primary, 1_000), { start: '{}', applied: 'issuers: []' })
  t.same(primary.sent, [{ type: 'oidc-verifier:start-config?' }])
  t.equal(primary.listeners(), 0, 'stops listening')
  t.same(await askStartConfig(fakePrimary(() => ({ type: 'oidc-verifier:start-config', start: '{}', applied: null })), 1_000), { start: '{}', applied: null }, 'started from the environment')
  const other = fakePrimary(() => ({ type: 'oidc-verifier:revocations', revocations: [] }))
  t.equal(await askStartConfig(other, 50), undefined, 'other messages are not the answer: no answer in time')
  t.equal(other.listeners(), 0)
  t.equal(await askStartConfig({ send: undefined, on: () => {}, off: () => {} }), undefined, 'no primary')
  const reported = fakePrimary(() => undefined)
  reportApplied('issuers: [x]', 5, reported)
  t.same(reported.sent, [{ type: 'oidc-verifier:applied-config', text: 'issuers: [x]', startedAt: 5 }])
})

t.test('the primary\'s side: answers with the start configuration and the last text a worker applied', async (t) => {
  const cluster = (await import('node:cluster')).default
  const before = new Set(cluster.listeners('message'))
  serveStartConfig(atStart, 'the start text')
  const listener = cluster.listeners('message').find((l) => !before.has(l)) as (worker: unknown, message: unknown) => void
  t.teardown(() => { cluster.off('message', listener) })
  const worker = (): { sent: unknown[], send: (message: unknown, callback: () => void) => boolean } => {
    const sent: unknown[] = []
    return { sent, send: (message, callback) => { sent.push(message); callback(); return true } }
  }
  const first = worker()
  listener(first, { type: 'oidc-verifier:start-config?' })
  t.same(first.sent, [{ type: 'oidc-verifier:start-config', start: JSON.stringify(atStart), applied: 'the start text' }])
  listener(first, { type: 'oidc-verifier:applied-config', text: 'the reloaded text' })
  listener(first, { type: 'oidc-verifier:applied-config', text: 42 })
  listener(first, 'garbage')
  listener(first, null)
  const second = worker()
  listener(second, { type: 'oidc-verifier:start-config?' })
  t.same(second.sent, [{ type: 'oidc-verifier:start-config', start: JSON.stringify(atStart), applied: 'the reloaded text' }], 'the last text applied; other messages change nothing')
  // Started from the environment: there is no text to keep, whatever a worker reports.
  serveStartConfig(atStart, undefined)
  const fromEnv = cluster.listeners('message').find((l) => !before.has(l) && l !== listener) as (worker: unknown, message: unknown) => void
  t.teardown(() => { cluster.off('message', fromEnv) })
  fromEnv(first, { type: 'oidc-verifier:applied-config', text: 'a text' })
  const third = worker()
  fromEnv(third, { type: 'oidc-verifier:start-config?' })
  t.same(third.sent, [{ type: 'oidc-verifier:start-config', start: JSON.stringify(atStart), applied: null }])
})

t.test('a reload some workers apply and others refuse: the refusers are stopped, and replaced from the applied text', async (t) => {
  const cluster = (await import('node:cluster')).default
  const before = new Set(cluster.listeners('message'))
  const lines: Array<[string, LogLevelNumber | undefined]> = []
  const served = serveStartConfig(atStart, 'the start text', (msg, level) => { lines.push([msg, level]) })
  const listener = cluster.listeners('message').find((l) => !before.has(l)) as (worker: unknown, message: unknown) => void
  t.teardown(() => { cluster.off('message', listener) })
  let pids = 100
  const worker = (): { sent: unknown[], signals: string[], send: (message: unknown, callback: () => void) => boolean, process: { pid: number, kill: (signal: string) => boolean } } => {
    const sent: unknown[] = []
    const signals: string[] = []
    return { sent, signals, send: (message, callback) => { sent.push(message); callback(); return true }, process: { pid: ++pids, kill: (signal) => { signals.push(signal); return true } } }
  }
  const [a, b, c] = [worker(), worker(), worker()]
  served.reloadAsked()
  listener(b, { type: 'oidc-verifier:refused-config', startedAt: Date.now() })
  t.same(b.signals, [], 'a refusal alone: every worker may refuse it (a file with a problem), nothing to bring in line')
  listener(a, { type: 'oidc-verifier:applied-config', text: 'the new text', startedAt: Date.now() })
  t.same(b.signals, ['SIGTERM'], 'once another applied it, the refuser is stopped')
  t.match(lines, [[/^configuration reload applied by worker 101 but refused by worker 102 \(its log says why\): stopping it, so that its replacement starts from the configuration the others applied$/, 50]])
  listener(c, { type: 'oidc-verifier:refused-config', startedAt: Date.now() })
  t.same(c.signals, ['SIGTERM'], 'a refusal after an application: stopped at once')
  t.match(lines[1], [/^configuration reload applied by worker 101 but refused by worker 103 /, 50])
  t.same(a.signals, [], 'the worker that applied it runs on')
  const replacement = worker()
  listener(replacement, { type: 'oidc-verifier:start-config?' })
  t.same(replacement.sent, [{ type: 'oidc-verifier:start-config', start: JSON.stringify(atStart), applied: 'the new text' }], 'a replacement starts from the applied text')

  // The next reload starts afresh; a report of an earlier one counts for nothing.
  served.reloadAsked()
  listener(a, { type: 'oidc-verifier:refused-config', startedAt: Date.now() })
  listener(replacement, { type: 'oidc-verifier:applied-config', text: 'x', startedAt: Date.now() - 60_000 })
  t.same(a.signals, [], 'every report of this reload a refusal: nothing stopped')
  t.equal(lines.length, 2)
})

t.test('a worker that asks while a reload is under way is told to reload once started', async (t) => {
  const cluster = (await import('node:cluster')).default
  const before = new Set(cluster.listeners('message'))
  const served = serveStartConfig(atStart, 'the start text')
  const listener = cluster.listeners('message').find((l) => !before.has(l)) as (worker: unknown, message: unknown) => void
  t.teardown(() => { cluster.off('message', listener) })
  const worker = (): { sent: unknown[], signals: string[], send: (message: unknown, callback: () => void) => boolean, process: { kill: (signal: string) => boolean } } => {
    const sent: unknown[] = []
    const signals: string[] = []
    return { sent, signals, send: (message, callback) => { sent.push(message); callback(); return true }, process: { kill: (signal) => { signals.push(signal); return true } } }
  }
  const ask = (w: ReturnType<typeof worker>): void => { listener(w, { type: 'oidc-verifier:start-config?' }) }

  const quiet = worker()
  ask(quiet)
  t.same(quiet.signals, [], 'no reload asked for: no SIGHUP')

  served.reloadAsked()
  const during = worker()
  ask(during)
  t.same(during.sent, [{ type: 'oidc-verifier:start-config', start: JSON.stringify(atStart), applied: 'the start text' }], 'the text before the reload')
  t.same(during.signals, ['SIGHUP'], 'and a SIGHUP, kept until it has started')

  // A report of a reload that began before the ask (a SIGHUP merged into one more reload after it) is not the end.
  listener(quiet, { type: 'oidc-verifier:applied-config', text: 'the text of an earlier reload', startedAt: Date.now() - 60_000 })
  const merged = worker()
  ask(merged)
  t.same(merged.signals, ['SIGHUP'], 'an earlier reload\'s report: still under way')
  listener(quiet, { type: 'oidc-verifier:applied-config', text: 'the reloaded text', startedAt: Date.now() })
  const after = worker()
  ask(after)
  t.same(after.sent, [{ type: 'oidc-verifier:start-config', start: JSON.stringify(atStart), applied: 'the reloaded text' }])
  t.same(after.signals, [], 'a worker has applied it: the text is the new one, no SIGHUP')

  served.reloadAsked()
  listener(quiet, { type: 'oidc-verifier:refused-config' })
  const stillDuring = worker()
  ask(stillDuring)
  t.same(stillDuring.signals, ['SIGHUP'], 'a report without the time its reload began ends nothing')
  listener(quiet, { type: 'oidc-verifier:refused-config', startedAt: Date.now() })
  const afterRefusal = worker()
  ask(afterRefusal)
  t.same(afterRefusal.signals, [], 'a refused reload is over too')

  served.reloadAsked()
  listener(quiet, { type: 'oidc-verifier:applied-config', startedAt: Date.now() })
  const afterEnvironment = worker()
  ask(afterEnvironment)
  t.same(afterEnvironment.signals, [], 'a reload applied from the environment (no text) is over too')
  t.same(afterEnvironment.sent, [{ type: 'oidc-verifier:start-config', start: JSON.stringify(atStart), applied: 'the reloaded text' }], 'and keeps the text')
})

t.test('a worker tells the primary when a reload was refused, or applied without a text', async (t) => {
  const sent: unknown[] = []
  const port: PrimaryChannel = { send: (message, callback) => { sent.push(message); callback(null); return true }, on: () => {}, off: () => {} }
  reportRefused(7, port)
  reportApplied(undefined, 8, port)
  t.same(sent, [{ type: 'oidc-verifier:refused-config', startedAt: 7 }, { type: 'oidc-verifier:applied-config', startedAt: 8 }])
})
