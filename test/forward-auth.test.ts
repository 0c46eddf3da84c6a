/**
 * The forward-auth endpoint through inject(): identity headers and their encoding, token sources, the
 * status rules (only 200, 401, 403 and the configured "cannot decide" answer, whatever the request), query
 * and configured requirements, rules matched on the original request, and hostile input.
 */
import t from 'tap'
import { Writable } from 'node:stream'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { loggerOptions } from '../src/logger.js'
import type { AddressInfo } from 'node:net'
import { configFor } from './helpers/config.js'
import { rawExchange } from './helpers/raw-http.js'
import { MAX_PATH_SEGMENTS, MAX_READING_LENGTH, MAX_READINGS } from '../src/http/original-request.js'
import { b64, idTokenClaims, jwksOf, makeKey, mint, tamperPayload } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const ISS2 = 'https://other.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')
const key2 = makeKey('RS256')
const issuers = [
  { id: 'main', issuer: ISS, audiences: [AUD, 'client-b'], jwks: jwksOf(key), claimMapping: { tenant: 'tid' } },
  { id: 'other', issuer: ISS2, audiences: ['client-c'], jwks: jwksOf(key2) }
]

const good = (extra: Record<string, unknown> = {}): string => mint(key, idTokenClaims(ISS, AUD, { groups: ['admins', 'staff'], roles: ['editor'], tid: 't-1', ...extra }))
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

const ALLOWED = new Set([200, 401, 403])

const app = await buildApp(configFor(issuers, { rateLimit: { max: 1, windowSeconds: 60 } }))
t.teardown(() => app.close())

t.test('a good token: 200, every identity header, encoded, no body, not cacheable', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/forward-auth', headers: bearer(good()) })
  t.equal(res.statusCode, 200)
  t.equal(res.body, '')
  t.equal(res.headers['cache-control'], 'no-store')
  t.match(res.headers, {
    'x-auth-subject': 'user-123',
    'x-auth-user-key': 'user-123',
    'x-auth-issuer': ISS,
    'x-auth-issuer-id': 'main',
    'x-auth-email': 'user@example.com',
    'x-auth-email-verified': 'true',
    'x-auth-name': 'Ada Lovelace',
    'x-auth-groups': 'admins,staff',
    'x-auth-groups-overage': 'false',
    'x-auth-roles': 'editor',
    'x-auth-tenant': 't-1',
    'x-auth-identity': ''
  })
  t.notOk(res.headers['x-envoy-auth-headers-to-remove'], 'stripping is off by default')
})

t.test('a lone surrogate never reaches a header as U+FFFD, where it would equal another user\'s value', async (t) => {
  const lone = 'bob\ud800'
  const subject = await app.inject({ method: 'GET', url: '/forward-auth', headers: bearer(good({ sub: lone })) })
  t.same([subject.statusCode, subject.headers['x-auth-subject']], [401, undefined], 'in sub: claim_invalid')
  t.match(String(subject.headers['www-authenticate']), /claim_invalid/)
  const profile = await app.inject({ method: 'GET', url: '/forward-auth', headers: bearer(good({ email: lone, name: lone, groups: ['admins', lone], tid: lone })) })
  t.equal(profile.statusCode, 200)
  t.match(profile.headers, { 'x-auth-email': '', 'x-auth-email-verified': 'false', 'x-auth-name': '', 'x-auth-groups': 'admins', 'x-auth-tenant': '' }, 'elsewhere: absent')
  const real = await app.inject({ method: 'GET', url: '/forward-auth', headers: bearer(good({ sub: 'bob\ufffd', name: 'Zoë 😀' })) })
  t.match(real.headers, { 'x-auth-subject': 'bob%EF%BF%BD', 'x-auth-name': 'Zo%C3%AB %F0%9F%98%80' }, 'a real U+FFFD and a surrogate pair are text')
})

t.test('a groups overage says so, and the user key is the issuer\'s stable one', async (t) => {
  const entra = await buildApp(configFor([{ id: 'entra', issuer: ISS, audiences: [AUD], jwks: jwksOf(key), userKeyClaims: ['tid', 'oid'], claimMapping: { tenant: 'tid' } }]))
  t.teardown(() => entra.close())
  const claims = { sub: 'pairwise-sub', tid: 't-9', oid: 'o-7', _claim_names: { groups: 'src1' }, _claim_sources: { src1: { endpoint: 'https://graph.microsoft.com/v1.0/users/o-7/getMemberObjects' } } }
  const res = await entra.inject({ method: 'GET', url: '/forward-auth', headers: { ...bearer(mint(key, idTokenClaims(ISS, AUD, claims))), 'x-auth-groups-overage': 'false', 'x-auth-user-key': 'forged' } })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-auth-groups'], '', 'no groups in the token')
  t.equal(res.headers['x-auth-groups-overage'], 'true', 'and the app is told they were left out')
  t.equal(res.headers['x-auth-subject'], 'pairwise-sub')
  t.equal(res.headers['x-auth-user-key'], 't-9:o-7')
  const flagged = await entra.inject({ method: 'GET', url: '/forward-auth', headers: bearer(mint(key, idTokenClaims(ISS, AUD, { ...claims, _claim_names: undefined, hasgroups: true }))) })
  t.equal(flagged.headers['x-auth-groups-overage'], 'true', 'Entra\'s hasgroups flag too')
})

