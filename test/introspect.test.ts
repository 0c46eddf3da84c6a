/**
 * POST /introspect (RFC 7662): the standard answer for good tokens, exactly {"active": false} for any bad
 * one, 503 when we cannot decide, and hostile requests refused with a code.
 */
import t from 'tap'
import { Writable } from 'node:stream'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { loggerOptions } from '../src/logger.js'
import { MAX_FORM_FIELDS, parseForm } from '../src/http/form-body.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint, tamperPayload } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: ISS, audiences: [AUD, 'client-b'], jwks: jwksOf(key) }]

const lines: string[] = []
const logger = pino(loggerOptions('info'), new Writable({ write (chunk, _e, cb) { lines.push(String(chunk)); cb() } }))
const app = await buildApp(configFor(issuers), { loggerInstance: logger })
t.teardown(() => app.close())

const FORM = { 'content-type': 'application/x-www-form-urlencoded' }
const form = (params: Record<string, string>): string => new URLSearchParams(params).toString()
async function introspect (payload: string, headers: Record<string, string> = FORM, url = '/introspect') {
  const res = await app.inject({ method: 'POST', url, payload, headers })
  return { status: res.statusCode, body: res.json(), headers: res.headers }
}

t.test('a good token: active with the standard members and the identity', async (t) => {
  const now = Math.floor(Date.now() / 1000)
  const token = mint(key, idTokenClaims(ISS, AUD, { nbf: now - 5, jti: 'j-1', scope: 'openid email', preferred_username: 'ada', azp: AUD }))
  const res = await introspect(form({ token, token_type_hint: 'id_token' }))
  t.equal(res.status, 200)
  t.equal(res.headers['cache-control'], 'no-store')
  t.match(res.body, { active: true, iss: ISS, sub: 'user-123', aud: AUD, client_id: AUD, username: 'ada', scope: 'openid email', jti: 'j-1', token_type: 'N_A', nbf: now - 5 })
  t.type(res.body.exp, 'number')
  t.type(res.body.iat, 'number')
  t.type(res.body.auth_time, 'number')
  t.match(res.body.identity, { subject: 'user-123', issuer: { id: 'main', url: ISS } })
})

t.test('several audiences: aud is a list, client_id is azp; username falls back to email', async (t) => {
  const token = mint(key, idTokenClaims(ISS, [AUD, 'client-b'], { azp: 'client-b' }))
  const res = await introspect(form({ token }))
  t.same(res.body.aud, [AUD, 'client-b'])
  t.equal(res.body.client_id, 'client-b')
  t.equal(res.body.username, 'user@example.com')
  t.notOk('scope' in res.body)
})

t.test('audience narrows to one client, as on /verify', async (t) => {
  const forA = mint(key, idTokenClaims(ISS, AUD))
  const forB = mint(key, idTokenClaims(ISS, [AUD, 'client-b'], { azp: 'client-b' }))
  t.equal((await introspect(form({ token: forA, audience: AUD }))).body.active, true)
  t.same((await introspect(form({ token: forA, audience: 'client-b' }))).body, { active: false }, 'not in aud')
  t.same((await introspect(form({ token: forB, audience: AUD }))).body, { active: false }, 'issued to client-b (azp), which lists client-a too')
  t.equal((await introspect(form({ token: forB, audience: 'client-b' }))).body.active, true)
  const unknown = await introspect(form({ token: forA, audience: 'not-configured' }))
  t.same([unknown.status, unknown.body.code], [400, 'request_invalid'], 'an audience no issuer has')
})

t.test('any bad token is exactly {"active": false} (RFC 7662 §2.2), with the reason in the log only', async (t) => {
  const good = mint(key, idTokenClaims(ISS, AUD))
  for (const token of [
    'garbage',
    mint(key, idTokenClaims(ISS, AUD, { exp: 1000, iat: 900 })),
    tamperPayload(good, idTokenClaims(ISS, AUD, { sub: 'root' })),
    mint(key, idTokenClaims('https://evil.example.com', AUD)),
    mint(key, idTokenClaims(ISS, 'someone-else')),
    mint(key, idTokenClaims(ISS, AUD), { header: { typ: 'at+jwt' } }),
    'a'.repeat(20000),
    '%zz',
    good + 'x'
  ]) {
    const res = await introspect(form({ token, token_type_hint: 'access_token' }))
    t.equal(res.status, 200)
    t.same(res.body, { active: false })
  }
  const completed = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request completed' && l.route === '/introspect')
  t.ok(completed.some((l) => l.code === 'token_expired'), 'the code is logged')
  t.notOk(lines.join('\n').includes(good.split('.')[1]!), 'never the token')
})

t.test('/verify\'s other checks (nonce, maxAge, accessToken, code) are refused, never silently skipped', async (t) => {
  // A caller moving from /verify, or reading "extension parameters, as on /verify", must not get "active": true
  // for a token whose nonce (or auth_time, at_hash, c_hash) it asked to be checked and that was not.
  const token = mint(key, idTokenClaims(ISS, AUD, { nonce: 'n-good', auth_time: Math.floor(Date.now() / 1000) - 7200 }))
  for (const [name, value] of [['nonce', 'n-other'], ['maxAge', '60'], ['accessToken', 'at'], ['code', 'c']] as const) {
    const res = await introspect(form({ token, [name]: value }))
    t.same([res.status, res.body.code, res.body.active], [400, 'request_invalid', undefined], name)
  }
  t.equal((await introspect(form({ token }))).body.active, true, 'without them: active')
})

