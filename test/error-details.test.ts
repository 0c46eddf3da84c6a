/**
 * What a rejection says beyond its code, so that an operator can tell causes apart without the token:
 * - offBySeconds on every time error: how far past its limit the token is, before the clock tolerance (a few
 *   seconds point at the clocks, hours at a stale session), on full verifications and cache hits alike;
 * - algorithm on algorithm_not_allowed: the token's alg when it is a registered JWS name, never other input;
 * - nearIssuer and issuerDifference on issuer_unknown: the configured issuer the iss nearly names, and how
 *   (never the iss itself).
 * All reach the answer, a batch item and the request's log line.
 */
import t from 'tap'
import { Writable } from 'node:stream'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { Verifier } from '../src/core/verifier.js'
import { MAX_COMPARED_LENGTH, nearIssuer } from '../src/core/near-issuer.js'
import { loggerOptions } from '../src/logger.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-1'
const TOLERANCE = 30
const NOW = 1_900_000_000
const key = makeKey('ES256')
const rsa = makeKey('RS256')

function verifierAt (clock: { ms: number }, issuer: Record<string, unknown> = {}): Verifier {
  const config = configFor([{ id: 'idp', issuer: ISS, audiences: [AUD], clockToleranceSeconds: TOLERANCE, jwks: jwksOf(key, rsa), ...issuer }])
  const v = new Verifier(config, { now: () => clock.ms })
  t.teardown(() => v.close())
  return v
}

const at = (claims: Record<string, unknown>): string => mint(key, idTokenClaims(ISS, AUD, { iat: NOW - 60, exp: NOW + 600, auth_time: NOW - 100, ...claims }))

t.test('every time error says by how much, before the tolerance, rounded up', async (t) => {
  const clock = { ms: NOW * 1000 + 250 }
  const v = verifierAt(clock, { maxTokenAgeSeconds: 3600 })
  const cases: Array<[string, string, Record<string, unknown>, Record<string, unknown>, number]> = [
    ['expired by the tolerance', 'token_expired', { exp: NOW - TOLERANCE }, {}, TOLERANCE + 1],
    ['expired a day ago', 'token_expired', { iat: NOW - 86_400 - 600, exp: NOW - 86_400 }, {}, 86_401],
    ['nbf ahead', 'token_not_yet_valid', { nbf: NOW + 45 }, {}, 45],
    ['iat ahead', 'token_issued_in_future', { iat: NOW + 3600, exp: NOW + 7200 }, {}, 3600],
    ['auth_time ahead', 'claim_invalid', { auth_time: NOW + 31 }, {}, 31],
    ['older than maxTokenAgeSeconds', 'token_too_old', { iat: NOW - 3600 - 120 }, {}, 121],
    ['login older than maxAge', 'authentication_too_old', { auth_time: NOW - 500 }, { maxAge: 300 }, 201]
  ]
  for (const [name, code, claims, request, off] of cases) {
    await t.rejects(v.verify(at(claims), request), { code, details: { issuer: 'idp', offBySeconds: off } }, name)
  }
  const other = await v.verify(at({ aud: 'someone-else' })).catch((err: unknown) => err)
  t.match(other, { code: 'audience_mismatch' })
  t.notOk('offBySeconds' in (other as { details: object }).details, 'only time errors carry it')
})

t.test('a cache hit that time has overtaken says by how much too', async (t) => {
  const clock = { ms: NOW * 1000 }
  const v = verifierAt(clock)
  const token = at({ exp: NOW + 60 })
  for (let i = 0; i < 3; i++) await v.verify(token, { maxAge: 200 })
  clock.ms = (NOW + 200) * 1000
  await t.rejects(v.verify(token, { maxAge: 200 }), { code: 'token_expired', details: { offBySeconds: 140 } })
  clock.ms = (NOW + 80) * 1000
  await t.rejects(v.verify(token, { maxAge: 100 }), { code: 'authentication_too_old', details: { offBySeconds: 80 } }, 'maxAge on a hit')
  t.equal((await v.verify(token, { maxAge: 200 })).subject, 'user-123', 'still a hit within its limits')
})

