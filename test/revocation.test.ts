/**
 * Revocation in the core: the list (kinds, cut-offs, merging, expiry, its bound), entries from outside checked
 * before use, logout tokens verified by their own rules, and revocations applied on every verification, cache
 * hits included, without looking them up again when nothing changed.
 */
import t from 'tap'
import { Verifier } from '../src/core/verifier.js'
import { BACKCHANNEL_LOGOUT_EVENT } from '../src/core/logout-token-rules.js'
import { RevocationList } from '../src/revocation/revocation-list.js'
import { parseRevocation, revocationOfLogout, type Revocation } from '../src/revocation/revocation.js'
import { revocationOfRequest } from '../src/http/routes/revocations.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint, nowSeconds, tamperPayload } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')
const other = makeKey('ES256')

const NOW = 1_800_000_000

function revocation (over: Partial<Revocation>): Revocation {
  return { issuer: 'main', kind: 'sid', value: 's1', before: null, expiresAt: NOW + 3600, source: 'api', ...over }
}

t.test('the list: each kind covers what it says, and nothing else', async (t) => {
  const list = new RevocationList(100)
  t.equal(list.check('main', { sid: 's1', sub: 'u1', jti: 'j1', iat: NOW }, NOW), undefined, 'empty list')
  list.apply(revocation({ kind: 'sid', value: 's1' }), NOW)
  list.apply(revocation({ kind: 'sub', value: 'u2', before: NOW - 100 }), NOW)
  list.apply(revocation({ kind: 'jti', value: 'j3' }), NOW)
  t.equal(list.check('main', { sid: 's1', sub: 'u9', iat: NOW }, NOW), 'sid')
  t.equal(list.check('main', { sid: 's2', sub: 'u9', iat: NOW }, NOW), undefined, 'another session')
  t.equal(list.check('other', { sid: 's1', iat: NOW }, NOW), undefined, 'the same sid of another issuer')
  t.equal(list.check('main', { sub: 'u2', iat: NOW - 100 }, NOW), 'sub', 'issued at the cut-off')
  t.equal(list.check('main', { sub: 'u2', iat: NOW - 101 }, NOW), 'sub', 'issued before it')
  t.equal(list.check('main', { sub: 'u2', iat: NOW - 99 }, NOW), undefined, 'issued after it: a new login')
  t.equal(list.check('main', { sub: 'u2' }, NOW), 'sub', 'no iat counts as covered (fail closed)')
  t.equal(list.check('main', { jti: 'j3', iat: NOW }, NOW), 'jti')
  t.equal(list.check('main', { sid: 7, sub: ['u2'], jti: null, iat: NOW - 200 }, NOW), undefined, 'values that are not strings match nothing')
  list.apply(revocation({ kind: 'issuer', value: '', before: NOW - 10 }), NOW)
  t.equal(list.check('main', { sub: 'anyone', iat: NOW - 10 }, NOW), 'issuer')
  t.equal(list.check('main', { sub: 'anyone', iat: NOW - 9 }, NOW), undefined)
  t.equal(list.size, 4)
  t.same(list.countByIssuer(), new Map([['main', 4]]))
})

t.test('the list: merging keeps the later cut-off and expiry; generation moves only on a change', async (t) => {
  const list = new RevocationList(100)
  const g0 = list.generation
  t.equal(list.apply(revocation({ kind: 'sub', value: 'u', before: NOW - 50, expiresAt: NOW + 100 }), NOW), 'added')
  const g1 = list.generation
  t.not(g1, g0)
  t.equal(list.apply(revocation({ kind: 'sub', value: 'u', before: NOW - 60, expiresAt: NOW + 50 }), NOW), 'unchanged', 'an earlier cut-off and expiry change nothing')
  t.equal(list.generation, g1)
  t.equal(list.apply(revocation({ kind: 'sub', value: 'u', before: NOW - 10, expiresAt: NOW + 50 }), NOW), 'extended')
  t.not(list.generation, g1)
  t.same(list.get('main', 'sub', 'u', NOW), { ...revocation({ kind: 'sub', value: 'u' }), before: NOW - 10, expiresAt: NOW + 100 })
  t.equal(list.size, 1)
  t.equal(list.apply(revocation({ kind: 'jti', value: 'gone', expiresAt: NOW }), NOW), 'unchanged', 'an already expired revocation is not stored')
})

