/**
 * Back-channel logout end to end with a REAL OpenID Provider (oidc-provider, features.backchannelLogout):
 * the user logs out through the provider's end_session_endpoint (RP-initiated logout), the provider itself
 * POSTs the logout token to our POST /backchannel-logout on a real port, and ID tokens of the logged-out
 * session (or, without sid, of the user up to the logout) are refused from then on, cache hits included.
 */
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { decodeJwtPart, startOidcProvider, type OpAlg } from './helpers/oidc-provider.js'

const SID_CLIENTS: Record<'ES256' | 'RS256', string> = { ES256: 'rp-es256', RS256: 'rp-rs256' }
const SUB_CLIENT = 'rp-es256-no-sid'
/** A client of the provider that is not one of our audiences. */
const FOREIGN_CLIENT = 'rp-foreign'

const op = await startOidcProvider({
  backchannelLogout: true,
  clients: [
    { alg: 'ES256', clientId: SID_CLIENTS.ES256 },
    { alg: 'RS256', clientId: SID_CLIENTS.RS256 },
    { alg: 'ES256', clientId: SUB_CLIENT },
    { alg: 'ES256', clientId: FOREIGN_CLIENT }
  ]
})

const app = await buildApp(configFor([
  { id: 'op', issuer: op.issuer, audiences: Object.values(SID_CLIENTS).concat(SUB_CLIENT), algorithms: ['RS256', 'ES256'] }
], { revocation: { enabled: true } }))
// What reached POST /backchannel-logout, and what we answered (hooks added before listen apply to every route).
interface Delivery { token: string | undefined, status: number, body: unknown }
const deliveries: Delivery[] = []
app.addHook('onSend', async (request, reply, payload) => {
  if (request.routeOptions.url === '/backchannel-logout') {
    const token = (request.body as { logout_token?: unknown } | null | undefined)?.logout_token
    deliveries.push({
      token: typeof token === 'string' ? token : undefined,
      status: reply.statusCode,
      body: typeof payload === 'string' ? JSON.parse(payload) as unknown : payload
    })
  }
  return payload
})
// The app is closed before the provider, so no key refresh runs against a closed provider.
t.teardown(async () => {
  await app.close()
  await op.close()
})
await app.listen({ host: '127.0.0.1', port: 0 })
const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
for (const clientId of Object.values(SID_CLIENTS)) {
  await op.setBackchannelLogout(clientId, { uri: `${base}/backchannel-logout`, sessionRequired: true })
}
await op.setBackchannelLogout(SUB_CLIENT, { uri: `${base}/backchannel-logout`, sessionRequired: false })
await op.setBackchannelLogout(FOREIGN_CLIENT, { uri: `${base}/backchannel-logout`, sessionRequired: true })

async function waitReady (): Promise<void> {
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if ((await fetch(`${base}/readyz`)).status === 200) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error('service never became ready')
}
await waitReady()

interface Answer { status: number, body: Record<string, unknown> }

async function verify (token: string): Promise<Answer> {
  const res = await fetch(`${base}/verify`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

async function postLogoutToken (t: Test, token: string): Promise<Answer> {
  const res = await fetch(`${base}/backchannel-logout`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ logout_token: token }).toString()
  })
  t.equal(res.headers.get('cache-control'), 'no-store', 'back-channel logout answers are not cached')
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

async function cacheHits (): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith('oidc_verifier_token_cache_hits_total{issuer="op"}'))
  return line === undefined ? 0 : Number(line.split(' ').pop())
}

/** Verifies a token `times` times (200 each); from the third on, it is answered from the verified-token cache. */
async function verifyCached (t: Test, token: string, label: string, times = 3): Promise<void> {
  const hitsBefore = await cacheHits()
  for (let i = 0; i < times; i++) {
    const res = await verify(token)
    t.equal(res.status, 200, `${label} verifies (${i + 1}/${times})`, { body: res.body })
  }
  t.ok(await cacheHits() >= hitsBefore + times - 2, `${label} is answered from the token cache`)
}

/** Signature kept, payload changed. */
function tamper (token: string, changes: Record<string, unknown>): string {
  const [header, , signature] = token.split('.')
  const payload = { ...decodeJwtPart(token, 1), ...changes }
  return `${header}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${signature}`
}

