/**
 * An inline JWKS (air-gapped deployments) goes through the same key checks as a fetched one, and its keys that
 * will never verify are logged the same way (README: "Keys that must never verify are dropped and logged"):
 * otherwise a configured key that is silently dropped (a 1024-bit RSA key, `use: enc`) makes the tokens it
 * signs answer key_not_found with nothing in the log to say why.
 */
import t from 'tap'
import { silentLogger, type Logger } from '../src/core/logger.js'
import { MAX_LOGGED_KID_LENGTH } from '../src/core/key-set.js'
import { MAX_REJECTED_KEYS_LOGGED, Verifier } from '../src/core/verifier.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'

t.test('the keys of an inline JWKS that will never be used are logged once, with their reasons', async (t) => {
  const warnings: Array<{ obj: Record<string, unknown>, msg: string | undefined }> = []
  const logger: Logger = { ...silentLogger, warn: (obj, msg) => { warnings.push({ obj: obj as Record<string, unknown>, msg }) }, child: () => logger }
  const good = makeKey('ES256', { kid: 'good' })
  const weak = makeKey('RS256', { kid: 'weak', modulusLength: 1024 })
  const enc = makeKey('ES256', { kid: 'enc', jwkExtras: { use: 'enc' } })
  const verifier = new Verifier(configFor([{ id: 'i', issuer: ISS, audiences: ['a'], algorithms: ['ES256', 'RS256'], jwks: jwksOf(good, weak, enc) }]), { logger })
  t.teardown(() => { verifier.close() })
  verifier.start()
  t.ok(verifier.ready, 'the good key makes the issuer ready')

  const warning = warnings.find((w) => 'rejectedCount' in w.obj)
  t.ok(warning, 'a warning names the keys that are dropped')
  t.match(warning, {
    msg: 'JWKS contains keys that will never be used',
    obj: {
      issuer: 'i',
      rejectedCount: 2,
      rejected: [{ kid: 'weak', reason: 'RSA modulus is shorter than 2048 bits' }, { kid: 'enc', reason: 'use is not "sig"' }]
    }
  })
  // The token signed by the dropped key is key_not_found, as the warning explains.
  await t.rejects(verifier.verify(mint(weak, idTokenClaims(ISS, 'a'))), { code: 'key_not_found' })
  await t.resolves(verifier.verify(mint(good, idTokenClaims(ISS, 'a'))))
})

t.test('an inline JWKS of good keys logs nothing, and the warning is bounded like a fetched one\'s', async (t) => {
  const warnings: Array<Record<string, unknown>> = []
  const logger: Logger = { ...silentLogger, warn: (obj) => { warnings.push(obj as Record<string, unknown>) }, child: () => logger }
  const good = makeKey('ES256', { kid: 'good' })
  const clean = new Verifier(configFor([{ id: 'i', issuer: ISS, audiences: ['a'], jwks: jwksOf(good) }]), { logger })
  clean.close()
  t.same(warnings, [], 'nothing to say')

  const junk = Array.from({ length: 40 }, (_, i) => ({ ...good.jwk, kid: `enc-${i}`, use: 'enc' }))
  const noisy = new Verifier(configFor([{ id: 'i', issuer: ISS, audiences: ['a'], jwks: { keys: [good.jwk, ...junk] } }]), { logger })
  noisy.close()
  const warning = warnings.find((w) => 'rejectedCount' in w)
  t.match(warning, { issuer: 'i', rejectedCount: 40 })
  t.equal((warning?.rejected as unknown[]).length, MAX_REJECTED_KEYS_LOGGED)
})

t.test('a rejected key\'s kid is cut in the warning: it is the provider\'s text, of any length', async (t) => {
  const warnings: Array<Record<string, unknown>> = []
  const logger: Logger = { ...silentLogger, warn: (obj) => { warnings.push(obj as Record<string, unknown>) }, child: () => logger }
  const good = makeKey('ES256', { kid: 'good' })
  const long = 'k'.repeat(10_000)
  const verifier = new Verifier(configFor([{ id: 'i', issuer: ISS, audiences: ['a'], jwks: { keys: [good.jwk, { ...good.jwk, kid: long, use: 'enc' }, { ...good.jwk, kid: 'short', use: 'enc' }] } }]), { logger })
  verifier.close()
  const rejected = warnings.find((w) => 'rejectedCount' in w)?.rejected as Array<{ kid: string }>
  t.same(rejected.map((r) => r.kid), [`${'k'.repeat(MAX_LOGGED_KID_LENGTH)}…`, 'short'])
})

t.test('a rejected key\'s reason is bounded too: a kty of any length is not repeated in full', async (t) => {
  const warnings: Array<Record<string, unknown>> = []
  const logger: Logger = { ...silentLogger, warn: (obj) => { warnings.push(obj as Record<string, unknown>) }, child: () => logger }
  const good = makeKey('ES256', { kid: 'good' })
  const verifier = new Verifier(configFor([{ id: 'i', issuer: ISS, audiences: ['a'], jwks: { keys: [good.jwk, { kty: 'K'.repeat(10_000), kid: 'odd' }] } }]), { logger })
  verifier.close()
  const rejected = warnings.find((w) => 'rejectedCount' in w)?.rejected as Array<{ kid: string, reason: string }>
  t.equal(rejected[0]?.kid, 'odd')
  t.ok((rejected[0]?.reason.length ?? 0) < 200, `the reason stays short (${rejected[0]?.reason.length ?? 0} characters)`)
})