t.test('the list: expiry, sweep, and a bound that refuses rather than forgets', async (t) => {
  const list = new RevocationList(2)
  list.apply(revocation({ value: 'a', expiresAt: NOW + 10 }), NOW)
  list.apply(revocation({ value: 'b', expiresAt: NOW + 100 }), NOW)
  t.equal(list.apply(revocation({ value: 'c' }), NOW), 'full', 'full: the new one is refused')
  t.equal(list.check('main', { sid: 'a', iat: NOW }, NOW), 'sid', 'and the old ones kept')
  t.equal(list.check('main', { sid: 'a', iat: NOW }, NOW + 10), undefined, 'an expired revocation covers nothing, even before a sweep')
  t.equal(list.apply(revocation({ value: 'c' }), NOW + 10), 'added', 'at the bound, expired ones are swept to make room')
  t.equal(list.size, 2)
  t.equal(list.sweep(NOW + 4000), 2)
  t.equal(list.size, 0)
  t.same([...list.entries()], [])
  t.same(list.countByIssuer(), new Map(), 'an issuer without revocations is forgotten')
})

t.test('the list counts each user\'s revoked sessions, through merges, replacements and sweeps', async (t) => {
  const list = new RevocationList(100)
  const session = (value: string, sub: string | undefined, expiresAt = NOW + 100): Revocation =>
    sub === undefined ? revocation({ value, expiresAt }) : { ...revocation({ value, expiresAt }), sub }
  list.apply(session('s1', 'u1'), NOW)
  list.apply(session('s2', 'u1', NOW + 10), NOW)
  list.apply(session('s3', 'u2'), NOW)
  list.apply(session('s4', undefined), NOW)
  list.apply(revocation({ kind: 'sub', value: 'u1', before: NOW }), NOW)
  t.equal(list.sessionsOf('main', 'u1'), 2)
  t.equal(list.sessionsOf('main', 'u2'), 1)
  t.equal(list.sessionsOf('other', 'u1'), 0, 'per issuer')
  t.equal(list.apply(session('s1', 'u1', NOW + 200), NOW), 'extended')
  t.equal(list.sessionsOf('main', 'u1'), 2, 'an extension is the same session')
  t.equal(list.apply(session('s2', 'u1', NOW + 300), NOW + 20), 'added', 'an expired entry replaced')
  t.equal(list.sessionsOf('main', 'u1'), 2, '… counts once')
  t.equal(list.apply(session('s4', 'u2', NOW + 100), NOW), 'unchanged', 's4, revoked without its user, then with it')
  t.equal(list.sessionsOf('main', 'u2'), 2, '… counts for that user from then on')
  t.equal(list.get('main', 'sid', 's4', NOW)?.sub, 'u2')
  const generation = list.generation
  t.equal(list.apply(session('s4', 'u3', NOW + 100), NOW), 'unchanged', 'a session keeps its first user')
  t.equal(list.sessionsOf('main', 'u3'), 0)
  t.equal(list.generation, generation, 'and the checks have nothing new to look at')
  t.equal(list.sweep(NOW + 250), 3, 's1, s3, s4 expired')
  t.equal(list.sessionsOf('main', 'u1'), 1)
  t.equal(list.sessionsOf('main', 'u2'), 0)
  list.sweep(NOW + 400)
  t.equal(list.sessionsOf('main', 'u1'), 0)
})