for (const alg of ['ES256', 'RS256'] as const satisfies readonly OpAlg[]) {
  t.test(`${alg}: logout of one session revokes its tokens, not the other session's`, async (t) => {
    const clientId = SID_CLIENTS[alg]
    const sub = `user-${alg.toLowerCase()}`
    const first = await op.login({ clientId, sub })
    const second = await op.login({ clientId, sub }) // another browser: another session
    const sidFirst = decodeJwtPart(first.idToken, 1).sid
    const sidSecond = decodeJwtPart(second.idToken, 1).sid
    t.type(sidFirst, 'string', 'ID tokens carry sid (backchannel_logout_session_required)')
    t.type(sidSecond, 'string')
    t.not(sidFirst, sidSecond, 'two browser sessions, two sids')
    t.equal(decodeJwtPart(first.idToken, 0).alg, alg)

    await verifyCached(t, first.idToken, 'first session')
    await verifyCached(t, second.idToken, 'second session')

    const delivered = deliveries.length
    const { backchannel, location } = await op.logout(first.session, { idTokenHint: first.idToken })
    t.match(location, `${op.issuer}/session/end/success`)
    t.same(backchannel, [{ outcome: 'success', clientId, accountId: sub, sid: sidFirst }], 'the provider saw our 200')
    const posted = deliveries.slice(delivered)
    t.equal(posted.length, 1, 'one logout token delivered')
    const delivery = posted[0] as Delivery
    t.equal(delivery.status, 200)
    t.same(delivery.body, { issuer: 'op', revoked: 'sid' })
    const logoutToken = delivery.token as string
    t.equal(decodeJwtPart(logoutToken, 0).typ, 'logout+jwt')
    t.equal(decodeJwtPart(logoutToken, 0).alg, alg)
    t.match(decodeJwtPart(logoutToken, 1), { sid: sidFirst, sub, aud: clientId, iss: op.issuer })

    const revoked = await verify(first.idToken)
    t.equal(revoked.status, 401, 'the first session\'s token is refused from the cache')
    t.equal(revoked.body.code, 'token_revoked')
    t.equal((await verify(first.idToken)).body.code, 'token_revoked', 'and stays refused')
    const other = await verify(second.idToken)
    t.equal(other.status, 200, 'the second session\'s token still verifies', { body: other.body })

    // The provider retries deliveries: the same logout token again is accepted, and changes nothing.
    const replay = await postLogoutToken(t, logoutToken)
    t.equal(replay.status, 200, 'a replayed logout token is accepted (idempotent)')
    t.same(replay.body, { issuer: 'op', revoked: 'sid' })
    t.equal((await verify(second.idToken)).status, 200, 'after the replay the second session still verifies')

    // Signature kept, sid changed to the other session: refused, and the other session is not logged out.
    const forged = await postLogoutToken(t, tamper(logoutToken, { sid: sidSecond }))
    t.equal(forged.status, 400)
    t.equal(forged.body.code, 'logout_token_invalid')
    t.equal((await verify(second.idToken)).status, 200, 'a tampered logout token revokes nothing')

    const idAsLogout = await postLogoutToken(t, second.idToken)
    t.equal(idAsLogout.status, 400, 'an ID token is not a logout token')
    t.equal(idAsLogout.body.code, 'logout_token_invalid')
    t.equal((await verify(second.idToken)).status, 200)

    const logoutAsId = await verify(logoutToken)
    t.equal(logoutAsId.status, 401, 'a logout token is not an ID token')
    t.equal(logoutAsId.body.code, 'token_is_logout_token')
  })
}

t.test('a logout token without sid revokes the user\'s earlier tokens, not later ones', async (t) => {
  const sub = 'carol'
  const first = await op.login({ clientId: SUB_CLIENT, sub })
  const second = await op.login({ clientId: SUB_CLIENT, sub })
  t.equal(decodeJwtPart(first.idToken, 1).sid, undefined, 'no sid without backchannel_logout_session_required')
  await verifyCached(t, first.idToken, 'first login')
  await verifyCached(t, second.idToken, 'second login')
  // Another user of the same client is not affected.
  const dave = await op.login({ clientId: SUB_CLIENT, sub: 'dave' })
  t.equal((await verify(dave.idToken)).status, 200)

  const delivered = deliveries.length
  const { backchannel } = await op.logout(first.session, { idTokenHint: first.idToken })
  t.match(backchannel, [{ outcome: 'success', clientId: SUB_CLIENT, accountId: sub }])
  t.equal(backchannel.length, 1)
  const delivery = deliveries[delivered] as Delivery
  t.equal(delivery.status, 200)
  t.same(delivery.body, { issuer: 'op', revoked: 'sub' })
  const logoutClaims = decodeJwtPart(delivery.token as string, 1)
  t.equal(logoutClaims.sid, undefined, 'the logout token has no sid')
  t.equal(logoutClaims.sub, sub)

  for (const [label, token] of [['first', first.idToken], ['second (still logged in at the provider)', second.idToken]] as const) {
    const res = await verify(token)
    t.equal(res.status, 401, `${label} login's token is revoked`)
    t.equal(res.body.code, 'token_revoked')
  }
  t.equal((await verify(dave.idToken)).status, 200, 'another user\'s token still verifies')

  const replay = await postLogoutToken(t, delivery.token as string)
  t.equal(replay.status, 200, 'replay accepted')
  t.same(replay.body, { issuer: 'op', revoked: 'sub' })

  // Tokens issued at or before the logout token's iat are revoked: a new login must be in a later second.
  const iat = logoutClaims.iat as number
  const wait = (iat + 1) * 1000 - Date.now()
  t.ok(wait <= 1000, 'at most a second to wait')
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
  const third = await op.login({ clientId: SUB_CLIENT, sub })
  t.ok((decodeJwtPart(third.idToken, 1).iat as number) > iat)
  const res = await verify(third.idToken)
  t.equal(res.status, 200, 'a login after the logout verifies', { body: res.body })
  t.equal((await verify(first.idToken)).body.code, 'token_revoked', 'the earlier ones stay revoked')
})

t.test('a logout token for another audience is refused with 400, and the provider sees the error', async (t) => {
  const login = await op.login({ clientId: FOREIGN_CLIENT, sub: 'erin' })
  const delivered = deliveries.length
  const { backchannel } = await op.logout(login.session, { idTokenHint: login.idToken })
  t.match(backchannel, [{ outcome: 'error', clientId: FOREIGN_CLIENT, accountId: 'erin', statusCode: 400 }])
  t.equal(backchannel.length, 1)
  const delivery = deliveries[delivered] as Delivery
  t.equal(delivery.status, 400)
  t.match(delivery.body, { code: 'logout_token_invalid' })
})
