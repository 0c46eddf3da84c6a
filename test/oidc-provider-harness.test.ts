import t from 'tap'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { OP_ALGS, decodeJwtPart, startOidcProvider } from './helpers/oidc-provider.js'

interface Discovery { issuer: string, jwks_uri: string, id_token_signing_alg_values_supported: string[] }

async function fetchJson<T>(url: string): Promise<T> {
  const res = await fetch(url)
  if (!res.ok) throw new Error(`GET ${url} -> ${res.status}`)
  return await res.json() as T
}

t.test('real oidc-provider harness', async (t) => {
  const op = await startOidcProvider()
  t.teardown(() => op.close())

  t.match(op.issuer, /^http:\/\/127\.0\.0\.1:\d+$/)
  const discovery = await fetchJson<Discovery>(`${op.issuer}/.well-known/openid-configuration`)
  t.equal(discovery.issuer, op.issuer)
  t.same([...discovery.id_token_signing_alg_values_supported].sort(), [...OP_ALGS].sort())
  const publishedKids = async (): Promise<string[]> =>
    (await fetchJson<{ keys: Array<{ kid: string }> }>(discovery.jwks_uri)).keys.map((k) => k.kid)

  // cooldown 0 so the rotation below is picked up by the same set
  const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri), { cooldownDuration: 0 })
  const firstKids = new Map<string, string>()

  for (const client of op.clients) {
    await t.test(`${client.alg}: login + verify`, async (t) => {
      const nonce = `n-${client.alg}`
      const { idToken, accessToken } = await op.login({ clientId: client.clientId, nonce })
      t.type(accessToken, 'string')
      const header = decodeJwtPart(idToken, 0)
      t.equal(header.alg, client.alg)
      t.equal(header.kid, op.currentKids[client.alg])
      t.ok((await publishedKids()).includes(String(header.kid)), 'kid is published')
      const { payload } = await jwtVerify(idToken, jwks, {
        issuer: op.issuer, audience: client.clientId, algorithms: [client.alg]
      })
      t.equal(payload.nonce, nonce)
      t.equal(payload.sub, 'alice')
      t.equal(payload.email, 'alice@example.test')
      t.equal(payload.email_verified, true)
      t.equal(payload.name, 'Alice Example')
      t.equal(payload.auth_time, undefined, 'no auth_time without max_age')
      firstKids.set(client.alg, String(header.kid))
    })
  }

  await t.test('per-login options: sub, claims, maxAge, no nonce', async (t) => {
    const client = op.client('ES256')
    const r = await op.login({
      clientId: client.clientId, sub: 'bob', maxAge: 300, nonce: null,
      claims: { email: 'bob@corp.test', hd: 'corp.test', groups: ['a', 'b'] }
    })
    const { payload } = await jwtVerify(r.idToken, jwks, { issuer: op.issuer, audience: client.clientId })
    t.equal(payload.sub, 'bob')
    t.equal(payload.email, 'bob@corp.test')
    t.equal(payload.hd, 'corp.test')
    t.same(payload.groups, ['a', 'b'])
    t.type(payload.auth_time, 'number')
    t.equal(payload.nonce, undefined)
    await t.rejects(op.login({ clientId: 'nope' }), /unknown clientId/)
    await t.rejects(op.login({ clientId: client.clientId, claims: { iss: 'x' } }), /reserved/)
  })

  await t.test('rotate()', async (t) => {
    const before = op.issuer
    await op.rotate()
    t.equal(op.issuer, before)
    const kids = await publishedKids()
    t.equal(kids.length, OP_ALGS.length * 2, 'old and new keys are published')
    for (const client of op.clients) {
      const oldKid = firstKids.get(client.alg)
      const { idToken } = await op.login({ clientId: client.clientId, nonce: 'after' })
      const header = decodeJwtPart(idToken, 0)
      t.not(header.kid, oldKid, `${client.alg} signs with a new kid`)
      t.equal(header.kid, op.currentKids[client.alg])
      t.ok(kids.includes(String(header.kid)), 'new kid published')
      t.ok(kids.includes(String(oldKid)), 'old kid still published')
      const { payload } = await jwtVerify(idToken, jwks, {
        issuer: op.issuer, audience: client.clientId, algorithms: [client.alg]
      })
      t.equal(payload.nonce, 'after')
    }
  })
})
