/**
 * The clock tolerance at its exact edges (Core §3.1.3.7 steps 9-10, RFC 7519 §4.1.4/§4.1.5): exp is the first
 * instant the token is refused (`now >= exp + tolerance`), nbf/iat/auth_time may be up to `now + tolerance`,
 * maxTokenAgeSeconds and maxAge allow exactly their value plus the tolerance. One second either side of every
 * edge, on the first verification and on cache hits.
 */
import t from 'tap'
import { Verifier, type RequestChecks } from '../src/core/verifier.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-1'
const TOL = 30
const MAX_TOKEN_AGE = 3600
const NOW = 1_900_000_000
const key = makeKey('ES256')
const clock = NOW * 1000

const v = new Verifier(configFor([{ id: 'idp', issuer: ISS, audiences: [AUD], clockToleranceSeconds: TOL, maxTokenAgeSeconds: MAX_TOKEN_AGE, jwks: jwksOf(key) }]), { now: () => clock })
t.teardown(() => v.close())

const token = (claims: Record<string, unknown>): string => mint(key, idTokenClaims(ISS, AUD, { iat: NOW - 60, exp: NOW + 600, auth_time: NOW - 60, ...claims }))

async function outcome (tk: string, request: RequestChecks = {}): Promise<string> {
  // Three times: the first verification, the one that admits it to the cache, and a cache hit.
  const seen = new Set<string>()
  for (let i = 0; i < 3; i++) {
    try {
      await v.verify(tk, request)
      seen.add('ok')
    } catch (err) {
      seen.add((err as { code: string }).code)
    }
  }
  return [...seen].join(',')
}

t.test('exp: refused from exp + tolerance on', async (t) => {
  t.equal(await outcome(token({ exp: NOW - TOL + 1 })), 'ok', 'one second before the edge')
  t.equal(await outcome(token({ exp: NOW - TOL })), 'token_expired', 'at the edge')
})

t.test('nbf: accepted up to now + tolerance', async (t) => {
  t.equal(await outcome(token({ nbf: NOW + TOL })), 'ok')
  t.equal(await outcome(token({ nbf: NOW + TOL + 1 })), 'token_not_yet_valid')
})

t.test('iat: accepted up to now + tolerance', async (t) => {
  t.equal(await outcome(token({ iat: NOW + TOL, auth_time: NOW })), 'ok')
  t.equal(await outcome(token({ iat: NOW + TOL + 1, auth_time: NOW })), 'token_issued_in_future')
})

t.test('maxTokenAgeSeconds: iat at most that long ago, plus the tolerance', async (t) => {
  t.equal(await outcome(token({ iat: NOW - MAX_TOKEN_AGE - TOL, auth_time: NOW - MAX_TOKEN_AGE - TOL })), 'ok')
  t.equal(await outcome(token({ iat: NOW - MAX_TOKEN_AGE - TOL - 1, auth_time: NOW - MAX_TOKEN_AGE - TOL - 1 })), 'token_too_old')
})

t.test('maxAge: auth_time at most maxAge ago, plus the tolerance', async (t) => {
  const maxAge = 300
  t.equal(await outcome(token({ auth_time: NOW - maxAge - TOL }), { maxAge }), 'ok')
  t.equal(await outcome(token({ auth_time: NOW - maxAge - TOL - 1 }), { maxAge }), 'authentication_too_old')
})