t.test('algorithm_not_allowed names a registered algorithm and nothing else', async (t) => {
  const v = verifierAt({ ms: NOW * 1000 }, { algorithms: ['ES256'] })
  const claims = idTokenClaims(ISS, AUD, { iat: NOW, exp: NOW + 600 })
  const withAlg = (alg: unknown): string => mint(key, claims, { header: { alg } })
  for (const alg of ['RS256', 'HS256', 'none', 'ES256K', 'Ed448', 'PS512']) {
    await t.rejects(v.verify(withAlg(alg)), { code: 'algorithm_not_allowed', details: { issuer: 'idp', algorithm: alg } }, alg)
  }
  for (const alg of ['rs256', 'RS256 ', '<b>HS256</b>', 'x'.repeat(300), 'A256GCM', '__proto__', 'constructor']) {
    const err = await v.verify(withAlg(alg)).catch((e: unknown) => e) as { code: string, details: Record<string, unknown> }
    t.equal(err.code, 'algorithm_not_allowed', JSON.stringify(alg).slice(0, 20))
    t.notOk('algorithm' in err.details, 'input that is not a registered name is not repeated')
  }
  await t.rejects(v.verify(mint(rsa, claims)), { code: 'algorithm_not_allowed', details: { algorithm: 'RS256' } }, 'a real RS256 token')
})