t.test('every method is answered on its own merits, QUERY (which must carry a Content-Type) included', async (t) => {
  for (const url of ['/forward-auth', '/forward-auth/envoy/x']) {
    for (const headers of [{}, { 'content-type': 'text/plain' }, { 'content-type': 'not a media type' }]) {
      const res = await app.inject({ method: 'QUERY', url, headers: { ...bearer(good()), ...headers }, payload: 'q=1' })
      t.equal(res.statusCode, 200, `QUERY ${url} ${JSON.stringify(headers)}`)
      t.equal(res.headers['x-auth-subject'], 'user-123')
    }
    const denied = await app.inject({ method: 'QUERY', url, headers: { 'content-type': 'text/plain' }, payload: 'q=1' })
    t.same([denied.statusCode, denied.json().code], [401, 'token_missing'], `QUERY ${url} without a token`)
  }
})

t.test('absent values are set empty, so a client\'s own copy can never pass', async (t) => {
  const token = mint(key, idTokenClaims(ISS, AUD, { email: undefined, email_verified: undefined, name: undefined }))
  const res = await app.inject({
    method: 'GET',
    url: '/forward-auth',
    headers: { ...bearer(token), 'x-auth-groups': 'admins', 'x-auth-email': 'ceo@example.com', 'x-auth-subject': 'root' }
  })
  t.equal(res.statusCode, 200)
  for (const name of ['x-auth-email', 'x-auth-name', 'x-auth-groups', 'x-auth-roles', 'x-auth-tenant', 'x-auth-identity']) {
    t.equal(res.headers[name], '', `${name} is present and empty`)
  }
  t.equal(res.headers['x-auth-email-verified'], 'false')
  t.equal(res.headers['x-auth-subject'], 'user-123')
})

t.test('multi-value and non-ASCII values are percent-encoded and decode back exactly', async (t) => {
  const groups = ['cn=admins,ou=groups', '100%', ' padded ', 'Zoë', '李雷', '', 'a\r\nX-Injected: 1']
  const token = mint(key, idTokenClaims(ISS, AUD, { groups, name: ' 李雷 Zoë, Jr. ', sub: 'ü/1,2' }))
  const res = await app.inject({ method: 'GET', url: '/forward-auth', headers: bearer(token) })
  t.equal(res.statusCode, 200)
  const raw = String(res.headers['x-auth-groups'])
  t.match(raw, /^[\x20-\x7e]*$/, 'printable ASCII only')
  t.notOk(raw.split(',').some((g) => g.startsWith(' ') || g.endsWith(' ')), 'no member starts or ends with a space')
  t.same(raw.split(',').map(decodeURIComponent), groups.filter((g) => g !== ''), 'empty members left out, the rest decode exactly')
  t.equal(decodeURIComponent(String(res.headers['x-auth-name'])), ' 李雷 Zoë, Jr. ')
  t.notMatch(String(res.headers['x-auth-name']), /^ | $/, 'no leading or trailing space')
  t.equal(decodeURIComponent(String(res.headers['x-auth-subject'])), 'ü/1,2')
  t.notOk(res.headers['x-injected'], 'no header injection')
})

t.test('the identity header carries the normalized identity without claims', async (t) => {
  const withIdentity = await buildApp(configFor(issuers, { forwardAuth: { identityHeader: true, headerPrefix: 'x-user-', headerNames: { subject: 'x-remote-user' } } }))
  t.teardown(() => withIdentity.close())
  const res = await withIdentity.inject({ method: 'GET', url: '/forward-auth', headers: bearer(good({ secret_claim: 'do-not-forward' })) })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['x-remote-user'], 'user-123', 'a configured name')
  t.equal(res.headers['x-user-email'], 'user@example.com', 'the configured prefix')
  t.notOk(res.headers['x-auth-subject'])
  const identity = JSON.parse(Buffer.from(String(res.headers['x-user-identity']), 'base64url').toString('utf8'))
  t.match(identity, { subject: 'user-123', issuer: { id: 'main', url: ISS }, groups: ['admins', 'staff'], tenant: 't-1' })
  t.notOk('claims' in identity)
  t.notMatch(String(res.headers['x-user-identity']), /[+/=]/, 'base64url without padding')
})

