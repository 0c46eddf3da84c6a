/**
 * The id_token_hint mode: a token presented at logout may have expired; its signature, issuer, audience and
 * every other rule are still checked. Asked for explicitly per request, never implied, also on cache hits;
 * on /verify, /verify/batch (for the whole batch) and /introspect (an extension parameter).
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { Verifier } from '../src/core/verifier.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint, nowSeconds, tamperPayload } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')
const intruder = makeKey('ES256', { kid: key.kid })

const app = await buildApp(configFor([
  { id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key), maxTokenAgeSeconds: 3600, requiredClaims: { acr: ['mfa'] } }
]))
t.teardown(() => app.close())

async function verify (payload: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await app.inject({ method: 'POST', url: '/verify', payload, headers })
  return { status: res.statusCode, body: res.json() }
}

const long = nowSeconds() - 30 * 86400
const expired = (extra: Record<string, unknown> = {}): string => mint(key, idTokenClaims(ISS, AUD, { acr: 'mfa', iat: long, auth_time: long, exp: long + 3600, ...extra }))

t.test('an expired (and old) token is accepted as a hint, and only as a hint', async (t) => {
  const token = expired()
  const hint = await verify({ token, mode: 'id_token_hint' })
  t.equal(hint.status, 200)
  t.equal(hint.body.subject, 'user-123')
  t.equal(hint.body.expiresIn, 0)
  t.equal(hint.body.expiresAt, long + 3600)
  t.equal((await verify({ token })).body.code, 'token_expired', 'never implied')
  t.equal((await verify({ token, mode: 'id_token' })).body.code, 'token_expired')
  const header = await app.inject({ method: 'POST', url: '/verify', headers: { authorization: `Bearer ${token}` } })
  t.equal(header.json().code, 'token_expired', 'a bare Bearer request is a login')
  const old = mint(key, idTokenClaims(ISS, AUD, { acr: 'mfa', iat: nowSeconds() - 7200 }))
  t.equal((await verify({ token: old })).body.code, 'token_too_old')
  t.equal((await verify({ token: old, mode: 'id_token_hint' })).status, 200, 'maxTokenAgeSeconds is not enforced for a hint')
})

t.test('everything else is still checked for a hint', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['another key', mint(intruder, idTokenClaims(ISS, AUD, { acr: 'mfa', iat: long, exp: long + 60 })), 'signature_invalid'],
    ['tampered', tamperPayload(expired(), idTokenClaims(ISS, AUD, { acr: 'mfa', sub: 'admin', iat: long, exp: long + 60 })), 'signature_invalid'],
    ['another issuer', expired({ iss: 'https://evil.example.com' }), 'issuer_unknown'],
    ['another audience', expired({ aud: 'client-b' }), 'audience_mismatch'],
    ['a required claim', expired({ acr: 'pwd' }), 'claim_value_mismatch'],
    ['not yet valid', expired({ nbf: nowSeconds() + 3600 }), 'token_not_yet_valid'],
    ['issued in the future', expired({ iat: nowSeconds() + 3600, exp: nowSeconds() + 7200 }), 'token_issued_in_future'],
    ['no exp', expired({ exp: undefined }), 'claim_missing'],
    ['exp not a number', expired({ exp: 'never' }), 'claim_invalid'],
    ['an access token', mint(key, idTokenClaims(ISS, AUD, { acr: 'mfa', iat: long, exp: long + 60 }), { header: { typ: 'at+jwt' } }), 'token_is_access_token']
  ]
  for (const [name, token, code] of cases) {
    const res = await verify({ token, mode: 'id_token_hint' })
    t.same([res.status, res.body.code], [401, code], name)
  }
  const nonce = await verify({ token: expired({ nonce: 'n1' }), mode: 'id_token_hint', nonce: 'n2' })
  t.equal(nonce.body.code, 'nonce_mismatch', 'per-request checks combine with the mode')
})

t.test('the mode is validated strictly', async (t) => {
  for (const mode of ['hint', 'ID_TOKEN_HINT', 'id_token_hint ', '', 5, null, true, ['id_token_hint'], { mode: 'id_token_hint' }]) {
    const res = await verify({ token: expired(), mode } as Record<string, unknown>)
    t.same([res.status, res.body.code], [400, 'request_invalid'], JSON.stringify(mode))
  }
})

t.test('the mode applies on verified-token cache hits too', async (t) => {
  let now = Math.floor(Date.now() / 1000) * 1000
  const hits: boolean[] = []
  const verifier = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }]), { now: () => now, events: { tokenCache: (e) => { hits.push(e.hit) } } })
  t.teardown(() => verifier.close())
  const token = mint(key, idTokenClaims(ISS, AUD, { iat: Math.floor(now / 1000), exp: Math.floor(now / 1000) + 60 }))
  t.equal((await verifier.verify(token)).subject, 'user-123')
  t.equal((await verifier.verify(token)).subject, 'user-123', 'verified twice: now cached')
  now += 30_000
  const early = await verifier.verify(token, { mode: 'id_token_hint' })
  t.equal(early.expiresIn, 30, 'a hint before exp is a hit with the time left')
  t.same(hits, [false, false, true])
  // A cache entry lives no longer than the token's exp: past it, both modes verify the token in full.
  now += 90_000
  await t.rejects(verifier.verify(token), { code: 'token_expired' }, 'expired for a login')
  const hint = await verifier.verify(token, { mode: 'id_token_hint' })
  t.equal(hint.subject, 'user-123', 'still a valid hint')
  t.equal(hint.expiresIn, 0)
  t.same(hits, [false, false, true, false], 'past exp: no hit; the login refused before the cache, the hint verified in full (a miss)')
})

t.test('/verify/batch: mode for every token of the batch', async (t) => {
  const batch = async (payload: Record<string, unknown>) => {
    const res = await app.inject({ method: 'POST', url: '/verify/batch', payload })
    return { status: res.statusCode, body: res.json() }
  }
  const fresh = mint(key, idTokenClaims(ISS, AUD, { acr: 'mfa' }))
  const hint = await batch({ tokens: [expired(), fresh, expired({ aud: 'client-b' })], mode: 'id_token_hint' })
  t.equal(hint.status, 200)
  t.match(hint.body.results, [
    { ok: true, identity: { subject: 'user-123', expiresIn: 0, expiresAt: long + 3600 } },
    { ok: true },
    { ok: false, error: { code: 'audience_mismatch' } }
  ], 'an expired hint is valid; everything else is still checked')
  const login = await batch({ tokens: [expired(), fresh] })
  t.match(login.body.results, [{ ok: false, error: { code: 'token_expired' } }, { ok: true }], 'never implied')
  t.match((await batch({ tokens: [expired()], mode: 'id_token' })).body.results, [{ ok: false, error: { code: 'token_expired' } }])
  for (const mode of ['hint', 'ID_TOKEN_HINT', '', 5, null, ['id_token_hint']]) {
    const res = await batch({ tokens: [expired()], mode })
    t.same([res.status, res.body.code], [400, 'request_invalid'], `batch mode ${JSON.stringify(mode)}`)
  }
})

t.test('/introspect: mode=id_token_hint makes an expired hint active', async (t) => {
  const introspect = async (params: Record<string, string> | string) => {
    const payload = typeof params === 'string' ? params : new URLSearchParams(params).toString()
    const res = await app.inject({ method: 'POST', url: '/introspect', payload, headers: { 'content-type': 'application/x-www-form-urlencoded' } })
    return { status: res.statusCode, body: res.json() }
  }
  const token = expired()
  const hint = await introspect({ token, mode: 'id_token_hint' })
  t.equal(hint.status, 200)
  t.match(hint.body, { active: true, sub: 'user-123', exp: long + 3600, identity: { expiresIn: 0 } })
  t.same((await introspect({ token })).body, { active: false }, 'never implied')
  t.same((await introspect({ token, mode: 'id_token' })).body, { active: false })
  t.same((await introspect({ token: expired({ aud: 'client-b' }), mode: 'id_token_hint' })).body, { active: false }, 'everything else is still checked')
  t.same((await introspect({ token: mint(intruder, idTokenClaims(ISS, AUD, { acr: 'mfa', iat: long, exp: long + 60 })), mode: 'id_token_hint' })).body, { active: false })
  for (const mode of ['hint', 'ID_TOKEN_HINT', 'id_token_hint ', '']) {
    const res = await introspect({ token, mode })
    t.same([res.status, res.body.code], [400, 'request_invalid'], `introspect mode ${JSON.stringify(mode)}`)
  }
  const twice = await introspect(`token=${token}&mode=id_token_hint&mode=id_token_hint`)
  t.same([twice.status, twice.body.code], [400, 'request_invalid'], 'mode twice')
})