t.test('entries from a store or another process are checked member by member', async (t) => {
  const good = revocation({ kind: 'sub', value: 'u', before: NOW })
  t.same(parseRevocation(JSON.parse(JSON.stringify(good))), good)
  t.same(parseRevocation({ ...good, extra: 1 }), good, 'unknown members are ignored')
  const session = { ...revocation({ kind: 'sid', value: 's' }), sub: 'u' }
  t.same(parseRevocation(JSON.parse(JSON.stringify(session))), session, 'a session with its user')
  t.same(parseRevocation({ ...session, sub: null }), revocation({ kind: 'sid', value: 's' }), 'a session whose user is not known')
  t.same(parseRevocation({ ...good, sub: 'u' }), good, 'only sessions have a user: dropped elsewhere')
  const bad: unknown[] = [
    null, 'x', [], 42,
    { ...good, issuer: 'Main' }, { ...good, issuer: 'a\nsub\nb' }, { ...good, issuer: '' },
    { ...good, kind: 'email' }, { ...good, source: 'evil' },
    { ...good, value: 'x'.repeat(256) }, { ...good, value: 7 },
    { ...good, before: null }, { ...good, before: '1' }, { ...good, before: Infinity }, { ...good, before: -1 },
    { ...good, expiresAt: 1e12 }, { ...good, expiresAt: undefined },
    { ...good, kind: 'sid', before: NOW }, { ...good, kind: 'issuer', value: 'x' }, { ...good, kind: 'sid', value: '', before: null },
    { ...session, sub: 7 }, { ...session, sub: '' }, { ...session, sub: 'x'.repeat(256) },
    { ...good, value: 'a\ud800' }, { ...good, value: '\udc00b' }, { ...session, sub: 'u\udbff' },
    JSON.parse('{"__proto__": {"issuer": "main"}}')
  ]
  for (const input of bad) t.equal(parseRevocation(input), undefined, JSON.stringify(input)?.slice(0, 80))
  const astral = { ...revocation({ kind: 'sid', value: 's\ud83d\ude00' }), sub: '\ud83d\ude00' }
  t.same(parseRevocation(JSON.parse(JSON.stringify(astral))), astral, 'a surrogate pair is one character: kept')
})

t.test('what a logout token revokes, and what an operator\'s request does', async (t) => {
  const policy = { retentionSeconds: 3600, maxSessionsPerUser: 3 }
  const held = (sessionsOfUser: number, sessionRevoked = false) => ({ sessionsOfUser, sessionRevoked })
  t.same(revocationOfLogout({ issuer: 'main', sid: 's', sub: 'u', iat: NOW - 5 }, policy, held(2)),
    { issuer: 'main', kind: 'sid', value: 's', before: null, expiresAt: NOW - 5 + 3600, source: 'backchannel-logout', sub: 'u' }, 'sid wins over sub; kept from iat; the user noted')
  t.same(revocationOfLogout({ issuer: 'main', sid: 's', sub: 'u', iat: NOW - 5 }, policy, held(3)),
    { issuer: 'main', kind: 'sub', value: 'u', before: NOW - 5, expiresAt: NOW - 5 + 3600, source: 'backchannel-logout' },
    'from maxSessionsPerUser on, the user\'s tokens up to the logout')
  t.same(revocationOfLogout({ issuer: 'main', sid: 's', sub: 'u', iat: NOW - 5 }, policy, held(3, true)),
    { issuer: 'main', kind: 'sid', value: 's', before: null, expiresAt: NOW - 5 + 3600, source: 'backchannel-logout', sub: 'u' }, 'a session revoked already stays a session: a retry changes nothing')
  t.same(revocationOfLogout({ issuer: 'main', sid: 's', sub: undefined, iat: NOW - 5 }, policy, held(0)),
    { issuer: 'main', kind: 'sid', value: 's', before: null, expiresAt: NOW - 5 + 3600, source: 'backchannel-logout' }, 'a session of a user not named')
  t.same(revocationOfLogout({ issuer: 'main', sid: undefined, sub: 'u', iat: NOW - 5 }, policy, held(5)),
    { issuer: 'main', kind: 'sub', value: 'u', before: NOW - 5, expiresAt: NOW - 5 + 3600, source: 'backchannel-logout' }, 'sub: tokens up to the logout')
  t.throws(() => revocationOfLogout({ issuer: 'main', sid: undefined, sub: undefined, iat: NOW }, policy, held(0)), TypeError)
  const issuers = [{ id: 'main', clockToleranceSeconds: 30 }]
  t.same(revocationOfRequest({ issuer: 'main', sub: 'u' }, issuers, 100, NOW), { issuer: 'main', source: 'api', kind: 'sub', value: 'u', before: NOW + 30, expiresAt: NOW + 130 },
    'before defaults to now plus the issuer\'s clock tolerance (a provider clock ahead of ours)')
  t.same(revocationOfRequest({ issuer: 'main', all: true, before: NOW - 50 }, issuers, 100, NOW), { issuer: 'main', source: 'api', kind: 'issuer', value: '', before: NOW - 50, expiresAt: NOW + 50 })
  t.same(revocationOfRequest({ issuer: 'main', jti: 'j' }, issuers, 100, NOW + 0.7), { issuer: 'main', source: 'api', kind: 'jti', value: 'j', before: null, expiresAt: NOW + 100 })
  const refused: Array<[Parameters<typeof revocationOfRequest>[0], string | undefined]> = [
    [{ issuer: 'nope', sid: 's' }, 'issuer'],
    [{ issuer: 'main' }, undefined],
    [{ issuer: 'main', sid: 's', sub: 'u' }, 'sub'],
    [{ issuer: 'main', sid: 's', before: NOW }, 'before'],
    [{ issuer: 'main', sub: 'u', before: NOW + 3600 }, 'before'],
    [{ issuer: 'main', sub: 'u', before: NOW - 100 }, 'before']
  ]
  for (const [body, claim] of refused) {
    t.throws(() => revocationOfRequest(body, issuers, 100, NOW), { code: 'revocation_invalid', details: claim === undefined ? {} : { claim } }, JSON.stringify(body))
  }
})