t.test('missing and bad tokens: 401 with WWW-Authenticate, never anything else', async (t) => {
  const cases: Array<{ name: string, headers: Record<string, string>, code: string, www: RegExp }> = [
    { name: 'no token', headers: {}, code: 'token_missing', www: /^Bearer$/ },
    { name: 'Basic is not a token', headers: { authorization: 'Basic YTpi' }, code: 'token_missing', www: /^Bearer$/ },
    // RFC 6750 §3.1: a token carried wrongly is invalid_request; the bare challenge only for no token at all.
    { name: 'empty Bearer', headers: { authorization: 'Bearer ' }, code: 'request_invalid', www: /^Bearer error="invalid_request", error_description="request_invalid"$/ },
    { name: 'Bearer with junk', headers: { authorization: 'Bearer a b c' }, code: 'request_invalid', www: /^Bearer error="invalid_request", error_description="request_invalid"$/ },
    { name: 'garbage', headers: bearer('garbage'), code: 'token_malformed', www: /invalid_token/ },
    { name: 'expired', headers: bearer(good({ exp: 1000, iat: 900 })), code: 'token_expired', www: /error_description="token_expired"/ },
    { name: 'tampered', headers: bearer(tamperPayload(good(), idTokenClaims(ISS, AUD, { groups: ['admins'], sub: 'root' }))), code: 'signature_invalid', www: /invalid_token/ },
    { name: 'unknown issuer', headers: bearer(mint(key, idTokenClaims('https://evil.example.com', AUD))), code: 'issuer_unknown', www: /invalid_token/ },
    { name: 'other audience', headers: bearer(mint(key, idTokenClaims(ISS, 'someone-else'))), code: 'audience_mismatch', www: /invalid_token/ },
    { name: 'alg none', headers: bearer(`${b64({ alg: 'none' })}.${b64(idTokenClaims(ISS, AUD))}.c2ln`), code: 'algorithm_not_allowed', www: /invalid_token/ },
    { name: 'huge', headers: bearer('a'.repeat(17000) + '.b.c'), code: 'token_too_large', www: /invalid_token/ }
  ]
  for (const c of cases) {
    const res = await app.inject({ method: 'GET', url: '/forward-auth', headers: c.headers })
    t.equal(res.statusCode, 401, c.name)
    t.equal(res.json().code, c.code, c.name)
    t.match(String(res.headers['www-authenticate']), c.www, c.name)
    t.notOk(res.headers['x-auth-subject'], `${c.name}: no identity`)
  }
})

t.test('requirements on the auth URL: 403 for a good token that fails one, any-of within a parameter', async (t) => {
  const token = good()
  const cases: Array<[string, number, string?]> = [
    ['?group=admins', 200],
    ['?group=nope', 403, 'groups'],
    ['?group=nope&group=staff', 200],
    ['?group=admins&role=editor', 200],
    ['?group=admins&role=owner', 403, 'roles'],
    ['?role=editor&role=owner', 200],
    ['?audience=client-a', 200],
    ['?audience=client-b', 403, 'aud'],
    ['?issuer=main', 200],
    ['?issuer=other', 403, 'iss'],
    ['?issuer=other&issuer=main', 200],
    ['?group=cn%3Dadmins%2Cou%3Dx', 403, 'groups']
  ]
  for (const [query, status, claim] of cases) {
    const res = await app.inject({ method: 'GET', url: `/forward-auth${query}`, headers: bearer(token) })
    t.equal(res.statusCode, status, query)
    if (status === 403) {
      t.equal(res.json().code, 'requirement_not_met', query)
      t.equal(res.json().claim, claim, query)
      t.equal(res.headers['www-authenticate'], 'Bearer error="insufficient_scope"')
      t.notOk(res.headers['x-auth-subject'])
    }
  }
  const noToken = await app.inject({ method: 'GET', url: '/forward-auth?group=admins' })
  t.equal(noToken.statusCode, 401, 'a missing token is 401 even where a group is required')
  // A token issued to client-b (azp) that lists client-a too is client-b's: it does not meet audience=client-a.
  const forB = good({ aud: ['client-b', AUD], azp: 'client-b' })
  const asA = await app.inject({ method: 'GET', url: '/forward-auth?audience=client-a', headers: bearer(forB) })
  t.same([asA.statusCode, asA.json().code, asA.json().claim], [403, 'requirement_not_met', 'azp'], 'another client\'s token, listing ours')
  t.equal((await app.inject({ method: 'GET', url: '/forward-auth?audience=client-b', headers: bearer(forB) })).statusCode, 200, 'its own client')
  t.equal((await app.inject({ method: 'GET', url: '/forward-auth?audience=client-a&audience=client-b', headers: bearer(forB) })).statusCode, 200, 'any of them')
  t.equal((await app.inject({ method: 'GET', url: '/forward-auth', headers: bearer(forB) })).statusCode, 200, 'no audience required')
})

