import t from 'tap'
import { buildApp } from '../src/app.js'
import { nestsDeeperThan } from '../src/core/compact-jws.js'
import { MAX_BODY_DEPTH } from '../src/http/json-body.js'
import { ALL_ERROR_CODES } from '../src/errors.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint, mintHmac, nowSeconds } from './helpers/tokens.js'
import { computeAtHash } from '../src/core/at-hash.js'
import { sign } from 'node:crypto'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const es = makeKey('ES256')
const rs = makeKey('RS256')
const ps = makeKey('PS256')
const ed = makeKey('EdDSA')
const otherEs = makeKey('ES256', { kid: es.kid }) // same kid, different key: a forgery
const secret = 'a'.repeat(32) + 'b'.repeat(32)

const outbound: string[] = []
const recordingFetcher = async (url: string): Promise<never> => { outbound.push(url); throw new Error('no network in this test') }

// Signature checks batched on the event loop here (the default on one core); the other suites run with
// `auto`, which on a machine with two cores or more is the thread pool: both paths see every kind of token.
const config = configFor([
  { id: 'main', issuer: ISS, audiences: [AUD, 'client-b'], authorizedParties: ['android-client'], jwks: jwksOf(es, rs, ps, ed) },
  { id: 'hmac', issuer: 'https://hmac.example.com', audiences: ['conf-client'], algorithms: ['HS256'], clientSecret: secret, jwks: jwksOf(es) },
  { id: 'strict', issuer: 'https://strict.example.com', audiences: [AUD], jwks: jwksOf(es), maxTokenAgeSeconds: 60, requiredClaims: { hd: ['example.com'] } }
], { server: { signatureChecks: 'event-loop' } })

const app = await buildApp(config, { fetcher: recordingFetcher as never })
t.teardown(() => app.close())

async function verify (token: unknown, extra: Record<string, unknown> = {}) {
  const res = await app.inject({ method: 'POST', url: '/verify', payload: { token, ...extra } })
  return { status: res.statusCode, body: res.json(), headers: res.headers }
}

t.test('valid tokens of every algorithm verify and are normalized', async (t) => {
  for (const key of [es, rs, ps, ed]) {
    const res = await verify(mint(key, idTokenClaims(ISS, AUD, { groups: ['admins', 7], locale: 'en' })))
    t.equal(res.status, 200, key.alg)
    t.equal(res.body.subject, 'user-123')
    t.same(res.body.issuer, { id: 'main', url: ISS })
    t.same(res.body.audiences, [AUD])
    t.equal(res.body.user.email, 'user@example.com')
    t.equal(res.body.user.emailVerified, true)
    t.equal(res.body.user.name, 'Ada Lovelace')
    t.equal(res.body.user.givenName, null)
    t.same(res.body.groups, ['admins'], 'non-string members dropped')
    t.same(res.body.roles, [])
    t.equal(res.body.tenant, null)
    t.ok(res.body.expiresIn > 500 && res.body.expiresIn <= 600)
    t.equal(res.body.claims.locale, 'en')
  }
})

t.test('Authorization: Bearer works; both places at once is ambiguous; query string is refused', async (t) => {
  const token = mint(es, idTokenClaims(ISS, AUD))
  let res = await app.inject({ method: 'POST', url: '/verify', headers: { authorization: `Bearer ${token}` } })
  t.equal(res.statusCode, 200)
  res = await app.inject({ method: 'POST', url: '/verify', headers: { authorization: `bearer ${token}` }, payload: {} })
  t.equal(res.statusCode, 200, 'scheme is case-insensitive, empty JSON body allowed')
  res = await app.inject({ method: 'POST', url: '/verify', headers: { authorization: `Bearer ${token}` }, payload: { token } })
  t.equal(res.json().code, 'token_ambiguous')
  t.equal(res.statusCode, 400)
  // Node keeps only the first of several Authorization lines (inject() sends an array as repeated lines).
  for (const authorization of [[`Bearer ${token}`, `Bearer ${mint(es, idTokenClaims(ISS, AUD, { sub: 'mallory' }))}`], [`Bearer ${token}`, `Bearer ${token}`]]) {
    res = await app.inject({ method: 'POST', url: '/verify', headers: { authorization: authorization as unknown as string } })
    t.equal(res.json().code, 'token_ambiguous', 'several Authorization lines')
    t.equal(res.statusCode, 400)
  }
  res = await app.inject({ method: 'POST', url: `/verify?id_token=${token}`, payload: {} })
  t.equal(res.json().code, 'token_in_query')
  res = await app.inject({ method: 'POST', url: '/verify', headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } })
  t.equal(res.json().code, 'request_invalid')
  res = await app.inject({ method: 'POST', url: '/verify' })
  t.equal(res.json().code, 'token_missing')
  t.equal(res.statusCode, 400)
})