function verifierWith (list: RevocationList, now: () => number, events = {}): Verifier {
  const v = new Verifier(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }]), { revocations: list, now, events })
  return v
}

t.test('the Verifier refuses revoked tokens in full and on cache hits, and re-checks only after a change', async (t) => {
  const now = Date.now()
  const list = new RevocationList(100)
  let hits = 0
  const v = verifierWith(list, () => now, { tokenCache: (e: { hit: boolean }) => { if (e.hit) hits++ } })
  t.teardown(() => v.close())
  const s = Math.floor(now / 1000)
  const token = mint(key, idTokenClaims(ISS, AUD, { sid: 'session-1', jti: 'token-1', iat: s - 60 }))
  const otherSession = mint(key, idTokenClaims(ISS, AUD, { sid: 'session-2', iat: s - 60 }))
  for (let i = 0; i < 3; i++) await v.verify(token)
  t.equal(hits, 1, 'the token is cached')

  // The hit path skips the lookup while the list is unchanged: spy on check().
  let lookups = 0
  const check = list.check.bind(list)
  list.check = (...args) => { lookups++; return check(...args) }
  await v.verify(token)
  t.equal(lookups, 0, 'no lookup on a hit while nothing was revoked')

  list.apply(revocation({ kind: 'sid', value: 'session-1', expiresAt: s + 3600 }), s)
  await t.rejects(v.verify(token), { code: 'token_revoked', details: { issuer: 'main', claim: 'sid' } }, 'refused on a hit')
  await t.rejects(v.verify(token), { code: 'token_revoked' }, 'and again')
  t.equal(hits, 2, 'both refusals were cache hits (the revocation check comes after the hit)')
  await v.verify(otherSession)
  await v.verify(otherSession)
  await v.verify(otherSession)
  const before = lookups
  await v.verify(otherSession)
  t.equal(lookups, before, 'a token found not revoked after the change is not looked up again')

  list.apply(revocation({ kind: 'jti', value: 'never-used', expiresAt: s + 3600 }), s)
  await v.verify(otherSession)
  t.equal(lookups, before + 1, 'a new revocation makes the next hit look once')

  // In full: a new token of a revoked user.
  list.apply(revocation({ kind: 'sub', value: 'user-9', before: s - 30, expiresAt: s + 3600 }), s)
  await t.rejects(v.verify(mint(key, idTokenClaims(ISS, AUD, { sub: 'user-9', iat: s - 31 }))), { code: 'token_revoked', details: { claim: 'sub' } })
  await v.verify(mint(key, idTokenClaims(ISS, AUD, { sub: 'user-9', iat: s - 29 })))
  t.pass('a token of the same user issued after the cut-off is accepted')

  // An ID token presented as a logout hint names a session that may have ended: revocation does not apply.
  await v.verify(token, { mode: 'id_token_hint' })
  t.pass('id_token_hint mode ignores revocations')
})

t.test('a revoked token verified as a hint, and cached so, is still refused as an ID token', async (t) => {
  const now = Date.now()
  const s = Math.floor(now / 1000)
  const list = new RevocationList(100)
  const v = verifierWith(list, () => now)
  t.teardown(() => v.close())
  list.apply(revocation({ kind: 'sub', value: 'user-123', before: s, expiresAt: s + 3600 }), s)
  const token = mint(key, idTokenClaims(ISS, AUD, { iat: s - 10 }))
  await t.rejects(v.verify(token), { code: 'token_revoked' })
  for (let i = 0; i < 3; i++) await v.verify(token, { mode: 'id_token_hint' })
  await t.rejects(v.verify(token), { code: 'token_revoked' }, 'the hint\'s cache entry does not vouch for it')
  await t.rejects(v.verify(token), { code: 'token_revoked' }, 'nor on the next hit')
})