t.test('a mistake in the auth URL denies every request with 403 requirement_invalid (fail closed, never 400)', async (t) => {
  const lines: string[] = []
  const logger = pino(loggerOptions('info'), new Writable({ write (chunk, _e, cb) { lines.push(String(chunk)); cb() } }))
  const logged = await buildApp(configFor(issuers), { loggerInstance: logger })
  t.teardown(() => logged.close())
  const token = good()
  for (const query of [
    '?groups=admins', '?token=' + token, '?id_token=x', '?group=', '?group', '?issuer=nope', '?audience=not-configured',
    '?' + Array.from({ length: 70 }, (_, i) => `group=g${i}`).join('&'), `?group=${'x'.repeat(1025)}`, '?%zz=1', '?__proto__=x'
  ]) {
    for (const headers of [bearer(token), {}]) {
      const res = await logged.inject({ method: 'GET', url: `/forward-auth${query}`, headers })
      t.equal(res.statusCode, 403, query.slice(0, 40))
      t.equal(res.json().code, 'requirement_invalid', query.slice(0, 40))
    }
  }
  const errors = lines.filter((l) => l.includes('invalid requirement')).map((l) => JSON.parse(l))
  t.ok(errors.length > 0, 'logged loudly')
  t.equal(errors[0].parameter, 'groups', 'names the parameter')
  t.notOk(lines.some((l) => l.includes(token)), 'never the token, even when it is in the query')
})

t.test('every method, any body, any content type, any path under the prefix: never 400/404/413/415/429', async (t) => {
  const token = good()
  const requests = [
    { method: 'HEAD', url: '/forward-auth' },
    { method: 'POST', url: '/forward-auth', payload: '{not json', headers: { 'content-type': 'application/json' } },
    { method: 'PUT', url: '/forward-auth', payload: 'x'.repeat(200_000), headers: { 'content-type': 'application/octet-stream' } },
    { method: 'PATCH', url: '/forward-auth', payload: 'a=1', headers: { 'content-type': ';;;' } },
    { method: 'DELETE', url: '/forward-auth', payload: 'x', headers: { 'content-type': 'text/plain' } },
    { method: 'OPTIONS', url: '/forward-auth' },
    { method: 'PROPFIND', url: '/forward-auth/envoy/dav/x' },
    { method: 'GET', url: '/forward-auth/envoy' },
    { method: 'GET', url: '/forward-auth/' },
    { method: 'GET', url: '/forward-auth/' + 'a/'.repeat(2000) },
    { method: 'GET', url: '/forward-auth/a%2Fb/%E4%B8%AD' },
    { method: 'GET', url: '/forward-auth/envoy/a%2Fb/%E4%B8%AD?x=%zz' }
  ] as const
  for (const r of requests) {
    for (const auth of [bearer(token), {}]) {
      const res = await app.inject({ method: r.method, url: r.url, payload: 'payload' in r ? r.payload : undefined, headers: { ...('headers' in r ? r.headers : {}), ...auth } })
      t.equal(res.statusCode, 'authorization' in auth ? 200 : 401, `${r.method} ${r.url.slice(0, 30)}`)
    }
  }
  // The rate limit (max 1 here) never applies: a 429 would be a 500 in nginx.
  for (let i = 0; i < 5; i++) {
    t.equal((await app.inject({ method: 'GET', url: '/forward-auth', headers: bearer(token) })).statusCode, 200)
  }
  // (Under /forward-auth/envoy/ the path is the app's, never malformed for us: forward-auth-envoy-raw-path.test.ts.)
  for (const url of ['/forward-auth/%zz', '/forward-auth/%E4%B8', '/forward-auth/%']) {
    const res = await app.inject({ method: 'GET', url, headers: bearer(token) })
    t.ok(ALLOWED.has(res.statusCode), `${url}: ${res.statusCode}`)
    t.equal(res.statusCode, 401, 'a malformed URL is denied')
    t.equal(res.json().code, 'request_invalid')
  }
  const bad = await app.inject({ method: 'GET', url: '/verify/%zz' })
  t.equal(bad.json().code, 'request_invalid', 'elsewhere too, the one error shape')
  t.equal(bad.statusCode, 400)
})

