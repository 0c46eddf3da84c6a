/**
 * End to end against a real OpenID Provider (oidc-provider), tokens from its real authorization-code login
 * flow, the service configured by discovery alone.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { OP_ALGS, startOidcProvider } from './helpers/oidc-provider.js'

const op = await startOidcProvider({
  clients: [...OP_ALGS.map((alg) => ({ alg })), { alg: 'ES256' as const, clientId: 'client-foreign' }]
})
t.teardown(() => op.close())

const clientIds = op.clients.map((c) => c.clientId)
const app = await buildApp(configFor([
  { id: 'op', issuer: op.issuer, audiences: clientIds.filter((id) => id !== 'client-foreign'), algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'] },
], { jwks: { unknownKidCooldownSeconds: 1 } }))
t.teardown(() => app.close())
await app.ready()

async function waitReady (): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const res = await app.inject({ method: 'GET', url: '/readyz' })
    if (res.statusCode === 200) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error('service never became ready')
}

t.test('discovery makes the service ready', async (t) => {
  await waitReady()
  const res = await app.inject({ method: 'GET', url: '/readyz' })
  const [issuer] = res.json().issuers
  t.equal(issuer.source, 'discovery')
  t.equal(issuer.jwksUri.startsWith(op.issuer), true)
  t.ok(issuer.keyCount >= 4)
})

t.test('tokens from a real login verify for every algorithm', async (t) => {
  for (const alg of OP_ALGS) {
    const client = op.clients.find((c) => c.alg === alg && c.clientId !== 'client-foreign') as typeof op.clients[number]
    const { idToken, accessToken, nonce } = await op.login({ clientId: client.clientId, sub: `user-${alg}`, maxAge: 3600 })
    const payload: Record<string, unknown> = { token: idToken, nonce, maxAge: 3600 }
    if (accessToken !== undefined && JSON.parse(Buffer.from(idToken.split('.')[1] as string, 'base64url').toString()).at_hash !== undefined) payload.accessToken = accessToken
    const res = await app.inject({ method: 'POST', url: '/verify', payload })
    t.equal(res.statusCode, 200, `${alg}: ${res.body}`)
    const body = res.json()
    t.equal(body.subject, `user-${alg}`)
    t.equal(body.issuer.url, op.issuer)
    t.same(body.audiences, [client.clientId])
    t.equal(body.user.email, `user-${alg}@example.test`)
    t.equal(body.user.emailVerified, true)
    t.type(body.authTime, 'number')
    const wrongNonce = await app.inject({ method: 'POST', url: '/verify', payload: { token: idToken, nonce: 'other' } })
    t.equal(wrongNonce.json().code, 'nonce_mismatch')
  }
})

t.test('a token for a client that is not ours is refused', async (t) => {
  const { idToken } = await op.login({ clientId: 'client-foreign' })
  const res = await app.inject({ method: 'POST', url: '/verify', headers: { authorization: `Bearer ${idToken}` } })
  t.equal(res.statusCode, 401)
  t.equal(res.json().code, 'audience_mismatch')
})

t.test('after the provider rotates its keys, new tokens verify within seconds', async (t) => {
  const before = op.currentKids.ES256
  await op.rotate()
  t.not(op.currentKids.ES256, before)
  const { idToken } = await op.login({ clientId: 'client-es256' })
  // The unknown kid refetches the JWKS once the cooldown (1 s) is over: a few tries apart, not the JWKS's
  // freshness (minutes).
  let status = 0
  for (let attempt = 0; attempt < 40; attempt++) {
    const res = await app.inject({ method: 'POST', url: '/verify', payload: { token: idToken } })
    status = res.statusCode
    if (status === 200) break
    t.equal(res.json().code, 'key_not_found', 'only a cooldown may delay it')
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  t.equal(status, 200, 'rotated key accepted')
})