t.test('a revoked token is cached as revoked: its retries are refused without a signature check', async (t) => {
  const now = Date.now()
  const s = Math.floor(now / 1000)
  const list = new RevocationList(100)
  let hits = 0
  let misses = 0
  const v = verifierWith(list, () => now, { tokenCache: (e: { hit: boolean }) => { if (e.hit) hits++; else misses++ } })
  t.teardown(() => v.close())
  list.apply(revocation({ kind: 'sub', value: 'user-123', before: s, expiresAt: s + 3600 }), s)
  const token = mint(key, idTokenClaims(ISS, AUD, { iat: s - 10 }))
  for (let i = 0; i < 4; i++) await t.rejects(v.verify(token), { code: 'token_revoked' })
  t.equal(misses, 2, 'verified in full twice (the second admits it), then refused from the cache')
  t.equal(hits, 0, 'a refused hit is not counted as a hit (as for an expired one)')
})

t.test('a list that is not current fails every verification closed', async (t) => {
  const now = Date.now()
  const list = new RevocationList(100, false)
  const v = verifierWith(list, () => now)
  t.teardown(() => v.close())
  const token = mint(key, idTokenClaims(ISS, AUD))
  await t.rejects(v.verify(token), { code: 'revocations_unavailable', status: 503 })
  list.setAvailable(true)
  for (let i = 0; i < 3; i++) await v.verify(token)
  list.setAvailable(false)
  await t.rejects(v.verify(token), { code: 'revocations_unavailable' }, 'a cache hit too')
})

function logoutClaims (extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSeconds()
  return { iss: ISS, aud: AUD, iat: now, exp: now + 120, jti: 'logout-1', sid: 'session-1', sub: 'user-123', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} }, ...extra }
}