t.test('request fields are validated strictly, without coercion', async (t) => {
  const token = mint(es, idTokenClaims(ISS, AUD))
  for (const payload of [
    { token: [token] }, { token: 12 }, { token: '' }, { token, nonce: 5 }, { token, maxAge: '60' }, { token, maxAge: -1 },
    { token, maxAge: 1.5 }, { token, extra: true }, { token, audience: 'not-configured' }, [token], 'just a string'
  ]) {
    const res = await app.inject({ method: 'POST', url: '/verify', payload: payload as never, headers: { 'content-type': 'application/json' } })
    t.equal(res.statusCode, 400, JSON.stringify(payload).slice(0, 60))
    t.equal(res.json().code, 'request_invalid')
  }
  const res = await app.inject({ method: 'POST', url: '/verify', payload: '{"token": "abc', headers: { 'content-type': 'application/json' } })
  t.equal(res.statusCode, 400)
  t.equal(res.json().code, 'request_invalid')
  t.notMatch(res.body, /abc/, 'parser messages that quote input are not echoed')
  const form = await app.inject({ method: 'POST', url: '/verify', payload: `token=${token}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } })
  t.equal(form.statusCode, 415)
  t.equal(form.json().code, 'unsupported_media_type')
  const big = await app.inject({ method: 'POST', url: '/verify', payload: { token: 'a'.repeat(70000) } })
  t.equal(big.statusCode, 413)
  t.equal(big.json().code, 'request_too_large')
})

t.test('JSON bodies: a large one nested deeper than any schema is refused before it is parsed', async (t) => {
  const deep = `{"tokens":${'['.repeat(300_000)}${']'.repeat(300_000)}}`
  const res = await app.inject({ method: 'POST', url: '/verify/batch', payload: deep, headers: { 'content-type': 'application/json' } })
  t.same([res.statusCode, res.json().code], [400, 'request_invalid'])
  t.equal(nestsDeeperThan(deep, MAX_BODY_DEPTH), true)
  t.equal(nestsDeeperThan('{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[","b":[["x"]]}', MAX_BODY_DEPTH), false, 'brackets inside strings do not count')
  t.equal(nestsDeeperThan('{"a":"\\"[[[[[[[[[[[[[[[[[[["}', MAX_BODY_DEPTH), false, 'nor after an escaped quote')
  t.equal(nestsDeeperThan(`${'['.repeat(9)}${']'.repeat(9)}`, MAX_BODY_DEPTH), true)
  t.equal(nestsDeeperThan(`${'['.repeat(8)}${']'.repeat(8)}`, MAX_BODY_DEPTH), false)
  const token = mint(es, idTokenClaims(ISS, AUD))
  const batch = await app.inject({ method: 'POST', url: '/verify/batch', payload: { tokens: Array.from({ length: 30 }, () => token), pad: 'x'.repeat(20_000) } })
  t.equal(batch.json().code, 'request_invalid', 'a large body of the right depth is parsed, then checked by its schema (pad is unknown)')
})

t.test('JSON bodies: a member named twice is refused, however it is spelled', async (t) => {
  const token = mint(es, idTokenClaims(ISS, AUD))
  const other = mint(es, idTokenClaims(ISS, AUD, { sub: 'someone-else' }))
  const post = async (url: string, payload: string) =>
    await app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json' } })
  const cases: Array<[string, string]> = [
    ['/verify', `{"token":"${other}","token":"${token}"}`],
    ['/verify', `{"token":"${token}","\\u0074oken":"${token}"}`],
    ['/verify', `{"token" : "${token}", "audience" : "${AUD}", "audience" : "client-b"}`],
    ['/verify/batch', `{"tokens":["${token}"],"tokens":["${other}"]}`]
  ]
  for (const [url, payload] of cases) {
    const res = await post(url, payload)
    t.same([res.statusCode, res.json().code, res.json().parameter], [400, 'request_invalid', 'body'], payload.slice(0, 40))
  }
  const spaced = await post('/verify', `{ "token" : "${token}" , "audience" : "${AUD}" }`)
  t.same([spaced.statusCode, spaced.json().subject], [200, 'user-123'], 'each member once, spaced out: read')
})

t.test('JSON bodies: a small one nested thousands deep is answered by its schema, not a stack overflow', async (t) => {
  // Under the depth scan's 16 KiB, so JSON.parse reads it whole; the duplicate-member check must not recurse once per level.
  for (const depth of [5000, 8000]) {
    const deep = `{"token":${'['.repeat(depth)}${']'.repeat(depth)}}`
    const res = await app.inject({ method: 'POST', url: '/verify', payload: deep, headers: { 'content-type': 'application/json' } })
    // body.token: the schema's answer (a stack overflow caught by Fastify's parser wrapper said only body).
    t.same([res.statusCode, res.json().code, res.json().parameter], [400, 'request_invalid', 'body.token'], `${depth} deep`)
  }
})

t.test('JSON bodies: UTF-8 only; an empty one is no body', async (t) => {
  const token = mint(es, idTokenClaims(ISS, AUD))
  const body = JSON.stringify({ token })
  const post = async (contentType: string, payload: string | Buffer, extra: Record<string, string> = {}) =>
    await app.inject({ method: 'POST', url: '/verify', payload, headers: { 'content-type': contentType, ...extra } })
  for (const contentType of ['application/json; charset=utf-8', 'application/json;charset=UTF-8', 'application/json; charset="utf-8"', 'application/json; foo=bar', 'application/json; charset=us-ascii']) {
    t.equal((await post(contentType, body)).statusCode, 200, contentType)
  }
  for (const [contentType, payload] of [['application/json; charset=utf-16', body], ['application/json; charset=utf-16le', Buffer.from(body, 'utf16le')], ['application/json; charset=iso-8859-1', body]] as const) {
    const res = await post(contentType, payload)
    t.same([res.statusCode, res.json().code], [415, 'unsupported_media_type'], contentType)
  }
  const bearerOnly = await post('application/json', '', { authorization: `Bearer ${token}` })
  t.same([bearerOnly.statusCode, bearerOnly.json().subject], [200, 'user-123'], 'a bodiless POST labelled JSON, the token in the header')
  const labelledEmpty = await post('application/json; charset=iso-8859-1', '', { authorization: `Bearer ${token}` })
  t.equal(labelledEmpty.statusCode, 200, 'an empty body is no body, whatever charset it declares')
  const nothing = await post('application/json', '')
  t.same([nothing.statusCode, nothing.json().code], [400, 'token_missing'], 'no body and no header: no token')
  const introspect = await app.inject({ method: 'POST', url: '/introspect', payload: `token=${token}`, headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-16' } })
  t.same([introspect.statusCode, introspect.json().code], [415, 'unsupported_media_type'], 'forms too')
  const latin1Form = await app.inject({ method: 'POST', url: '/introspect', payload: `token=${token}`, headers: { 'content-type': 'application/x-www-form-urlencoded; charset=ISO-8859-1' } })
  t.equal(latin1Form.statusCode, 200, 'a form labelled ISO-8859-1 (some HTTP clients always do): ASCII is ASCII')
})

t.test('malformed tokens are token_malformed, never a 5xx', async (t) => {
  const good = mint(es, idTokenClaims(ISS, AUD))
  const [h, p, s] = good.split('.') as [string, string, string]
  const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  // An ES256 signature is 64 bytes: 86 characters, the last carrying 4 unused bits, all zero when canonical.
  t.equal(s.length % 4, 2, 'the signature ends in a partial group')
  const setUnusedBit = (segment: string): string => `${segment.slice(0, -1)}${B64URL[B64URL.indexOf(segment.slice(-1)) | 1] as string}`
  const cases: Record<string, string> = {
    'one segment': 'abc',
    'two segments': `${h}.${p}`,
    'four segments': `${h}.${p}.${s}.x`,
    'empty signature (alg none style)': `${h}.${p}.`,
    'empty header': `.${p}.${s}`,
    'empty payload': `${h}..${s}`,
    'padding': `${h}=.${p}.${s}`,
    'padding in the payload': `${h}.${p}=.${s}`,
    'standard base64 chars': `${h}.${p.slice(0, -1)}+.${s}`,
    'standard base64 chars in the header': `${h.slice(0, -1)}/.${p}.${s}`,
    'whitespace inside': `${h}. ${p}.${s}`,
    'whitespace in the header': `${h.slice(0, 4)} ${h.slice(4)}.${p}.${s}`,
    'non-canonical trailing bits': `${h}.${p}.${setUnusedBit(s)}`,
    'header is an array': `${Buffer.from('[1]').toString('base64url')}.${p}.${s}`,
    'header is null': `${Buffer.from('null').toString('base64url')}.${p}.${s}`,
    'payload is a string': `${h}.${Buffer.from('"x"').toString('base64url')}.${s}`,
    'payload not JSON': `${h}.${Buffer.from('{"a":').toString('base64url')}.${s}`,
    'payload invalid UTF-8': `${h}.${Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')}.${s}`,
    'unicode in token': `${h}.${p}.${s}é`,
    'unicode in the payload': `${h}.${p.slice(0, 8)}é${p.slice(8)}.${s}`,
    'length mod 4 == 1': `${h}.${p}.${s}AAA`
  }
  for (const [name, token] of Object.entries(cases)) {
    const res = await verify(token)
    t.equal(res.status, 401, `${name}: status`)
    t.equal(res.body.code, 'token_malformed', name)
    t.match(res.headers['www-authenticate'], /^Bearer error="invalid_token"/)
  }
  // A change of the last character to another canonical value, or one more whole byte, is a wrong signature.
  const otherCanonical = `${h}.${p}.${s.slice(0, -1)}${s.endsWith('A') ? 'Q' : 'A'}`
  t.equal((await verify(otherCanonical)).body.code, 'signature_invalid', 'a canonical change of the signature')
  t.equal((await verify(`${h}.${p}.${s}A`)).body.code, 'signature_invalid', 'a 65-byte ES256 signature')
  const jwe = await verify('eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d')
  t.equal(jwe.body.code, 'token_encrypted')
  const huge = await verify('a'.repeat(20000))
  t.equal(huge.body.code, 'token_too_large')
})

t.test('issuer and algorithm selection', async (t) => {
  t.equal((await verify(mint(es, idTokenClaims('https://evil.example.com', AUD)))).body.code, 'issuer_unknown')
  t.equal((await verify(mint(es, idTokenClaims(`${ISS}/`, AUD)))).body.code, 'issuer_unknown', 'exact match only')
  t.equal((await verify(mint(es, { ...idTokenClaims(ISS, AUD), iss: undefined }))).body.code, 'claim_missing')
  t.equal((await verify(mint(es, { ...idTokenClaims(ISS, AUD), iss: [ISS] }))).body.code, 'claim_invalid')
  t.equal((await verify(mint(es, idTokenClaims(ISS, AUD), { header: { alg: 'none' } }))).body.code, 'algorithm_not_allowed')
  t.equal((await verify(mint(es, idTokenClaims(ISS, AUD), { header: { alg: 'HS256' } }))).body.code, 'algorithm_not_allowed', 'HS256 without a secret')
  t.equal((await verify(mint(es, idTokenClaims(ISS, AUD), { header: { alg: 'RS256' } }))).body.code, 'key_not_found', 'alg/key mismatch: kid is an EC key')
  t.equal((await verify(mint(es, idTokenClaims(ISS, AUD), { header: { alg: 5 } }))).body.code, 'header_invalid')
  t.equal((await verify(mint(es, idTokenClaims(ISS, AUD), { header: { crit: ['exp'], exp: 1 } }))).body.code, 'header_invalid')
  t.equal((await verify(mint(es, idTokenClaims(ISS, AUD), { header: { kid: 7 } }))).body.code, 'header_invalid')
  t.equal((await verify(mint(es, idTokenClaims(ISS, AUD), { header: { kid: 'unknown' } }))).body.code, 'key_not_found')
  t.equal((await verify(mint(otherEs, idTokenClaims(ISS, AUD)))).body.code, 'signature_invalid', 'same kid, other key')
  const noKid = mint(es, idTokenClaims(ISS, AUD), { rawHeader: { alg: 'ES256' } })
  t.equal((await verify(noKid)).status, 200, 'no kid: the fitting keys are tried')
})

t.test('embedded keys and key URLs in the header are never used nor fetched', async (t) => {
  const attacker = makeKey('ES256')
  const claims = idTokenClaims(ISS, AUD)
  for (const header of [
    { jwk: attacker.jwk, kid: attacker.kid },
    { jku: 'http://127.0.0.1:1/jwks', kid: attacker.kid },
    { x5u: 'http://127.0.0.1:1/cert', kid: attacker.kid },
    { x5c: ['MIIB'], kid: attacker.kid }
  ]) {
    const res = await verify(mint(attacker, claims, { header }))
    t.equal(res.status, 401)
    t.equal(res.body.code, 'key_not_found')
  }
  t.same(outbound, [], 'no outbound request at all')
})

t.test('claims: presence, types and values', async (t) => {
  const now = nowSeconds()
  const base = idTokenClaims(ISS, AUD)
  const expect: Array<[Record<string, unknown>, string, string?]> = [
    [{ sub: undefined }, 'claim_missing', 'sub'],
    [{ sub: '' }, 'claim_invalid', 'sub'],
    [{ sub: 'x'.repeat(256) }, 'claim_invalid', 'sub'],
    [{ sub: 42 }, 'claim_invalid', 'sub'],
    // A lone surrogate (JSON "\ud800"): no UTF-8 form, so a forward-auth header would read it as U+FFFD.
    [{ sub: 'bob\ud800' }, 'claim_invalid', 'sub'],
    [{ sub: '\udc00' }, 'claim_invalid', 'sub'],
    // Control characters have no place in an identifier.
    [{ sub: 'user\r\nX-Admin: 1' }, 'claim_invalid', 'sub'],
    [{ sub: 'a\u0000b' }, 'claim_invalid', 'sub'],
    [{ sub: 'a\u007fb' }, 'claim_invalid', 'sub'],
    // Core §2: acr is a string (a list would meet requiredClaims' acr by any member).
    [{ acr: ['bronze', 'gold'] }, 'claim_invalid', 'acr'],
    [{ acr: 2 }, 'claim_invalid', 'acr'],
    [{ aud: undefined }, 'claim_missing', 'aud'],
    [{ aud: [] }, 'claim_invalid', 'aud'],
    [{ aud: [AUD, 5] }, 'claim_invalid', 'aud'],
    [{ aud: 'someone-else' }, 'audience_mismatch', 'aud'],
    [{ aud: [AUD, 'untrusted'], azp: AUD }, 'audience_mismatch', 'aud'],
    [{ aud: [AUD, 'client-b'] }, 'authorized_party_mismatch', 'azp'],
    [{ azp: 'stranger' }, 'authorized_party_mismatch', 'azp'],
    [{ azp: 9 }, 'claim_invalid', 'azp'],
    [{ exp: undefined }, 'claim_missing', 'exp'],
    [{ exp: String(now + 60) }, 'claim_invalid', 'exp'],
    [{ exp: now - 31 }, 'token_expired', 'exp'],
    [{ iat: undefined }, 'claim_missing', 'iat'],
    [{ iat: now + 120 }, 'token_issued_in_future', 'iat'],
    [{ iat: -5 }, 'claim_invalid', 'iat'],
    [{ nbf: now + 120 }, 'token_not_yet_valid', 'nbf'],
    [{ auth_time: 'yesterday' }, 'claim_invalid', 'auth_time'],
    [{ nonce: 7 }, 'claim_invalid', 'nonce']
  ]
  for (const [override, code, claim] of expect) {
    const res = await verify(mint(es, { ...base, ...override }))
    t.equal(res.body.code, code, JSON.stringify(override))
    if (claim !== undefined) t.equal(res.body.claim, claim)
    t.equal(res.body.issuer, 'main')
  }
  // 1e400 parses as Infinity: the payload is signed as text, so the number reaches the service as written.
  for (const [claim, text] of [['exp', '1e400'], ['exp', '-1e400'], ['iat', '1e400'], ['exp', '1e308']] as const) {
    const payload = JSON.stringify(base).replace(new RegExp(`"${claim}":\\d+`), `"${claim}":${text}`)
    t.match(payload, `"${claim}":${text}`, 'the number is in the signed payload')
    const res = await verify(mint(es, {}, { rawPayload: payload }))
    t.equal(res.body.code, 'claim_invalid', `${claim}: ${text}`)
    t.equal(res.body.claim, claim)
  }
  t.equal((await verify(mint(es, { ...base, exp: now - 20 }))).status, 200, 'within clock tolerance')
  t.equal((await verify(mint(es, { ...base, sub: 'jörg 😀', acr: 'urn:mace:incommon:iap:silver' }))).status, 200, 'a non-ASCII sub and a string acr')
  // RFC 7519 §7.2: cty "JWT" says the payload is a nested token, not a claim set.
  for (const cty of ['JWT', 'jwt', 'application/jwt', 'Application/JWT']) t.match((await verify(mint(es, base, { header: { cty } }))).body, { code: 'header_invalid' }, `cty ${cty}`)
  t.equal((await verify(mint(es, { ...base, aud: [AUD, 'client-b'], azp: AUD }))).status, 200, 'several trusted audiences with azp')
  t.equal((await verify(mint(es, { ...base, azp: 'android-client' }))).status, 200, 'configured authorized party')
})

t.test('explicit typing: access and logout tokens are not ID tokens', async (t) => {
  const base = idTokenClaims(ISS, AUD)
  t.equal((await verify(mint(es, base, { header: { typ: 'at+jwt' } }))).body.code, 'token_is_access_token')
  t.equal((await verify(mint(es, base, { header: { typ: 'application/at+JWT' } }))).body.code, 'token_is_access_token')
  t.equal((await verify(mint(es, { ...base, token_use: 'access' }))).body.code, 'token_is_access_token')
  t.equal((await verify(mint(es, { ...base, typ: 'Bearer' }))).body.code, 'token_is_access_token')
  t.equal((await verify(mint(es, base, { header: { typ: 'logout+jwt' } }))).body.code, 'token_is_logout_token')
  t.equal((await verify(mint(es, { ...base, events: { 'http://schemas.openid.net/event/backchannel-logout': {} } }))).body.code, 'token_is_logout_token')
  t.equal((await verify(mint(es, base, { header: { typ: 'dpop+jwt' } }))).body.code, 'token_type_invalid')
  t.equal((await verify(mint(es, base, { header: { typ: 1 } }))).body.code, 'header_invalid')
  t.equal((await verify(mint(es, { ...base, token_use: 'id' }))).status, 200)
  t.equal((await verify(mint(es, { ...base, typ: 'ID' }))).status, 200)
  t.equal((await verify(mint(es, base, { header: { typ: 'JWT' } }))).status, 200)
})

t.test('per-request checks: nonce, maxAge, accessToken, audience', async (t) => {
  const now = nowSeconds()
  const token = mint(es, idTokenClaims(ISS, AUD, { nonce: 'n-1', auth_time: now - 100, at_hash: computeAtHash('access-xyz', 'ES256') }))
  t.equal((await verify(token, { nonce: 'n-1' })).status, 200)
  t.equal((await verify(token, { nonce: 'n-2' })).body.code, 'nonce_mismatch')
  t.equal((await verify(mint(es, idTokenClaims(ISS, AUD)), { nonce: 'n-1' })).body.code, 'nonce_mismatch', 'missing nonce')
  t.equal((await verify(token, { maxAge: 300 })).status, 200)
  t.equal((await verify(token, { maxAge: 30 })).body.code, 'authentication_too_old')
  t.equal((await verify(mint(es, { ...idTokenClaims(ISS, AUD), auth_time: undefined }), { maxAge: 300 })).body.code, 'auth_time_missing')
  t.equal((await verify(token, { accessToken: 'access-xyz' })).status, 200)
  t.equal((await verify(token, { accessToken: 'access-abc' })).body.code, 'at_hash_mismatch')
  t.equal((await verify(mint(es, idTokenClaims(ISS, AUD)), { accessToken: 'access-xyz' })).body.code, 'at_hash_missing')
  t.equal((await verify(token, { audience: AUD })).status, 200)
  t.equal((await verify(token, { audience: 'client-b' })).body.code, 'audience_mismatch')
  // Narrowed to one client, a token issued to another of ours (azp) that lists this one too is the other's.
  const forB = mint(es, idTokenClaims(ISS, ['client-b', AUD], { azp: 'client-b' }))
  t.equal((await verify(forB)).status, 200, 'not narrowed: a token of either client')
  t.equal((await verify(forB, { audience: 'client-b' })).status, 200, 'narrowed to its own client')
  const narrowed = await verify(forB, { audience: AUD })
  t.same([narrowed.status, narrowed.body.code, narrowed.body.claim], [401, 'authorized_party_mismatch', 'azp'], 'narrowed to the other client: refused, on a cache hit too')
  const fromAndroid = mint(es, idTokenClaims(ISS, AUD, { azp: 'android-client' }))
  t.equal((await verify(fromAndroid, { audience: AUD })).status, 200, 'an authorized party presents a token for our client')
  t.equal((await verify(mint(es, idTokenClaims(ISS, AUD, { azp: AUD })), { audience: AUD })).status, 200, 'azp is the client itself')
  for (const key of [rs, ed]) {
    const tk = mint(key, idTokenClaims(ISS, AUD, { at_hash: computeAtHash('tok', key.alg) }))
    t.equal((await verify(tk, { accessToken: 'tok' })).status, 200, `at_hash for ${key.alg}`)
  }
})

t.test('per-request checks: code (c_hash, hybrid flow), on full verifications and cache hits alike', async (t) => {
  const code = 'SplxlOBeZQQYbYS6WxSbIA'
  // Core §3.3.2.11: the left half of the hash of the code's octets, the ID token's algorithm's hash.
  const hybrid = mint(es, idTokenClaims(ISS, AUD, { c_hash: computeAtHash(code, 'ES256'), jti: 'hybrid-1' }))
  for (let i = 1; i <= 3; i++) t.equal((await verify(hybrid, { code })).status, 200, `verification ${i} (the third a hit)`)
  t.match((await verify(hybrid, { code: 'another-code' })).body, { code: 'c_hash_mismatch', claim: 'c_hash', issuer: 'main' }, 'a substituted code')
  t.match((await verify(hybrid, { code: 'Splxl\u00d3BeZQQYbYS6WxSbIA' })).body, { code: 'c_hash_mismatch' }, 'a code that is not ASCII never matches')
  t.match((await verify(mint(es, idTokenClaims(ISS, AUD)), { code })).body, { code: 'c_hash_missing', claim: 'c_hash' }, 'no c_hash')
  t.match((await verify(mint(es, idTokenClaims(ISS, AUD, { c_hash: 7 })), { code })).body, { code: 'claim_invalid', claim: 'c_hash' })
  t.equal((await verify(hybrid)).status, 200, 'without code, c_hash is not checked')
  const rsHybrid = mint(rs, idTokenClaims(ISS, AUD, { c_hash: computeAtHash(code, 'RS256') }))
  t.equal((await verify(rsHybrid, { code })).status, 200, 'RS256')
  t.equal((await verify(hybrid, { code: '' })).status, 400, 'an empty code is a bad request')
})

t.test('issuer rules: max token age and required claim values', async (t) => {
  const strict = 'https://strict.example.com'
  t.equal((await verify(mint(es, idTokenClaims(strict, AUD, { hd: 'example.com' })))).status, 200)
  t.equal((await verify(mint(es, idTokenClaims(strict, AUD, { hd: 'evil.com' })))).body.code, 'claim_value_mismatch')
  t.equal((await verify(mint(es, idTokenClaims(strict, AUD)))).body.claim, 'hd')
  t.equal((await verify(mint(es, idTokenClaims(strict, AUD, { hd: 'example.com', iat: nowSeconds() - 200 })))).body.code, 'token_too_old')
})

t.test('HMAC with a configured client secret', async (t) => {
  const iss = 'https://hmac.example.com'
  t.equal((await verify(mintHmac(secret, 'HS256', idTokenClaims(iss, 'conf-client')))).status, 200)
  t.equal((await verify(mintHmac('x'.repeat(64), 'HS256', idTokenClaims(iss, 'conf-client')))).body.code, 'signature_invalid')
  t.equal((await verify(mintHmac(secret, 'HS512', idTokenClaims(iss, 'conf-client')))).body.code, 'algorithm_not_allowed')
  t.equal((await verify(mintHmac(secret, 'HS256', idTokenClaims(ISS, AUD)))).body.code, 'algorithm_not_allowed', 'issuer without a secret')
  // A public key used as an HMAC secret (the classic confusion attack) does not help: HS256 is not allowed there.
  t.equal((await verify(mintHmac(JSON.stringify(es.jwk), 'HS256', idTokenClaims(ISS, AUD)))).body.code, 'algorithm_not_allowed')
})

t.test('tampering is detected', async (t) => {
  const token = mint(rs, idTokenClaims(ISS, AUD))
  const [h, p, s] = token.split('.') as [string, string, string]
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString())
  payload.sub = 'admin'
  t.equal((await verify(`${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`)).body.code, 'signature_invalid')
  const shortSig = `${h}.${p}.${s.slice(0, 40)}`
  t.equal((await verify(shortSig)).body.code, 'signature_invalid')
  const esToken = mint(es, idTokenClaims(ISS, AUD)).split('.')
  t.equal((await verify(`${esToken[0]}.${esToken[1]}.${Buffer.alloc(72).toString('base64url')}`)).body.code, 'signature_invalid', 'DER-length ECDSA signature')
})

t.test('every error response has the documented shape', async (t) => {
  const res = await verify('nope')
  t.ok(ALL_ERROR_CODES.includes(res.body.code))
  t.type(res.body.message, 'string')
  t.type(res.body.hint, 'string')
  t.type(res.body.requestId, 'string')
  t.equal(res.headers['x-request-id'], res.body.requestId)
  const nf = await app.inject({ method: 'GET', url: '/nope' })
  t.equal(nf.statusCode, 404)
  t.equal(nf.json().code, 'not_found')
  const withId = await app.inject({ method: 'POST', url: '/verify', headers: { 'x-request-id': 'abc-123' }, payload: { token: 'x' } })
  t.equal(withId.json().requestId, 'abc-123')
  const evilId = await app.inject({ method: 'POST', url: '/verify', headers: { 'x-request-id': 'a b\u0000c' }, payload: { token: 'x' } })
  t.match(evilId.json().requestId, /^[A-Za-z0-9_-]{8}-[0-9a-z]+$/, 'an unsafe caller id is replaced by a made one')
  t.equal(evilId.headers['x-request-id'], evilId.json().requestId)
})

t.test('health and readiness with inline keys', async (t) => {
  const h = await app.inject({ method: 'GET', url: '/healthz' })
  t.same(h.json(), { status: 'ok' })
  const r = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(r.statusCode, 200)
  t.equal(r.json().ready, true)
  t.equal(r.json().issuers.length, 3)
  t.equal(r.json().issuers[0].source, 'inline')
  t.equal(r.json().issuers[0].keyCount, 4)
  t.same(outbound, [])
})

t.test('adversarial payloads: deep nesting, prototype keys, extreme numbers, many audiences', async (t) => {
  const base = idTokenClaims(ISS, AUD)
  const deep = '['.repeat(5000) + ']'.repeat(5000)
  const deepToken = mint(es, {}, { rawPayload: JSON.parse(`{"iss":"${ISS}","x":${deep.slice(0, 2000)}${deep.slice(-2000)}}`) })
  const deepRes = await verify(deepToken)
  t.equal(deepRes.status, 401, 'deeply nested claims: a clean 401, not a crash')
  t.equal(deepRes.body.code, 'token_malformed', 'nested deeper than 64 levels: refused before anything else')
  const input = `${Buffer.from(JSON.stringify({ alg: 'ES256', kid: es.kid })).toString('base64url')}.${Buffer.from(`{"iss":"${ISS}","a":${'['.repeat(6000)}${']'.repeat(6000)}}`).toString('base64url')}`
  const tooDeep = await verify(`${input}.${Buffer.alloc(64).toString('base64url')}`)
  t.equal(tooDeep.status, 401, 'nesting near the size limit')
  t.equal(tooDeep.body.code, 'token_malformed', 'refused before its signature is checked')
  // Signed by a configured key, 5,000 levels deep and under maxTokenBytes: the answer's claims could not be
  // serialized (a 500 before the depth limit); now refused like any malformed token, on every route that verifies.
  const signedInput = `${Buffer.from(JSON.stringify({ alg: 'ES256', kid: es.kid })).toString('base64url')}.${Buffer.from(`{"x":${'['.repeat(5000)}${']'.repeat(5000)},${JSON.stringify(base).slice(1)}`).toString('base64url')}`
  const signedDeep = `${signedInput}.${sign('sha256', Buffer.from(signedInput), { key: es.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`
  t.ok(signedDeep.length < 16384, 'within maxTokenBytes')
  t.same([(await verify(signedDeep)).status, (await verify(signedDeep)).body.code], [401, 'token_malformed'])
  const batch = await app.inject({ method: 'POST', url: '/verify/batch', payload: { tokens: [signedDeep, mint(es, base)] } })
  t.equal(batch.statusCode, 200, 'one such token in a batch is that item\'s error, not the batch\'s')
  t.equal(batch.json().results.length, 2)
  t.match(batch.json().results, [{ ok: false, error: { code: 'token_malformed' } }, { ok: true }])
  const nestedOk = mint(es, { ...base, x: JSON.parse(`${'['.repeat(63)}1${']'.repeat(63)}`) as unknown })
  t.equal((await verify(nestedOk)).status, 200, '64 levels (the claim set and 63 inside it) are accepted')

  const proto = JSON.parse(JSON.stringify(base).replace(/^\{/, '{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}},'))
  const res = await verify(mint(es, proto))
  t.equal(res.status, 200)
  t.equal(({} as Record<string, unknown>).admin, undefined, 'no prototype pollution')
  t.equal(res.body.user.email, 'user@example.com')

  for (const [exp, code] of [[1e308, 'claim_invalid'], [-1, 'claim_invalid'], [0, 'token_expired'], [Number.MAX_SAFE_INTEGER * 1000, 'claim_invalid']] as const) {
    const r = await verify(mint(es, { ...base, exp }))
    t.equal(r.status, 401, `exp ${exp}`)
    t.equal(r.body.code, code, `exp ${exp}`)
    t.equal(r.body.claim, 'exp')
  }
  const manyAud = Array.from({ length: 500 }, (_, i) => `aud-${i}`)
  t.equal((await verify(mint(es, { ...base, aud: [AUD, ...manyAud], azp: AUD }))).body.code, 'audience_mismatch')
  const header = await verify(mint(es, base, { header: { alg: 'ES256', kid: es.kid, jku: 'http://127.0.0.1:9/x', b64: false, crit: ['b64'] } }))
  t.equal(header.body.code, 'header_invalid', 'unencoded payload option (crit b64) refused')
  t.same(outbound, [])
})

t.test('claims in the answer are the claim set as sent, whatever the names and values', async (t) => {
  // The claim set is serialized whole (one JSON.stringify, src/http/schemas.ts): names that mean something to
  // JavaScript or to JSON.stringify, escapes and nesting must come back as the provider wrote them.
  const text = JSON.stringify(idTokenClaims(ISS, AUD)).replace(/^\{/, '{"__proto__":{"admin":true},"toJSON":"not a function","constructor":"x",' +
    '"nested":{"deep":[1,{"x":null},[true,false]],"empty":{}},"odd \\"name\\"\\n":"line\\u2028sep","unicode":"ünï ✓ \\ud83d\\ude00","big":1e21,"neg":-0.5,')
  const payload = JSON.parse(text) as Record<string, unknown>
  const token = mint(es, payload)
  const expected = JSON.parse(text) as unknown
  // First verification (in full), second (in full, admitted to the cache), third (a hit: the rendered answer).
  for (const pass of ['in full', 'admitted', 'from the cache']) {
    const res = await app.inject({ method: 'POST', url: '/verify', payload: { token } })
    t.equal(res.statusCode, 200, pass)
    const claims = (JSON.parse(res.body) as { claims: unknown }).claims
    t.same(claims, expected, `${pass}: the same claims`)
    t.ok(Object.prototype.hasOwnProperty.call(claims, '__proto__'), `${pass}: __proto__ stays an ordinary claim`)
    t.equal((claims as Record<string, unknown>).toJSON, 'not a function')
  }
  t.equal(({} as Record<string, unknown>).admin, undefined, 'no prototype pollution')
})

t.test('a route with a method it does not take: 405 method_not_allowed with Allow; an unknown path: 404', async (t) => {
  for (const [method, url, allow] of [['GET', '/verify', 'POST'], ['PUT', '/verify?x=1', 'POST'], ['OPTIONS', '/verify/batch', 'POST'], ['GET', '/introspect', 'POST'], ['DELETE', '/healthz', 'GET, HEAD']] as const) {
    const res = await app.inject({ method, url })
    t.same([res.statusCode, res.json().code, res.headers.allow], [405, 'method_not_allowed', allow], `${method} ${url}`)
    t.equal(res.json().requestId, res.headers['x-request-id'], `${method} ${url}: the error shape`)
  }
  const encoded = await app.inject({ method: 'GET', url: '/verif%79' })
  t.same([encoded.statusCode, encoded.headers.allow], [405, 'POST'], 'a path as the router reads it: /verif%79 is /verify')
  for (const url of ['/nope', '/verify/', '/Verify', '/verify/batch/x']) {
    const res = await app.inject({ method: 'GET', url })
    t.same([res.statusCode, res.json().code, res.headers.allow], [404, 'not_found', undefined], url)
  }
  const forward = await app.inject({ method: 'DELETE', url: '/forward-auth' })
  t.equal(forward.statusCode, 401, 'forward-auth takes every method')
})

t.test('identities are not stored by caches (Cache-Control: no-store), new or served from the cache', async (t) => {
  const token = mint(es, idTokenClaims(ISS, AUD))
  for (const attempt of ['first', 'second', 'third (a cache hit)']) {
    const res = await verify(token)
    t.equal(res.status, 200, attempt)
    t.equal(res.headers['cache-control'], 'no-store', attempt)
  }
  const header = await app.inject({ method: 'POST', url: '/verify', headers: { authorization: `Bearer ${token}` } })
  t.equal(header.headers['cache-control'], 'no-store', 'a token in Authorization')
})
