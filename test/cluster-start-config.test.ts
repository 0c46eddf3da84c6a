/**
 * The configuration a cluster worker starts with (src/cluster-start-config.ts): the primary's text with the file
 * as it is now applied as a reload would, the settings a reload cannot apply kept; the configuration the service
 * started with when the file is not valid now or does not fit; and the question to the primary over a stand-in
 * channel. test/cluster-revocations.test.ts runs a replacement worker for real (WORKERS=2).
 */
import t from 'tap'
import { EventEmitter } from 'node:events'
import { askStartConfig, workerConfig, type StartConfigPort } from '../src/cluster-start-config.js'
import { ConfigError } from '../src/config/load.js'
import type { LogLevelNumber } from '../src/cluster-log.js'
import { configFor } from './helpers/config.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

const jwks = jwksOf(makeKey('ES256'))
const issuer = (audiences: string[]) => [{ id: 'main', issuer: 'https://idp.example.com', audiences, jwks }]
const atStart = configFor(issuer(['aud']), { revocation: { enabled: true }, server: { port: 8080 } })

function recorder (): { lines: Array<[string, LogLevelNumber | undefined]>, log: (msg: string, level?: LogLevelNumber) => void } {
  const lines: Array<[string, LogLevelNumber | undefined]> = []
  return { lines, log: (msg, level) => { lines.push([msg, level]) } }
}

t.test('the file as it is now, applied as a reload would: restart-only settings keep their start values', async (t) => {
  const { lines, log } = recorder()
  const now = configFor(issuer(['aud', 'aud2']), { revocation: { enabled: false }, server: { port: 9090 } })
  const config = workerConfig(atStart, () => now, log)
  t.same(config.issuers[0]?.audiences, ['aud', 'aud2'], 'a reloadable setting: the new value')
  t.equal(config.revocation.enabled, true, 'revocation: the value the service started with')
  t.equal(config.server.port, 8080, 'the port too')
  t.equal(lines.length, 1)
  t.match(lines[0]?.[0], /revocation\.enabled, server\.port changed since the service started and needs a restart of the whole service/)
  t.equal(lines[0]?.[1], 40, 'a warning')
})

t.test('an unchanged file: the same configuration, nothing logged', async (t) => {
  const { lines, log } = recorder()
  const config = workerConfig(atStart, () => configFor(issuer(['aud']), { revocation: { enabled: true }, server: { port: 8080 } }), log)
  t.same(config, atStart)
  t.same(lines, [])
})

t.test('a file that is not valid now, or does not fit the running settings: the start configuration', async (t) => {
  const { lines, log } = recorder()
  t.equal(workerConfig(atStart, () => { throw new ConfigError(['c.yaml: issuers: expected at least one issuer']) }, log), atStart)
  t.match(lines[0], [/the configuration file is not valid now \(1 problems, the first: c\.yaml: issuers: expected at least one issuer\)/, 50])
  // A token limit the running body limit cannot carry (bodyLimit waits for a restart): refused as a reload is.
  const tooBig = configFor(issuer(['aud']), { revocation: { enabled: true }, server: { port: 8080, maxTokenBytes: 100_000, bodyLimit: 200_000 }, batch: { maxBodyBytes: 400_000 } })
  t.equal(workerConfig(atStart, () => tooBig, log), atStart)
  t.match(lines[1], [/does not fit the running settings \(server\.maxTokenBytes: expected less than the running server\.bodyLimit/, 50])
  t.throws(() => workerConfig(atStart, () => { throw new Error('disk on fire') }, log), /disk on fire/, 'anything else is not a configuration problem')
})

function fakePrimary (answer: (message: unknown) => unknown): StartConfigPort & { listeners: () => number } {
  const events = new EventEmitter()
  return {
    listeners: () => events.listenerCount('message'),
    send: (message, callback) => {
      callback(null)
      const reply = answer(message)
      if (reply !== undefined) setImmediate(() => events.emit('message', reply))
      return true
    },
    on: (event, listener) => events.on(event, listener),
    off: (event, listener) => events.off(event, listener)
  }
}

t.test('asking the primary', async (t) => {
  const asked: unknown[] = []
  const primary = fakePrimary((message) => { asked.push(message); return { type: 'oidc-verifier:start-config', text: 'issuers: []' } })
  t.equal(await askStartConfig(primary, 1_000), 'issuers: []')
  t.same(asked, [{ type: 'oidc-verifier:start-config?' }])
  t.equal(primary.listeners(), 0, 'stops listening')
  t.equal(await askStartConfig(fakePrimary(() => ({ type: 'oidc-verifier:start-config', text: null })), 1_000), null, 'started from the environment')
  const other = fakePrimary(() => ({ type: 'oidc-verifier:revocations', revocations: [] }))
  t.equal(await askStartConfig(other, 50), undefined, 'other messages are not the answer: no answer in time')
  t.equal(other.listeners(), 0)
  t.equal(await askStartConfig({ send: undefined, on: () => {}, off: () => {} }), undefined, 'no primary')
})