t.test('logout tokens: verified with the issuer\'s keys and the logout-token rules', async (t) => {
  const list = new RevocationList(100)
  const v = verifierWith(list, Date.now)
  t.teardown(() => v.close())
  const header = { typ: 'logout+jwt' }
  const good = await v.verifyLogoutToken(mint(key, logoutClaims(), { header }), 300)
  t.same(good, { issuer: 'main', issuers: ['main'], sid: 'session-1', sub: 'user-123', iat: logoutClaims().iat, jti: 'logout-1' })
  const untyped = await v.verifyLogoutToken(mint(key, logoutClaims({ exp: undefined, sid: undefined }), { header: { typ: undefined } }), 300)
  t.same({ sid: untyped.sid, sub: untyped.sub }, { sid: undefined, sub: 'user-123' }, 'untyped, without exp (drafts), sub only')
  const generic = await v.verifyLogoutToken(mint(key, logoutClaims(), { header: { typ: 'JWT' } }), 300)
  t.equal(generic.sid, 'session-1', 'typ JWT, as providers built before explicit typing send (Keycloak before 25)')

  const refused: Array<[string, string, string | undefined]> = [
    ['typed as an access token', mint(key, logoutClaims(), { header: { typ: 'at+jwt' } }), undefined],
    ['typed as something else', mint(key, logoutClaims(), { header: { typ: 'secevent+jwt' } }), undefined],
    ['typ not a string', mint(key, logoutClaims(), { header: { typ: 1 } }), undefined],
    ['no events', mint(key, logoutClaims({ events: undefined }), { header }), 'events'],
    ['events of another kind', mint(key, logoutClaims({ events: { 'urn:other': {} } }), { header }), 'events'],
    ['the event is not an object', mint(key, logoutClaims({ events: { [BACKCHANNEL_LOGOUT_EVENT]: 'yes' } }), { header }), 'events'],
    ['events an array', mint(key, logoutClaims({ events: [BACKCHANNEL_LOGOUT_EVENT] }), { header }), 'events'],
    ['a nonce', mint(key, logoutClaims({ nonce: 'n' }), { header }), 'nonce'],
    ['neither sid nor sub', mint(key, logoutClaims({ sid: undefined, sub: undefined }), { header }), 'sid'],
    ['an empty sid', mint(key, logoutClaims({ sid: '' }), { header }), 'sid'],
    ['a sid that is not a string', mint(key, logoutClaims({ sid: 42 }), { header }), 'sid'],
    ['a huge sub', mint(key, logoutClaims({ sub: 'x'.repeat(256) }), { header }), 'sub'],
    ['a sid with a lone surrogate', mint(key, logoutClaims({ sid: 'session-\ud800' }), { header }), 'sid'],
    ['a sub with a lone surrogate', mint(key, logoutClaims({ sub: '\udfffuser' }), { header }), 'sub'],
    ['no jti', mint(key, logoutClaims({ jti: undefined }), { header }), 'jti'],
    ['no iat', mint(key, logoutClaims({ iat: undefined }), { header }), 'iat'],
    ['iat in the future', mint(key, logoutClaims({ iat: nowSeconds() + 3600 }), { header }), 'iat'],
    ['iat too old', mint(key, logoutClaims({ iat: nowSeconds() - 3600, exp: nowSeconds() + 60 }), { header }), 'iat'],
    ['iat not a number', mint(key, logoutClaims({ iat: '1' }), { header }), 'iat'],
    ['expired', mint(key, logoutClaims({ iat: nowSeconds() - 200, exp: nowSeconds() - 100 }), { header }), 'exp'],
    ['another audience', mint(key, logoutClaims({ aud: 'client-b' }), { header }), 'aud'],
    ['an untrusted audience beside ours', mint(key, logoutClaims({ aud: [AUD, 'client-b'] }), { header }), 'aud'],
    ['no aud', mint(key, logoutClaims({ aud: undefined }), { header }), 'aud']
  ]
  for (const [what, token, claim] of refused) {
    await t.rejects(v.verifyLogoutToken(token, 300), { code: 'logout_token_invalid', details: claim === undefined ? { issuer: 'main' } : { issuer: 'main', claim } }, what)
  }
  // Failures before the rules keep their own codes (the route turns them into logout_token_invalid).
  await t.rejects(v.verifyLogoutToken(mint(other, logoutClaims(), { header: { ...header, kid: key.kid } }), 300), { code: 'signature_invalid' }, 'signed by another key')
  await t.rejects(v.verifyLogoutToken(tamperPayload(mint(key, logoutClaims(), { header }), logoutClaims({ sid: 'someone-else' })), 300), { code: 'signature_invalid' }, 'tampered')
  await t.rejects(v.verifyLogoutToken(mint(key, logoutClaims({ iss: 'https://evil.example' }), { header }), 300), { code: 'issuer_unknown' })
  await t.rejects(v.verifyLogoutToken('not.a.token', 300), { code: 'token_malformed' })
  await t.rejects(v.verifyLogoutToken('x'.repeat(100_000), 300), { code: 'token_too_large' })

  // The two kinds never pass as each other.
  await t.rejects(v.verify(mint(key, logoutClaims(), { header })), { code: 'token_is_logout_token' }, 'a logout token is not an ID token')
  await t.rejects(v.verifyLogoutToken(mint(key, idTokenClaims(ISS, AUD, { nonce: 'n' })), 300), { code: 'logout_token_invalid' }, 'an ID token is not a logout token')
})

t.test('logout tokens of an issuer with allowedTenants whose iss names no tenant (Auth0 Organizations)', async (t) => {
  const AUTH0 = 'https://example.eu.auth0.com/'
  const rs = makeKey('RS256')
  const v = new Verifier(configFor([{ id: 'auth0', preset: 'auth0', issuer: AUTH0, audiences: [AUD], allowedTenants: ['org_allowed'], jwks: jwksOf(rs) }]))
  t.teardown(() => v.close())
  const logout = (extra: Record<string, unknown>): string => mint(rs, logoutClaims({ iss: AUTH0, ...extra }), { header: { typ: 'logout+jwt' } })
  // Back-Channel Logout 1.0 §2.4 lists no tenant claim, and Auth0's logout tokens carry no org_id.
  t.equal((await v.verifyLogoutToken(logout({}), 300)).issuer, 'auth0', 'no org_id: accepted (it can only revoke, within this issuer)')
  t.equal((await v.verifyLogoutToken(logout({ org_id: 'org_allowed' }), 300)).issuer, 'auth0')
  await t.rejects(v.verifyLogoutToken(logout({ org_id: 'org_other' }), 300), { code: 'logout_token_invalid', details: { issuer: 'auth0', claim: 'org_id' } }, 'an organization that may not log in may not log out')
  await t.rejects(v.verify(mint(rs, idTokenClaims(AUTH0, AUD))), { code: 'tenant_not_allowed' }, 'an ID token without one is still refused')
})

