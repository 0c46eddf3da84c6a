/**
 * POST /verify answers a cached token from a body rendered once per cache entry (src/http/identity-bodies.ts):
 * the answers must be exactly what the route's schema serializer writes, with the current expiresIn, whatever
 * the claims hold — including claims built to look like the placeholder.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { IdentityBodies } from '../src/http/identity-bodies.js'
import type { VerifiedIdentity } from '../src/core/identity.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint, nowSeconds } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]

t.test('repeated answers equal a fresh serialization, with expiresIn following the clock', async (t) => {
  let now = nowSeconds() * 1000
  const cached = await buildApp(configFor(issuers), { now: () => now })
  const uncached = await buildApp(configFor(issuers, { tokenCache: { enabled: false } }), { now: () => now })
  t.teardown(async () => { await cached.close(); await uncached.close() })
  const hostile = {
    name: '"expiresIn":-987654321012345,"x":"',
    expiresIn: -987654321012345,
    nested: { expiresIn: -987654321012345, list: ['"expiresIn":-987654321012345'] },
    email: 'a@example.com'
  }
  for (const [label, token] of [['plain', mint(key, idTokenClaims(ISS, 'aud'))], ['placeholder-shaped claims', mint(key, idTokenClaims(ISS, 'aud', hostile))]] as const) {
    const bodies: string[] = []
    for (let i = 0; i < 4; i++) {
      now += 7000
      const res = await cached.inject({ method: 'POST', url: '/verify', payload: { token } })
      const fresh = await uncached.inject({ method: 'POST', url: '/verify', payload: { token } })
      t.equal(res.statusCode, 200, `${label} #${i}`)
      t.equal(res.headers['content-type'], 'application/json; charset=utf-8')
      t.equal(res.body, fresh.body, `${label} #${i}: byte for byte what the schema serializer writes`)
      bodies.push(res.body)
    }
    const expiresIn = bodies.map((b) => (JSON.parse(b) as { expiresIn: number }).expiresIn)
    t.same(expiresIn.map((e, i) => e - (expiresIn[0] as number) + 7 * i), [0, 0, 0, 0], `${label}: expiresIn counts down with the clock`)
    if (label !== 'plain') {
      const claims = (JSON.parse(bodies[3] as string) as { claims: Record<string, unknown> }).claims
      t.same({ name: claims.name, expiresIn: claims.expiresIn, nested: claims.nested }, { name: hostile.name, expiresIn: hostile.expiresIn, nested: hostile.nested })
    }
  }
})

t.test('renders on the first hit of an entry, and never when the marker is missing', async (t) => {
  const claims = { sub: 'u' }
  const identity = { claims, expiresIn: 30, subject: 'u' } as unknown as VerifiedIdentity
  let calls = 0
  const serialize = (value: VerifiedIdentity): string => { calls++; return JSON.stringify({ subject: value.subject, expiresIn: value.expiresIn, claims: value.claims }) }
  const bodies = new IdentityBodies(serialize)
  t.equal(bodies.body(identity), '{"subject":"u","expiresIn":30,"claims":{"sub":"u"}}', 'rendered on the first hit')
  t.equal(calls, 1)
  t.equal(bodies.body({ ...identity, expiresIn: 29 }), '{"subject":"u","expiresIn":29,"claims":{"sub":"u"}}')
  t.equal(bodies.body({ ...identity, expiresIn: 0 }), '{"subject":"u","expiresIn":0,"claims":{"sub":"u"}}')
  t.equal(calls, 1, 'rendered once')
  const other = { claims: { sub: 'v' }, expiresIn: 5, subject: 'v' } as unknown as VerifiedIdentity
  const withoutField = (): string => '{"subject":"v"}'
  const bodiesWithoutField = new IdentityBodies(withoutField)
  t.equal(bodiesWithoutField.body(other), undefined)
  t.equal(bodiesWithoutField.body(other), undefined, 'no expiresIn in the output: left to Fastify')
})