t.test('nearIssuer: the configured issuer an unknown iss nearly names, and how they differ', async (t) => {
  const known = [
    { id: 'auth0', url: 'https://tenant.eu.auth0.com/' },
    { id: 'okta', url: 'https://acme.okta.com/oauth2/default' },
    { id: 'keycloak', url: 'https://sso.example.com:8443/realms/Staff' },
    { id: 'entra', url: 'https://login.microsoftonline.com/{tenantid}/v2.0' },
    { id: 'v6', url: 'https://[2001:db8::1]:8443/idp' },
    { id: 'dev', url: 'http://127.0.0.1:9400' }
  ]
  const cases: Array<[string, string | undefined, string | undefined]> = [
    ['https://tenant.eu.auth0.com', 'auth0', 'trailing_slash'],
    ['https://acme.okta.com/oauth2/default/', 'okta', 'trailing_slash'],
    ['https://Tenant.EU.auth0.com/', 'auth0', 'letter_case'],
    ['https://sso.example.com:8443/realms/staff', 'keycloak', 'letter_case'],
    ['http://acme.okta.com/oauth2/default', 'okta', 'scheme'],
    ['https://sso.example.com/realms/Staff', 'keycloak', 'port'],
    ['https://acme.okta.com', 'okta', 'path'],
    ['https://acme.okta.com/oauth2/aus1234', 'okta', 'path'],
    ['https://sso.example.com:8443/realms/other', 'keycloak', 'path'],
    ['https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0', 'entra', 'path'],
    ['https://[2001:db8::1]:8443/idp/', 'v6', 'trailing_slash'],
    ['https://[2001:db8::1]/idp', 'v6', 'port'],
    ['http://127.0.0.1:9401', 'dev', 'port'],
    ['https://127.0.0.1:9400', 'dev', 'scheme'],
    // Entra's v1 tokens come from another host of the same cloud: a v1 iss at an issuer configured for v2, or the reverse.
    ['https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/', 'entra', 'token_version'],
    // Not near anything: another host, another cloud's v1 host, v1 over http, no scheme, nothing at all.
    ['https://evil.example.com/', undefined, undefined],
    ['https://sts.windows.net.evil.example/9188040d-6c67-4c5b-b112-36a304b66dad/', undefined, undefined],
    ['http://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/', undefined, undefined],
    ['tenant.eu.auth0.com', undefined, undefined],
    ['', undefined, undefined],
    ['https://okta.com.acme/oauth2/default', undefined, undefined]
  ]
  for (const [iss, id, difference] of cases) {
    t.same(nearIssuer(iss, known), id === undefined ? undefined : { id, difference }, iss || '(empty)')
  }
  t.same(nearIssuer('https://acme.okta.com/' + 'a'.repeat(MAX_COMPARED_LENGTH), known), undefined, 'a long iss is not compared')
  // The other way round (a v2 token at a v1 issuer), and China's cloud, whose hosts pair with each other only.
  const TID = '72f988bf-86f1-41af-91ab-2d7cd011db47'
  t.same(nearIssuer(`https://login.microsoftonline.com/${TID}/v2.0`, [{ id: 'v1', url: `https://sts.windows.net/${TID}/` }]), { id: 'v1', difference: 'token_version' })
  t.same(nearIssuer(`https://login.chinacloudapi.cn/${TID}/v2.0`, [{ id: 'v1-cn', url: 'https://sts.chinacloudapi.cn/{tenantid}/' }]), { id: 'v1-cn', difference: 'token_version' })
  t.same(nearIssuer(`https://sts.chinacloudapi.cn/${TID}/`, [{ id: 'v2-cn', url: `https://login.chinacloudapi.cn/${TID}/v2.0` }]), { id: 'v2-cn', difference: 'token_version' })
  t.same(nearIssuer(`https://sts.chinacloudapi.cn/${TID}/`, [{ id: 'v2', url: `https://login.microsoftonline.com/${TID}/v2.0` }]), undefined, 'another cloud')
  // The closest kind of difference wins over the configuration's order.
  t.same(nearIssuer('https://idp.example.com/a/', [{ id: 'far', url: 'https://idp.example.com/b' }, { id: 'close', url: 'https://idp.example.com/a' }]), { id: 'close', difference: 'trailing_slash' })

  const v = verifierAt({ ms: NOW * 1000 }, { issuerAliases: ['https://alias.example.com/'] })
  const claims = (iss: string): Record<string, unknown> => idTokenClaims(iss, AUD, { iat: NOW, exp: NOW + 600 })
  await t.rejects(v.verify(mint(key, claims(`${ISS}/`))), { code: 'issuer_unknown', details: { claim: 'iss', nearIssuer: 'idp', issuerDifference: 'trailing_slash' } })
  await t.rejects(v.verify(mint(key, claims('https://alias.example.com'))), { code: 'issuer_unknown', details: { nearIssuer: 'idp', issuerDifference: 'trailing_slash' } }, 'aliases count')
  const far = await v.verify(mint(key, claims('https://elsewhere.example.com'))).catch((e: unknown) => e) as { code: string, details: Record<string, unknown> }
  t.equal(far.code, 'issuer_unknown')
  t.notOk('nearIssuer' in far.details || 'issuerDifference' in far.details, 'nothing near: no details')
})

t.test('nearIssuer: letter case of scheme and host, two differences at once, a template\'s origin, the length bound, ties', async (t) => {
  const known = [
    { id: 'okta', url: 'https://acme.okta.com/oauth2/default' },
    { id: 'keycloak', url: 'https://sso.example.com:8443/realms/Staff' },
    { id: 'entra', url: 'https://login.microsoftonline.com/{tenantid}/v2.0' }
  ]
  const cases: Array<[string, string | undefined, string | undefined]> = [
    // Scheme and host are compared without letter case, so the difference found is the path's.
    ['HTTPS://acme.okta.com/oauth2/other', 'okta', 'path'],
    ['https://ACME.okta.com/oauth2/other', 'okta', 'path'],
    // Two differences at once are no near miss: scheme and port, scheme and path, port and path.
    ['http://sso.example.com/realms/Staff', undefined, undefined],
    ['http://acme.okta.com/oauth2/other', undefined, undefined],
    ['https://sso.example.com/realms/other', undefined, undefined],
    // A template's origin must be the token's: scheme and port included.
    ['http://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0', undefined, undefined],
    ['https://login.microsoftonline.com:8443/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0', undefined, undefined],
    // Nothing before "://": no scheme, not a URL.
    ['://acme.okta.com/oauth2/default', undefined, undefined]
  ]
  for (const [iss, id, difference] of cases) {
    t.same(nearIssuer(iss, known), id === undefined ? undefined : { id, difference }, iss)
  }
  const longest = 'https://acme.okta.com/' + 'a'.repeat(MAX_COMPARED_LENGTH - 'https://acme.okta.com/'.length)
  t.equal(longest.length, MAX_COMPARED_LENGTH)
  t.same(nearIssuer(longest, known), { id: 'okta', difference: 'path' }, 'an iss of exactly MAX_COMPARED_LENGTH is compared')
  // The same kind of difference: the configuration's order decides.
  t.same(nearIssuer('https://idp.example.com/c', [{ id: 'first', url: 'https://idp.example.com/a' }, { id: 'second', url: 'https://idp.example.com/b' }]), { id: 'first', difference: 'path' })
})