t.test('username falls back to the email only when it is verified', async (t) => {
  const unverified = mint(key, idTokenClaims(ISS, AUD, { email: 'ceo@victim.example', email_verified: false }))
  const res = await introspect(form({ token: unverified }))
  t.equal(res.body.active, true)
  t.notOk('username' in res.body, 'an address nobody verified is not a username')
  t.equal(res.body.identity.user.email, 'ceo@victim.example', 'still in the identity, with emailVerified false')
  const named = mint(key, idTokenClaims(ISS, AUD, { email_verified: false, preferred_username: 'ada' }))
  t.equal((await introspect(form({ token: named }))).body.username, 'ada')
})

t.test('other parameters (client credentials of client_secret_post) and Basic client auth are ignored', async (t) => {
  const token = mint(key, idTokenClaims(ISS, AUD))
  const res = await introspect(`client_id=rs&client_secret=s3cr3t&token=${token}&__proto__=x&constructor=y&hasOwnProperty=z`, { ...FORM, authorization: 'Basic cnM6czNjcjN0' })
  t.equal(res.status, 200)
  t.equal(res.body.active, true)
  t.notOk(lines.join('\n').includes('s3cr3t'))
  const charset = await introspect(form({ token }), { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' })
  t.equal(charset.body.active, true, 'a charset parameter is fine')
})

t.test('malformed requests: a code, never a 500', async (t) => {
  const token = mint(key, idTokenClaims(ISS, AUD))
  const cases: Array<[string, string, Record<string, string>, number, string, string?]> = [
    ['no token', form({ token_type_hint: 'id_token' }), FORM, 400, 'token_missing'],
    ['empty token', 'token=', FORM, 400, 'token_missing'],
    ['empty body', '', FORM, 400, 'token_missing'],
    ['token twice', `token=${token}&token=${token}`, FORM, 400, 'request_invalid'],
    ['hint twice', `token=${token}&token_type_hint=a&token_type_hint=b`, FORM, 400, 'request_invalid'],
    ['JSON', JSON.stringify({ token }), { 'content-type': 'application/json' }, 415, 'unsupported_media_type'],
    ['text', `token=${token}`, { 'content-type': 'text/plain' }, 415, 'unsupported_media_type'],
    ['multipart', '--x\r\n', { 'content-type': 'multipart/form-data; boundary=x' }, 415, 'unsupported_media_type'],
    ['too large', 'token=' + 'a'.repeat(70000), FORM, 413, 'request_too_large'],
    ['token in the query', form({ token }), FORM, 400, 'token_in_query', `/introspect?token=${token}`]
  ]
  for (const [name, payload, headers, status, code, url] of cases) {
    const res = await introspect(payload, headers, url)
    t.equal(res.status, status, name)
    t.equal(res.body.code, code, name)
  }
  const none = await app.inject({ method: 'POST', url: '/introspect' })
  t.equal(none.statusCode, 400, 'no body at all')
  t.equal(none.json().code, 'token_missing')
})

t.test(`a form of more than ${MAX_FORM_FIELDS} parameters is refused before it is parsed`, async (t) => {
  const token = mint(key, idTokenClaims(ISS, AUD))
  const others = (n: number): string => Array.from({ length: n }, (_, i) => `p${i}=1`).join('&')
  const most = await introspect(`token=${token}&${others(MAX_FORM_FIELDS - 1)}`)
  t.same([most.status, most.body.active], [200, true], `${MAX_FORM_FIELDS} parameters: read`)
  const over = await introspect(`token=${token}&${others(MAX_FORM_FIELDS)}`)
  t.same([over.status, over.body.code], [400, 'request_invalid'], 'one more: refused')
  const thousands = await introspect(`token=${token}&${others(6000)}`)
  t.same([thousands.status, thousands.body.code], [400, 'request_invalid'], 'thousands (a body of server.bodyLimit)')
  t.same((await introspect('&'.repeat(60000) + `token=${token}`)).body.code, 'request_invalid', 'empty pieces count too')
  // Refused by counting, without a URLSearchParams made for the body.
  const Original = globalThis.URLSearchParams
  let made = 0
  globalThis.URLSearchParams = class extends Original { constructor (...args: ConstructorParameters<typeof Original>) { made++; super(...args) } }
  t.teardown(() => { globalThis.URLSearchParams = Original })
  t.throws(() => parseForm(others(6000)), { code: 'request_invalid' })
  t.equal(made, 0, 'not parsed')
  t.same(Object.keys(parseForm(others(MAX_FORM_FIELDS))).length, MAX_FORM_FIELDS)
  t.equal(made, 1)
  globalThis.URLSearchParams = Original
})

t.test('keys unavailable: 503 with Retry-After, not "active": false (a client must not log the user out)', async (t) => {
  const failing = async (): Promise<never> => { throw new Error('IdP down') }
  const down = await buildApp(configFor([{ id: 'down', issuer: ISS, audiences: [AUD], jwksUri: 'https://idp.example.com/jwks' }]), { fetcher: failing as never, startVerifier: false })
  t.teardown(() => down.close())
  const res = await down.inject({ method: 'POST', url: '/introspect', payload: form({ token: mint(key, idTokenClaims(ISS, AUD)) }), headers: FORM })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'keys_unavailable')
  t.ok(Number(res.headers['retry-after']) >= 1)
})

t.test('rate limited like /verify', async (t) => {
  const limited = await buildApp(configFor(issuers, { rateLimit: { max: 1, windowSeconds: 60 } }))
  t.teardown(() => limited.close())
  const token = mint(key, idTokenClaims(ISS, AUD))
  t.equal((await limited.inject({ method: 'POST', url: '/introspect', payload: form({ token }), headers: FORM })).statusCode, 200)
  const res = await limited.inject({ method: 'POST', url: '/introspect', payload: form({ token }), headers: FORM })
  t.equal(res.statusCode, 429)
  t.equal(res.json().code, 'rate_limited')
})
