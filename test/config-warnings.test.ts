/**
 * Settings the configuration accepts but that do nothing given the rest of it (src/config/inert-settings.ts):
 * each is a warning next to the loaded Config, naming the setting; never a problem (the configuration still
 * loads), never for a default or what a preset fills in. Start logs them, a reload logs those it newly has, and
 * check-config prints them and still exits 0.
 */
import t from 'tap'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { buildApp } from '../src/app.js'
import { EXIT, main, type CliIo } from '../src/cli/main.js'
import { loadConfig, parseConfig } from '../src/config/load.js'
import type { Config } from '../src/config/types.js'
import { reloadConfiguration } from '../src/reload.js'
import { ecKey } from './helpers/jwe.js'
import { startNode } from './helpers/node-process.js'
import { tempDir } from './helpers/temp-dir.js'
import { jwksOf, makeKey } from './helpers/tokens.js'
import { captureLog } from './helpers/log-capture.js'

const SECRET_32 = 'x'.repeat(32)
const key = makeKey('ES256')
const ISSUER = { id: 'corp', issuer: 'https://idp.example.com', audiences: ['app'], jwks: jwksOf(key) }

function load (doc: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Config {
  return parseConfig({ issuers: [ISSUER], ...doc }, 'c.yaml', env)
}

/** The settings warned about. */
function warned (doc: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): string[] {
  return load(doc, env).warnings.map((w) => w.setting)
}

t.test('a client secret without an HS* algorithm: a warning, and the configuration still loads', async (t) => {
  const config = load({ issuers: [{ ...ISSUER, clientSecret: SECRET_32 }] })
  t.equal(config.issuers[0]!.clientSecret, undefined, 'not kept, as before')
  t.same(config.warnings.map((w) => w.setting), ['issuers[0].clientSecret'])
  t.match(config.warnings[0]!.message, /^is ignored: .*HS256\/HS384\/HS512.*algorithms lists none of them/)
  t.notMatch(config.warnings[0]!.message, SECRET_32, 'never the secret')
  t.same(warned({ issuers: [{ ...ISSUER, algorithms: ['ES256'], clientSecretEnv: 'IDP_SECRET' }] }, { IDP_SECRET: SECRET_32 }), ['issuers[0].clientSecretEnv'])
  t.same(warned({ issuers: [{ ...ISSUER, preset: 'google', issuer: 'https://accounts.google.com', clientSecret: SECRET_32 }] }), ['issuers[0].clientSecret'], 'a preset\'s RS256 has no HS* either')
  t.same(warned({ issuers: [{ ...ISSUER, algorithms: ['ES256', 'HS256'], clientSecret: SECRET_32 }] }), [], 'used with HS256 listed')
  t.same(warned({ issuers: [{ ...ISSUER, algorithms: ['HS256'], clientSecretEnv: 'IDP_SECRET', jwks: undefined }] }, { IDP_SECRET: SECRET_32 }), [], 'used: clientSecretEnv')
  t.same(warned({}), [], 'not written')
})

t.test('keys of an issuer that lists only HS* algorithms are never read or fetched', async (t) => {
  const hs = { id: 'hs', issuer: 'https://hs.example.com', audiences: ['app'], algorithms: ['HS256'], clientSecret: SECRET_32 }
  t.same(warned({ issuers: [{ ...hs, jwks: jwksOf(key) }] }), ['issuers[0].jwks'])
  t.same(warned({ issuers: [{ ...hs, jwksUri: 'https://hs.example.com/jwks' }] }), ['issuers[0].jwksUri'])
  t.same(warned({ issuers: [{ ...hs, discoveryUrl: 'https://hs.example.com/meta' }] }), ['issuers[0].discoveryUrl'])
  t.same(warned({ issuers: [{ ...hs, algorithms: ['HS256', 'RS256'], jwksUri: 'https://hs.example.com/jwks' }] }), [], 'used with RS256 listed')
  t.same(warned({ issuers: [hs] }), [], 'not written')
  // Entra's preset fills in a discoveryUrl: not written, so not warned about.
  t.same(warned({ issuers: [{ id: 'e', preset: 'entra', issuer: 'https://login.microsoftonline.com/{tenantid}/v2.0', audiences: ['app'], algorithms: ['HS256'], clientSecret: SECRET_32 }] }), [])
})

t.test('an HS*-only issuer is never told to set a key source the warnings then call ignored', async (t) => {
  const template = { id: 't', issuer: 'https://idp.example.com/{tenantid}/v2', audiences: ['app'], algorithms: ['HS256'], clientSecret: SECRET_32 }
  // Removing the warned discoveryUrl, as the warning says, must leave a valid configuration.
  t.same(warned({ issuers: [{ ...template, discoveryUrl: 'https://idp.example.com/common/.well-known/openid-configuration' }] }), ['issuers[0].discoveryUrl'])
  t.same(warned({ issuers: [template] }), [], 'a {tenantid} template with only HS*: no key source needed')
  t.throws(() => load({ issuers: [{ ...template, algorithms: ['RS256'], clientSecret: undefined }] }), /has no discovery document of its own/, 'still needed with an asymmetric algorithm')
  // jwks.maxEntries is not held to a bound counted from issuers that fetch nothing (and then called ignored).
  const hs = { id: 'hs', issuer: 'https://hs.example.com', audiences: ['app'], algorithms: ['HS256'], clientSecret: SECRET_32 }
  t.same(warned({ issuers: [hs], jwks: { maxEntries: 1 } }), ['jwks.maxEntries'])
  t.same(warned({ issuers: [hs, { id: 'b', issuer: 'https://b.example.com', audiences: ['app'] }], jwks: { maxEntries: 2 } }), [], 'one discovered issuer: 2')
  t.throws(() => load({ issuers: [hs, { id: 'b', issuer: 'https://b.example.com', audiences: ['app'] }], jwks: { maxEntries: 1 } }), /expected at least 2/)
})

t.test('maxPbes2Count without a PBES2 algorithm', async (t) => {
  const dir = tempDir(t, { 'enc.pem': ecKey('P-256').file, 'pbes2.jwk': JSON.stringify({ kty: 'oct', k: Buffer.alloc(32, 7).toString('base64url'), kid: 'p' }) })
  const enc = { ...ISSUER, decryptionKeys: [join(dir, 'enc.pem')] }
  t.same(warned({ issuers: [{ ...enc, maxPbes2Count: 2000 }] }), ['issuers[0].maxPbes2Count'], 'the default keyManagementAlgorithms lists no PBES2')
  t.same(warned({ issuers: [{ ...enc, keyManagementAlgorithms: ['ECDH-ES'], maxPbes2Count: 2000 }] }), ['issuers[0].maxPbes2Count'])
  t.same(warned({ issuers: [{ ...enc, decryptionKeys: [join(dir, 'pbes2.jwk')], keyManagementAlgorithms: ['PBES2-HS256+A128KW'], maxPbes2Count: 2000 }] }), [], 'used')
  t.match(load({ issuers: [{ ...enc, maxPbes2Count: 2000 }] }).warnings[0]!.message, /^is ignored: keyManagementAlgorithms lists no PBES2 algorithm/)
})

t.test('authorizedParties while checkAuthorizedParty is false', async (t) => {
  t.same(warned({ issuers: [{ ...ISSUER, audiences: ['app', 'web'], checkAuthorizedParty: false, authorizedParties: ['web', 'cli'] }] }), ['issuers[0].authorizedParties[1]'],
    'an audience in it still tells its tokens apart from another client\'s (isOtherClient)')
  const gcp = { id: 'gcp', preset: 'gcp-identity', audiences: ['https://svc.example.com'], requiredClaims: { email: ['caller@p.iam.gserviceaccount.com'] }, authorizedParties: ['1234567890'] }
  const config = load({ issuers: [gcp] })
  t.same(config.warnings.map((w) => w.setting), ['issuers[0].authorizedParties[0]'], 'gcp-identity turns the azp check off')
  t.match(config.warnings[0]!.message, /^is ignored: checkAuthorizedParty is false \(the preset's default\)/)
  t.same(warned({ issuers: [{ ...ISSUER, authorizedParties: ['cli'] }] }), [], 'used: azp checked')
})

t.test('jwks: the JWKS cache, when no issuer fetches keys', async (t) => {
  t.same(warned({ jwks: { maxEntries: 5, staleIfErrorSeconds: 60 } }), ['jwks.maxEntries', 'jwks.staleIfErrorSeconds'], 'inline keys only')
  t.same(warned({ jwks: { maxEntries: 5 }, issuers: [ISSUER, { id: 'b', issuer: 'https://b.example.com', audiences: ['app'] }] }), [], 'used by a discovered issuer')
  t.same(warned({ jwks: { rediscoverySeconds: 60 }, issuers: [{ id: 'b', issuer: 'https://b.example.com', audiences: ['app'], jwksUri: 'https://b.example.com/jwks' }] }), ['jwks.rediscoverySeconds'], 'no issuer uses discovery')
  t.same(warned({ jwks: { rediscoverySeconds: 60 }, issuers: [{ id: 'b', issuer: 'https://b.example.com', audiences: ['app'] }] }), [], 'used by discovery')
})

t.test('fetch: how keys and metadata are fetched, when no issuer fetches any', async (t) => {
  const fetch = { timeoutMs: 100, maxResponseBytes: 1024 }
  t.same(warned({ fetch }), ['fetch.timeoutMs', 'fetch.maxResponseBytes'], 'inline keys only')
  t.match(load({ fetch }).warnings[0]!.message, /^is ignored: no issuer fetches keys or discovery metadata/)
  t.same(warned({ fetch, issuers: [ISSUER, { id: 'b', issuer: 'https://b.example.com', audiences: ['app'] }] }), [], 'used by a discovered issuer')
  t.same(warned({ fetch, issuers: [{ id: 'b', issuer: 'https://b.example.com', audiences: ['app'], jwksUri: 'https://b.example.com/jwks' }] }), [], 'used by a JWKS URL')
})

t.test('rateLimit.enabled: false ignores the other limits, callers\' own and the back-channel logout\'s', async (t) => {
  const caller = { id: 'billing', sha256: 'a'.repeat(64), rateLimit: { max: 5 } }
  t.same(warned({ rateLimit: { enabled: false, max: 10, headers: true }, callers: { keys: [caller] }, revocation: { enabled: true, logoutRateLimit: { max: 5 } } }),
    ['rateLimit.max', 'rateLimit.headers', 'revocation.logoutRateLimit', 'callers.keys[0].rateLimit'])
  t.same(warned({ rateLimit: { max: 10, headers: true }, callers: { keys: [caller] }, revocation: { enabled: true, logoutRateLimit: { max: 5 } } }), [], 'used: rate limiting on')
  t.same(warned({ rateLimit: { enabled: false } }), [], 'nothing else written')
})

t.test('revocation: everything but enabled is ignored while it is off, and callers\' revoke with it', async (t) => {
  const caller = { id: 'admin', sha256: 'a'.repeat(64), revoke: true }
  t.same(warned({ revocation: { maxEntries: 100, retentionSeconds: 600 }, callers: { keys: [caller] } }), ['revocation.maxEntries', 'revocation.retentionSeconds', 'callers.keys[0].revoke'], 'off by default')
  t.same(warned({ revocation: { enabled: false, store: 'redis', redis: { url: 'redis://127.0.0.1:6379' } } }), ['revocation.store', 'revocation.redis'])
  t.same(warned({ revocation: { enabled: true, maxEntries: 100, retentionSeconds: 600 }, callers: { keys: [caller] } }), [], 'used')
  t.same(warned({ revocation: { enabled: false }, callers: { keys: [{ ...caller, revoke: false }] } }), [], 'nothing else written')
})

t.test('callers.protectMetrics, tokenCache, loadShedding, server.opsHost and server.certificateCheckSeconds', async (t) => {
  const callers = { keys: [{ id: 'billing', sha256: 'a'.repeat(64) }], protectMetrics: false }
  t.same(warned({ callers, metrics: { enabled: false } }), ['callers.protectMetrics'], 'metrics off')
  t.same(warned({ callers, server: { opsPort: 9091 } }), ['callers.protectMetrics'], '/metrics on the ops port only')
  t.same(warned({ callers }), [], 'used: /metrics on the main port')
  t.same(warned({ tokenCache: { enabled: false, maxEntries: 10 }, loadShedding: { enabled: false, maxRssBytes: 1 } }), ['tokenCache.maxEntries', 'loadShedding.maxRssBytes'])
  t.same(warned({ tokenCache: { maxEntries: 10 }, loadShedding: { maxRssBytes: 1 } }), [], 'used')
  t.same(warned({ server: { opsHost: '127.0.0.1', certificateCheckSeconds: 10 } }), ['server.opsHost', 'server.certificateCheckSeconds'])
  t.same(warned({ server: { opsHost: '127.0.0.1', opsPort: 9091 } }), [], 'used with opsPort')
})

t.test('defaults and environment-only mode warn about nothing', async (t) => {
  t.same(loadConfig({ argv: [], env: { OIDC_ISSUER: 'https://accounts.google.com', OIDC_AUDIENCE: 'app' } }).warnings, [])
  t.same(warned({}), [])
})

t.test('a reload logs the warnings the running configuration did not have, each naming its setting', async (t) => {
  const { lines, logger } = captureLog()
  const quiet = { server: { logLevel: 'info' }, loadShedding: { enabled: false } }
  const app = await buildApp(load({ ...quiet, issuers: [{ ...ISSUER, clientSecret: SECRET_32 }] }), { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.ready()
  const warnings = (): Array<Record<string, unknown>> => lines().filter((l) => l.level === 40 && typeof l.setting === 'string')

  const next = (): Config => load({ ...quiet, tokenCache: { enabled: false, maxTtlSeconds: 60 }, issuers: [{ ...ISSUER, clientSecret: SECRET_32 }] })
  t.equal((await reloadConfiguration(app, next)).outcome, 'applied')
  t.same(warnings().map((l) => l.setting), ['tokenCache.maxTtlSeconds'], 'the new one; the running one was said at start')
  t.match(warnings()[0]!.msg, /^configuration: tokenCache\.maxTtlSeconds is ignored: tokenCache\.enabled is false/)
  t.equal((await reloadConfiguration(app, next)).outcome, 'applied')
  t.equal(warnings().length, 1, 'not again for the same file')
})

t.test('start logs every warning at warn level, naming the setting', async (t) => {
  const dir = tempDir(t, {
    'config.yaml': stringify({ server: { host: '127.0.0.1', port: 0 }, loadShedding: { enabled: false }, callers: { keys: [{ id: 'admin', sha256: 'a'.repeat(64), revoke: true }] }, issuers: [{ ...ISSUER, clientSecret: SECRET_32 }] })
  })
  const server = startNode('src/server.ts', ['--config', join(dir, 'config.yaml')])
  t.teardown(() => server.kill())
  await server.waitForLine(/"msg":"oidc-verifier listening"/, { timeoutMs: 60_000 })
  const logged = server.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.level === 40)
  t.same(logged.map((l) => l.setting), ['issuers[0].clientSecret', 'callers.keys[0].revoke'])
  t.match(logged[0]!.msg, /^configuration: issuers\[0\]\.clientSecret is ignored: /)
  t.notMatch(server.output(), SECRET_32, 'never the secret')
  server.child.kill('SIGTERM')
  t.equal((await server.exited).code, 0)
})

async function checkConfig (argv: string[], path: string): Promise<{ code: number, stdout: string }> {
  let stdout = ''
  const io: CliIo = { stdout: (text) => { stdout += text }, stderr: () => {}, readStdin: async () => '', env: {} }
  const code = await main(['check-config', '--config', path, ...argv], io)
  return { code, stdout }
}

t.test('check-config prints the warnings and exits 0 (1 with --strict)', async (t) => {
  const dir = tempDir(t, {
    'warned.yaml': stringify({ rateLimit: { enabled: false, max: 10 }, issuers: [{ ...ISSUER, clientSecret: SECRET_32 }] }),
    'clean.yaml': stringify({ issuers: [ISSUER] })
  })
  const warnedRun = await checkConfig([], join(dir, 'warned.yaml'))
  t.equal(warnedRun.code, EXIT.ok)
  t.match(warnedRun.stdout, /\(valid\)\n {4}warning: issuers\[0\]\.clientSecret is ignored: [^\n]*\n {4}warning: rateLimit\.max is ignored: rateLimit\.enabled is false[^\n]*\n\nID /)
  t.match(warnedRun.stdout, /1 issuer: 1 ok, 0 with problems; 2 settings ignored\n$/)

  const json = await checkConfig(['--json'], join(dir, 'warned.yaml'))
  t.equal(json.code, EXIT.ok)
  const parsed = JSON.parse(json.stdout) as { ok: boolean, warnings: Array<{ setting: string, message: string }> }
  t.equal(parsed.ok, true)
  t.same(parsed.warnings.map((w) => w.setting), ['issuers[0].clientSecret', 'rateLimit.max'])

  const strict = await checkConfig(['--strict'], join(dir, 'warned.yaml'))
  t.equal(strict.code, EXIT.failed, '--strict: ignored settings are problems, as unusable keys are')
  t.match(strict.stdout, /\n {4}problem: issuers\[0\]\.clientSecret is ignored/)

  const clean = await checkConfig([], join(dir, 'clean.yaml'))
  t.equal(clean.code, EXIT.ok)
  t.notMatch(clean.stdout, /warning|ignored/)
  t.match(clean.stdout, /\(valid\)\n\nID /, 'the output is as before without warnings')
})