t.test('the answer, a batch item and the log line carry the details', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk, _enc, cb) { for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l)); cb() } })
  const config = configFor([{ id: 'idp', issuer: ISS, audiences: [AUD], clockToleranceSeconds: TOLERANCE, jwks: jwksOf(key), algorithms: ['ES256'] }])
  const app = await buildApp(config, { loggerInstance: pino(loggerOptions('info'), stream) })
  t.teardown(() => app.close())
  const now = Math.floor(Date.now() / 1000)
  // Seconds from minting to checking: a slow machine may take one or two.
  const expired = mint(key, idTokenClaims(ISS, AUD, { iat: now - 7200, exp: now - 3600 }))
  const rs = mint(rsa, idTokenClaims(ISS, AUD))
  const slashed = mint(key, idTokenClaims(`${ISS}/`, AUD))

  const one = await app.inject({ method: 'POST', url: '/verify', payload: { token: expired } })
  t.equal(one.statusCode, 401)
  t.match(one.json(), { code: 'token_expired', claim: 'exp', issuer: 'idp' })
  t.ok(one.json().offBySeconds >= 3600 && one.json().offBySeconds <= 3603, `offBySeconds ${one.json().offBySeconds}`)
  t.match((await app.inject({ method: 'POST', url: '/verify', payload: { token: rs } })).json(), { code: 'algorithm_not_allowed', algorithm: 'RS256' })
  const unknown = await app.inject({ method: 'POST', url: '/verify', payload: { token: slashed } })
  t.match(unknown.json(), { code: 'issuer_unknown', claim: 'iss', nearIssuer: 'idp', issuerDifference: 'trailing_slash' })
  t.notOk(unknown.body.includes(`${ISS}/`), 'the iss itself is not repeated')

  const batch = await app.inject({ method: 'POST', url: '/verify/batch', payload: { tokens: [expired, rs, slashed] } })
  t.equal(batch.statusCode, 200)
  const [first, second, third] = batch.json().results
  t.match(third, { ok: false, error: { code: 'issuer_unknown', nearIssuer: 'idp', issuerDifference: 'trailing_slash' } })
  t.match(first, { ok: false, error: { code: 'token_expired' } })
  t.ok(first.error.offBySeconds >= 3600, 'a batch item says by how much')
  t.match(second, { ok: false, error: { code: 'algorithm_not_allowed', algorithm: 'RS256' } })

  const forward = await app.inject({ method: 'GET', url: '/forward-auth', headers: { authorization: `Bearer ${expired}` } })
  t.equal(forward.statusCode, 401)

  const completed = lines.filter((l) => l.msg === 'request completed')
  t.equal(completed.length, 5)
  t.match(completed[0], { code: 'token_expired', offBySeconds: Number })
  t.match(completed[1], { code: 'algorithm_not_allowed', algorithm: 'RS256' })
  t.notOk('offBySeconds' in (completed[1] as object))
  t.match(completed[2], { code: 'issuer_unknown', nearIssuer: 'idp', issuerDifference: 'trailing_slash' })
  t.notOk(JSON.stringify(completed[2]).includes(`${ISS}/`), 'nor logged')
  t.match(completed[4], { route: '/forward-auth', code: 'token_expired', offBySeconds: Number }, 'forward-auth logs it too')
})