t.test('token from a configured cookie or header; two different tokens are ambiguous', async (t) => {
  const fa = await buildApp(configFor(issuers, { forwardAuth: { tokenCookie: 'id_token', tokenHeader: 'X-Id-Token', stripToken: true } }))
  t.teardown(() => fa.close())
  const token = good()
  const other = mint(key, idTokenClaims(ISS, AUD, { sub: 'mallory' }))
  const ok = async (headers: Record<string, string>, strip: string | undefined): Promise<void> => {
    const res = await fa.inject({ method: 'GET', url: '/forward-auth', headers })
    t.equal(res.statusCode, 200, JSON.stringify(Object.keys(headers)))
    t.equal(res.headers['x-envoy-auth-headers-to-remove'], strip)
  }
  await ok({ cookie: `theme=dark; id_token=${token}; other=1` }, undefined)
  await ok({ cookie: `id_token="${token}"` }, undefined)
  await ok({ 'x-id-token': token }, 'x-id-token')
  await ok(bearer(token), 'authorization')
  await ok({ ...bearer(token), 'x-id-token': token, cookie: `id_token=${token}` }, 'authorization, x-id-token')
  for (const headers of [
    { ...bearer(token), cookie: `id_token=${other}` },
    { 'x-id-token': token, cookie: `id_token=${other}` },
    { cookie: `id_token=${token}; id_token=${other}` }
  ]) {
    const res = await fa.inject({ method: 'GET', url: '/forward-auth', headers })
    t.equal(res.statusCode, 401)
    t.equal(res.json().code, 'token_ambiguous')
    t.equal(res.headers['www-authenticate'], 'Bearer error="invalid_request", error_description="token_ambiguous"', 'a token sent two ways: invalid_request (RFC 6750 §3.1)')
  }
  const wrongCookie = await fa.inject({ method: 'GET', url: '/forward-auth', headers: { cookie: `ID_TOKEN=${token}; id_token_x=${token}` } })
  t.equal(wrongCookie.json().code, 'token_missing', 'cookie names are exact')

  // Node keeps the first of several Authorization lines and joins the token header's: the app behind the
  // proxy could read the token we did not verify. inject() passes an array as repeated header lines.
  for (const [name, headers] of [
    ['two Authorization lines', { authorization: [`Bearer ${token}`, `Bearer ${other}`] }],
    ['the same token twice', { authorization: [`Bearer ${token}`, `Bearer ${token}`] }],
    ['Basic, then Bearer', { authorization: ['Basic YTpi', `Bearer ${token}`] }],
    ['two token header lines', { 'x-id-token': [token, other] }]
  ] as Array<[string, Record<string, string | string[]>]>) {
    const res = await fa.inject({ method: 'GET', url: '/forward-auth', headers: headers as Record<string, string> })
    t.equal(res.statusCode, 401, name)
    t.equal(res.json().code, 'token_ambiguous', name)
  }
})

t.test('repeated Authorization lines on a real connection: 401 token_ambiguous', async (t) => {
  const fa = await buildApp(configFor(issuers, { forwardAuth: { tokenHeader: 'x-id-token' } }))
  t.teardown(() => fa.close())
  await fa.listen({ host: '127.0.0.1', port: 0 })
  const port = (fa.server.address() as AddressInfo).port
  const token = good()
  const other = mint(key, idTokenClaims(ISS, AUD, { sub: 'mallory' }))
  const ask = async (lines: string[]) => await rawExchange(port, `GET /forward-auth HTTP/1.1\r\nHost: app\r\n${lines.map((l) => `${l}\r\n`).join('')}Connection: close\r\n\r\n`)
  t.equal((await ask([`Authorization: Bearer ${token}`])).status, 200, 'one line is fine')
  for (const lines of [
    [`Authorization: Bearer ${token}`, `authorization: Bearer ${other}`],
    [`X-Id-Token: ${token}`, `X-Id-Token: ${other}`]
  ]) {
    const res = await ask(lines)
    t.equal(res.status, 401)
    t.equal(JSON.parse(res.body).code, 'token_ambiguous')
    t.match(res.headers['www-authenticate'], /^Bearer/)
    t.notOk(res.headers['x-auth-subject'], 'no identity')
  }
})

