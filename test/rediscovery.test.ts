/**
 * A discovered issuer's metadata is read again every jwks.rediscoverySeconds: a provider that moves its
 * jwks_uri is followed once the new URL gives keys, and a failed rediscovery (the provider down, a broken
 * document, a new URL without keys) keeps the current keys, so the issuer stays ready.
 */
import t from 'tap'
import type { Logger } from '../src/core/logger.js'
import { Verifier } from '../src/core/verifier.js'
import { configFor } from './helpers/config.js'
import { startJwksServer } from './helpers/jwks-server.js'
import { waitFor } from './helpers/wait-for.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const WELL_KNOWN = '/.well-known/openid-configuration'
const oldKey = makeKey('ES256', { kid: 'old' })
const newKey = makeKey('ES256', { kid: 'new' })

/** A Logger that keeps the warnings' `err` fields, in order. */
function warnings (): { logger: Logger, errors: string[] } {
  const errors: string[] = []
  const noop = (): void => {}
  const logger: Logger = {
    debug: noop,
    info: noop,
    warn: (obj) => { errors.push(String((obj as { error?: unknown }).error)) },
    error: noop,
    child: () => logger
  }
  return { logger, errors }
}

t.test('a moved jwks_uri is followed; failures keep the current one', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(oldKey) })
  t.teardown(() => idp.close())
  const metadata = (jwksPath: string): { json: unknown } => ({ json: { issuer: idp.url, jwks_uri: `${idp.url}${jwksPath}` } })
  idp.set(metadata('/jwks'), WELL_KNOWN)
  idp.set({ json: jwksOf(newKey) }, '/jwks-2')
  const { logger, errors } = warnings()
  const v = new Verifier(configFor([{ id: 'idp', issuer: idp.url, audiences: ['aud'] }], { jwks: { rediscoverySeconds: 1, backoffInitialSeconds: 1, unknownKidCooldownSeconds: 0 } }), { logger })
  t.teardown(() => v.close())
  v.start()
  await waitFor('ready', () => v.ready)
  const oldToken = mint(oldKey, idTokenClaims(idp.url, 'aud'))
  const newToken = mint(newKey, idTokenClaims(idp.url, 'aud'))
  t.equal((await v.verify(oldToken)).subject, 'user-123')
  await t.rejects(v.verify(newToken), { code: 'key_not_found' }, 'the new key is not at the current jwks_uri')

  // The provider is down for a while: rediscovery fails, the issuer keeps its keys.
  idp.set({ status: 503 }, WELL_KNOWN)
  const failures = idp.requests(WELL_KNOWN)
  await waitFor('a failed rediscovery', () => idp.requests(WELL_KNOWN) > failures)
  t.ok(v.ready, 'still ready')
  t.equal(v.status()[0]?.jwksUri, `${idp.url}/jwks`)

  // The new URL is advertised but gives nothing yet: not taken.
  idp.set({ status: 404 }, '/jwks-2')
  idp.set(metadata('/jwks-2'), WELL_KNOWN)
  await waitFor('the new URL tried', () => idp.requests('/jwks-2') > 0)
  t.equal(v.status()[0]?.jwksUri, `${idp.url}/jwks`, 'a new jwks_uri that fails is not taken')
  t.ok(v.ready)
  // Then it answers, but with no key: not taken either.
  idp.set({ json: { keys: [] } }, '/jwks-2')
  // The rediscovery that fetched the empty set ends either way: refused (and logged), or the URL taken.
  const refusedEmpty = `the new jwks_uri ${idp.url}/jwks-2 gave no usable keys (no usable key in it)`
  await waitFor('the rediscovery with the empty set to end', () =>
    errors.includes(refusedEmpty) || v.status()[0]?.jwksUri !== `${idp.url}/jwks`)
  t.equal(v.status()[0]?.jwksUri, `${idp.url}/jwks`, 'a new jwks_uri without a usable key is not taken')
  t.ok(v.ready)

  // Now it gives keys: followed.
  idp.set({ json: jwksOf(newKey) }, '/jwks-2')
  await waitFor('the new jwks_uri taken', () => v.status()[0]?.jwksUri === `${idp.url}/jwks-2`)
  t.equal((await v.verify(newToken)).subject, 'user-123', 'tokens of the moved key set verify')
  t.ok(v.ready)
})

t.test('rediscoverySeconds: 0 never reads the metadata again', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(oldKey) })
  t.teardown(() => idp.close())
  idp.set({ json: { issuer: idp.url, jwks_uri: `${idp.url}/jwks` } }, WELL_KNOWN)
  const v = new Verifier(configFor([{ id: 'idp', issuer: idp.url, audiences: ['aud'] }], { jwks: { rediscoverySeconds: 0 } }))
  t.teardown(() => v.close())
  v.start()
  await waitFor('ready', () => v.ready)
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.equal(idp.requests(WELL_KNOWN), 1)
})

t.test('fetches of a new jwks_uri being tried are labelled with the issuer trying it, not "unknown"', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(oldKey) })
  t.teardown(() => idp.close())
  idp.set({ json: { issuer: idp.url, jwks_uri: `${idp.url}/jwks` } }, WELL_KNOWN)
  idp.set({ status: 500 }, '/jwks-2')
  const fetches: string[] = []
  const cacheWarnings: unknown[] = []
  const noop = (): void => {}
  const logger: Logger = {
    debug: noop,
    info: noop,
    warn: (obj, msg) => { if (msg?.startsWith('JWKS fetch from') === true) cacheWarnings.push((obj as { issuer?: unknown }).issuer) },
    error: noop,
    child: () => logger
  }
  const v = new Verifier(configFor([{ id: 'idp', issuer: idp.url, audiences: ['aud'] }], { jwks: { rediscoverySeconds: 1 } }),
    { logger, events: { jwksFetch: (e) => { fetches.push(`${e.issuer} ${e.outcome}`) } } })
  t.teardown(() => v.close())
  v.start()
  await waitFor('ready', () => v.ready)
  // The provider moves its keys to a URL that fails: the failure is the issuer's, in metrics and in the log.
  idp.set({ json: { issuer: idp.url, jwks_uri: `${idp.url}/jwks-2` } }, WELL_KNOWN)
  await waitFor('the new URL tried', () => fetches.length >= 2)
  t.same(fetches.slice(0, 2), ['idp success', 'idp error'])
  t.same(cacheWarnings.slice(0, 1), ['idp'])
  t.equal(v.status()[0]?.jwksUri, `${idp.url}/jwks`, 'the failing URL is not taken')
})