t.test('logout tokens of a {tenantid} issuer: only from the allowed tenants', async (t) => {
  const MS = 'https://login.microsoftonline.com'
  const TEMPLATE = `${MS}/{tenantid}/v2.0`
  const allowed = '9122040d-6c67-4c5b-b112-36a304b66dad'
  const other = '72f988bf-86f1-41af-91ab-2d7cd011db47'
  const common = makeKey('RS256', { jwkExtras: { issuer: TEMPLATE } })
  const v = new Verifier(configFor([{ id: 'entra', preset: 'entra', issuer: TEMPLATE, audiences: [AUD], allowedTenants: [allowed], jwks: jwksOf(common) }]))
  t.teardown(() => v.close())
  const logoutOf = (tid: string | undefined): string => mint(common, logoutClaims({ iss: `${MS}/${tid ?? allowed}/v2.0`, tid }), { header: { typ: 'logout+jwt' } })
  t.equal((await v.verifyLogoutToken(logoutOf(allowed), 300)).issuer, 'entra')
  await t.rejects(v.verifyLogoutToken(logoutOf(other), 300), { code: 'logout_token_invalid', details: { issuer: 'entra', claim: 'tid' } }, 'a tenant that may not log in may not log out either')
  await t.rejects(v.verifyLogoutToken(logoutOf(undefined), 300), { code: 'claim_missing' }, 'no tid: the template issuer needs one')
})

t.test('the list: room kept for other processes, and expired revocations swept to make room', async (t) => {
  t.same([100, 15, 5, 1].map((n) => new RevocationList(n).sharedHeadroom), [10, 2, 1, 0], 'a tenth, rounded up, never the whole list')
  const list = new RevocationList(10)
  const headroom = 2
  list.apply(revocation({ value: 'soon', expiresAt: NOW + 10 }), NOW)
  for (let i = 0; i < 6; i++) list.apply(revocation({ value: `s${i}` }), NOW)
  t.ok(list.hasRoomFor(revocation({ value: 'new' }), headroom, NOW), '7 of 8 usable entries: room')
  list.apply(revocation({ value: 's6' }), NOW)
  t.notOk(list.hasRoomFor(revocation({ value: 'new' }), headroom, NOW), '8 of 8: no room')
  t.ok(list.hasRoomFor(revocation({ value: 's6' }), headroom, NOW), 'one held already: room')
  t.ok(list.hasRoomFor(revocation({ value: 'new' }), headroom, NOW + 10), 'once one has expired: swept, room')
  t.equal(list.size, 7)
  t.equal(list.get('main', 'sid', 's6', NOW + 3599)?.value, 's6')
  t.equal(list.get('main', 'sid', 's6', NOW + 3600), undefined, 'expired at its expiresAt')
})

t.test('the list: an issuer-wide revocation is swept at its expiry, and counts for the next sweep', async (t) => {
  const list = new RevocationList(2)
  list.apply(revocation({ kind: 'issuer', value: '', before: NOW, expiresAt: NOW + 50 }), NOW)
  list.apply(revocation({ value: 'a', expiresAt: NOW + 10 }), NOW)
  t.equal(list.sweep(NOW + 10), 1, 'the sid revocation')
  list.apply(revocation({ value: 'b', expiresAt: NOW + 100 }), NOW + 10)
  t.equal(list.apply(revocation({ value: 'c', expiresAt: NOW + 100 }), NOW + 50), 'added', 'the issuer revocation expired: swept to make room')
  t.equal(list.check('main', { iat: NOW - 1 }, NOW + 50), undefined)
  const alone = new RevocationList(5)
  alone.apply(revocation({ kind: 'issuer', value: '', before: NOW, expiresAt: NOW + 50 }), NOW)
  t.equal(alone.sweep(NOW + 50), 1, 'swept at its expiresAt')
  t.equal(alone.size, 0)
})