t.test('configured requirements and per-route rules on the original request', async (t) => {
  const fa = await buildApp(configFor(issuers, {
    forwardAuth: {
      require: { issuers: ['main'] },
      rules: [
        { pathPrefix: '/admin', require: { groups: ['root'] } },
        { methods: ['DELETE'], require: { roles: ['owner'] } },
        { hosts: ['billing.example.com'], require: { audiences: ['client-b'] } }
      ]
    }
  }))
  t.teardown(() => fa.close())
  const token = good()
  const check = async (headers: Record<string, string>, status: number, what: string, url = '/forward-auth'): Promise<void> => {
    const res = await fa.inject({ method: 'GET', url, headers: { ...bearer(token), ...headers } })
    t.equal(res.statusCode, status, what)
  }
  const traefik = (uri: string, extra: Record<string, string> = {}): Record<string, string> =>
    ({ 'x-forwarded-method': 'GET', 'x-forwarded-host': 'app.example.com', 'x-forwarded-uri': uri, ...extra })
  await check(traefik('/public/page'), 200, 'no rule applies')
  await check(traefik('/admin/users'), 403, 'path rule')
  await check(traefik('/administrator'), 403, 'a plain prefix: also /administrator')
  for (const evasion of ['/ADMIN', '//admin', '/x/../admin', '/%61dmin', '/%2561dmin', '/./admin', '/public/..%2Fadmin', '/admin;jsessionid=1', '/;x/admin', '\\admin']) {
    await check(traefik(evasion), 403, `evasion ${evasion}`)
  }
  await check(traefik('/public', { 'x-original-uri': '/admin' }), 403, 'any reading that matches applies the rule')
  await check({ 'x-original-uri': '/public', 'x-forwarded-uri': '/admin/x' }, 403, 'a client cannot hide the path behind another header')
  await check({ 'x-forwarded-method': 'GET', 'x-forwarded-host': 'app.example.com' }, 403, 'no path known: path rules apply (fail closed)')
  await check(traefik('/x', { 'x-forwarded-method': 'DELETE' }), 403, 'method rule')
  await check(traefik('/x', { 'x-forwarded-host': 'billing.example.com:8443' }), 403, 'host rule, port ignored')
  await check(traefik('/x', { 'x-forwarded-host': 'BILLING.example.com.' }), 403, 'host rule, case and trailing dot ignored')
  await check({ 'x-original-url': 'https://billing.example.com/x', 'x-original-method': 'GET' }, 403, 'X-Original-URL gives host and path')
  const otherToken = mint(key2, idTokenClaims(ISS2, 'client-c'))
  const res = await fa.inject({ method: 'GET', url: '/forward-auth', headers: { ...bearer(otherToken), ...traefik('/x') } })
  t.equal(res.statusCode, 403, 'forwardAuth.require applies to every request')
  t.equal(res.json().claim, 'iss')

  // What a WHATWG URL parser (new URL(req.url, base) in Node, most frameworks) reads as /admin/users: "//host/path".
  for (const authority of ['//evil.example/admin/users', '/\\evil.example/admin/users', '///evil.example/../admin', '//evil.example/%61dmin']) {
    await check(traefik(authority), 403, `authority-form path ${authority}`)
  }
  // An authority a WHATWG parser refuses is still one to Python's urlsplit and Go's url.Parse: the path follows it.
  for (const authority of ['//x:99999/admin/users', '//v1.2/admin/users', '//1.2.3.256/admin/users', '/\\x:99999/admin']) {
    await check(traefik(authority), 403, `a path after an authority no WHATWG parser takes: ${authority}`)
  }
  for (const odd of ['//', '//?page=2', '//v1.2/items', '/public/export?files=' + Array.from({ length: 40 }, (_, i) => `/docs/f${i}.pdf`).join(',')]) {
    await check(traefik(odd), 200, `an ordinary path, oddly written: ${odd.slice(0, 40)}`)
  }
  // A reading that cannot be read in full makes its dimension unknown, so that a client cannot choose what is left.
  await check(traefik(`/admin/secret?pad=${'A'.repeat(MAX_READING_LENGTH + 1)},/public`), 403, 'a long query is not read: the path before it still is')
  await check(traefik(`/${'a'.repeat(MAX_READING_LENGTH + 1)},/public`), 403, 'a path longer than the reading limit: path unknown')
  await check(traefik('/public', { 'x-forwarded-host': `${'h'.repeat(MAX_READING_LENGTH + 1)}, app.example.com` }), 403, 'a host longer than the reading limit: hosts unknown, the host rule applies')
  const paths = (n: number): string => Array.from({ length: n }, (_, i) => `/p${i}`).join(', ')
  await check(traefik(paths(MAX_READINGS)), 403, `more than ${MAX_READINGS} distinct path readings (the value and its pieces): path unknown`)
  await check(traefik(paths(MAX_READINGS - 1)), 200, `${MAX_READINGS} are read: the value and its ${MAX_READINGS - 1} pieces`)
  await check(traefik(`/public?ids=${Array.from({ length: 500 }, (_, i) => i).join(',')}`), 200, 'commas in the query are not paths')
  const pieces = (make: (i: number) => string): string => Array.from({ length: 1500 }, (_, i) => make(i)).join(', ')
  const nginxLike = (url: string): Record<string, string> => ({ 'x-original-url': url, 'x-original-method': 'GET', 'x-forwarded-host': 'app.example.com' })
  await check(nginxLike(pieces((i) => `/a${i}`)), 403, 'thousands of distinct paths in X-Original-URL: path unknown')
  await check(nginxLike(Array(MAX_PATH_SEGMENTS).fill('/a').join(', ')), 200, 'copies of one path: one reading')
  // The whole value is a reading too: more than MAX_PATH_SEGMENTS segments in it make the path unknown.
  await check(nginxLike(pieces(() => '/a')), 403, 'thousands of copies of one path: path unknown')
  await check(traefik(`/public/${'a/'.repeat(MAX_PATH_SEGMENTS)}`), 403, `more than ${MAX_PATH_SEGMENTS} segments: path unknown`)
  await check(traefik(`/public/${'a/'.repeat(MAX_PATH_SEGMENTS - 2)}`), 200, `${MAX_PATH_SEGMENTS} segments are read`)
  await check(traefik(`/public/${'%2e/a%2F'.repeat(MAX_PATH_SEGMENTS / 2)}`), 403, 'segments counted once decoded too')
  const half = `/public/${'p'.repeat(MAX_READING_LENGTH / 2 - 8)}`
  await check({ ...traefik(half), 'x-original-uri': half }, 200, 'the same long path in two headers: one reading')
  await check({ ...traefik(half), 'x-original-uri': `${half}/x` }, 403, `path readings longer than ${MAX_READING_LENGTH} together: path unknown`)
  await check(nginxLike(pieces(() => 'a')), 200, 'pieces that are no URI are not readings')

  // Envoy: the original path follows the prefix; its query is the app's, not requirements.
  await check({}, 200, 'envoy: public path', '/forward-auth/envoy/public?group=nope&x=1')
  await check({}, 403, 'envoy: admin path', '/forward-auth/envoy/admin/x?y=1')
  await check({}, 403, 'envoy: encoded admin path', '/forward-auth/envoy/%61dmin')
  const del = await fa.inject({ method: 'DELETE', url: '/forward-auth/envoy/x', headers: bearer(token) })
  t.equal(del.statusCode, 403, 'envoy: the method is the request\'s own')
  const host = await fa.inject({ method: 'GET', url: '/forward-auth/envoy/x', headers: { ...bearer(token), host: 'billing.example.com' } })
  t.equal(host.statusCode, 403, 'envoy: the host is the request\'s own')

  // Anything else under the prefix is /forward-auth: a stray "/" must not drop the auth URL's requirements.
  await check(traefik('/public'), 403, 'trailing slash: the query still holds requirements', '/forward-auth/?group=nope')
  await check(traefik('/public'), 403, 'any path: the query still holds requirements', '/forward-auth/x?group=nope')
  await check(traefik('/public'), 200, 'and they can be met', '/forward-auth/?group=admins')
})

t.test('keys unavailable: 401 by default (fail closed), or the configured status', async (t) => {
  const failing = async (): Promise<never> => { throw new Error('IdP down') }
  const down = [{ id: 'down', issuer: ISS, audiences: [AUD], jwksUri: 'https://idp.example.com/jwks' }]
  const token = mint(key, idTokenClaims(ISS, AUD))
  for (const [status, expected] of [[undefined, 401], [401, 401], [403, 403], [503, 503]] as const) {
    const extra = status === undefined ? {} : { forwardAuth: { keysUnavailableStatus: status } }
    const a = await buildApp(configFor(down, extra), { fetcher: failing as never, startVerifier: false })
    const res = await a.inject({ method: 'GET', url: '/forward-auth', headers: bearer(token) })
    t.equal(res.statusCode, expected, `keysUnavailableStatus ${String(status)}`)
    t.equal(res.json().code, 'keys_unavailable')
    if (expected === 401) t.equal(res.headers['www-authenticate'], 'Bearer', 'not "invalid_token": the token may be fine')
    if (expected === 503) t.ok(Number(res.headers['retry-after']) >= 1)
    else t.notOk(res.headers['retry-after'])
    await a.close()
  }
})

t.test('load shedding answers with the configured status too', async (t) => {
  for (const [status, expected] of [[undefined, 401], [403, 403], [503, 503]] as const) {
    const extra = status === undefined ? {} : { forwardAuth: { keysUnavailableStatus: status } }
    const shed = await buildApp(configFor(issuers, { loadShedding: { sampleIntervalMs: 10 }, ...extra }), { pressureHealthCheck: async () => false })
    await shed.ready()
    let res = await shed.inject({ method: 'GET', url: '/forward-auth', headers: bearer(good()) })
    for (let i = 0; i < 100 && res.statusCode === 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      res = await shed.inject({ method: 'GET', url: '/forward-auth', headers: bearer(good()) })
    }
    t.equal(res.statusCode, expected, `keysUnavailableStatus ${String(status)}`)
    t.equal(res.json().code, 'overloaded')
    if (expected === 503) t.ok(Number(res.headers['retry-after']) >= 1, 'Retry-After with a 503')
    else t.notOk(res.headers['retry-after'], 'no Retry-After with a denial')
    await shed.close()
  }
})

t.test('the log line has the original request (no query) and never the token', async (t) => {
  const lines: string[] = []
  const logger = pino(loggerOptions('info'), new Writable({ write (chunk, _e, cb) { lines.push(String(chunk)); cb() } }))
  const logged = await buildApp(configFor(issuers), { loggerInstance: logger })
  t.teardown(() => logged.close())
  const token = good()
  await logged.inject({
    method: 'GET',
    url: '/forward-auth',
    headers: { ...bearer(token), 'x-original-method': 'POST', 'x-forwarded-host': 'app.example.com', 'x-original-uri': '/orders/7?session=s3cr3t' }
  })
  await logged.inject({ method: 'PUT', url: `/forward-auth/envoy/api/x?access_token=${token}`, headers: { host: 'envoy.example.com' } })
  const completed = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request completed')
  t.match(completed[0], { route: '/forward-auth', status: 200, issuer: 'main', original: { method: 'POST', host: 'app.example.com', path: '/orders/7' } })
  t.match(completed[1], { route: '/forward-auth/envoy/*', status: 401, code: 'token_missing', original: { method: 'PUT', host: 'envoy.example.com', path: '/api/x' } })
  const all = lines.join('\n')
  t.notOk(all.includes(token.split('.')[1]!), 'no token')
  t.notOk(all.includes('s3cr3t'), 'no query string')
})

t.test('a token, or a long opaque secret, in the original path or host is not logged', async (t) => {
  const lines: string[] = []
  const logger = pino(loggerOptions('info'), new Writable({ write (chunk, _e, cb) { lines.push(String(chunk)); cb() } }))
  const logged = await buildApp(configFor(issuers), { loggerInstance: logger })
  t.teardown(() => logged.close())
  const token = good()
  const [header, payload, signature] = token.split('.') as [string, string, string]
  const opaque = 'Zk3q9XbT0aLw7Pm2cVn8sRdY4uHe1JgK6oQiBfWtA5zC'
  // Callback and magic-link routes put tokens in the path; a path parameter (;…) is not the query.
  await logged.inject({ method: 'GET', url: '/forward-auth', headers: { 'x-original-uri': `/cb/${token}` } })
  await logged.inject({ method: 'GET', url: `/forward-auth/envoy/login;id_token=${token}`, headers: { host: 'envoy.example.com' } })
  await logged.inject({ method: 'GET', url: '/forward-auth', headers: { 'x-original-uri': `/a/${payload}/b`, 'x-forwarded-host': `${header}.${payload.slice(0, 60)}.example.com` } })
  await logged.inject({ method: 'GET', url: '/forward-auth', headers: { 'x-original-uri': `/reset/${opaque}/done` } })
  await logged.inject({ method: 'GET', url: '/forward-auth', headers: { 'x-original-uri': '/orders/7/items', 'x-forwarded-host': 'app.example.com' } })
  const completed = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request completed')
  t.equal(completed.length, 5)
  const all = lines.join('\n')
  for (const [name, part] of [['header', header], ['payload', payload], ['signature', signature], ['payload, first 40', payload.slice(0, 40)], ['opaque secret', opaque]]) {
    t.notOk(all.includes(part!), `no ${name}`)
  }
  t.match(completed[0], { original: { path: '/cb/[redacted]' } })
  t.match(completed[1], { original: { path: '/login' } })
  t.match(completed[3], { original: { path: '/reset/[redacted]/done' } })
  t.match(completed[4], { original: { host: 'app.example.com', path: '/orders/7/items' } }, 'ordinary paths and hosts are logged as they are')
})

t.test('with caller keys configured, a missing key is 403 (still only 401/403)', async (t) => {
  const { createHash } = await import('node:crypto')
  const sha256 = createHash('sha256').update('k'.repeat(40)).digest('hex')
  const keyed = await buildApp(configFor(issuers, { callers: { keys: [{ id: 'nginx', sha256 }] } }))
  t.teardown(() => keyed.close())
  const missing = await keyed.inject({ method: 'GET', url: '/forward-auth', headers: bearer(good()) })
  t.equal(missing.statusCode, 403)
  t.equal(missing.json().code, 'caller_key_missing')
  const ok = await keyed.inject({ method: 'GET', url: '/forward-auth', headers: { ...bearer(good()), 'x-api-key': 'k'.repeat(40) } })
  t.equal(ok.statusCode, 200)
})
