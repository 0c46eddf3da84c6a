/**
 * POST /verify/batch: results in order, one identity or one error per token, one bad token never failing
 * the batch; shared checks; the configured maximum and body limit; hostile requests refused with a code.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint, tamperPayload } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: ISS, audiences: [AUD, 'client-b'], jwks: jwksOf(key) }]

const app = await buildApp(configFor(issuers, { batch: { maxTokens: 5, maxBodyBytes: 200_000 } }))
t.teardown(() => app.close())

async function batch (payload: unknown, url = '/verify/batch', target = app) {
  const res = await target.inject({ method: 'POST', url, payload: payload as never, headers: { 'content-type': 'application/json' } })
  return { status: res.statusCode, body: res.json() }
}

t.test('results in order: an identity for each good token, an error for each bad one', async (t) => {
  const good = mint(key, idTokenClaims(ISS, AUD, { sub: 'alice' }))
  const res = await batch({
    tokens: [
      good,
      mint(key, idTokenClaims(ISS, AUD, { exp: 1000, iat: 900 })),
      '',
      tamperPayload(good, idTokenClaims(ISS, AUD, { sub: 'root' })),
      mint(key, idTokenClaims(ISS, 'client-b', { sub: 'bob' }))
    ]
  })
  t.equal(res.status, 200)
  const results = res.body.results
  t.equal(results.length, 5)
  t.match(results[0], { ok: true, identity: { subject: 'alice', issuer: { id: 'main' } } })
  t.match(results[1], { ok: false, error: { code: 'token_expired', issuer: 'main', claim: 'exp' } })
  t.match(results[2], { ok: false, error: { code: 'token_malformed' } })
  t.match(results[3], { ok: false, error: { code: 'signature_invalid' } })
  t.match(results[4], { ok: true, identity: { subject: 'bob' } })
  t.type(results[1].error.message, 'string')
  t.type(results[1].error.hint, 'string')
  const single = await app.inject({ method: 'POST', url: '/verify', payload: { token: good } })
  const { expiresIn: _a, ...fromBatch } = results[0].identity
  const { expiresIn: _b, ...fromVerify } = single.json()
  t.same(fromBatch, fromVerify, 'the same identity as /verify')
})

t.test('answers carrying identities are not stored by caches (Cache-Control: no-store), as /introspect\'s', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/verify/batch', payload: { tokens: [mint(key, idTokenClaims(ISS, AUD))] } })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'no-store')
})

t.test('shared checks apply to every token', async (t) => {
  const a = mint(key, idTokenClaims(ISS, AUD))
  const b = mint(key, idTokenClaims(ISS, 'client-b'))
  const res = await batch({ tokens: [a, b], audience: 'client-b' })
  t.match(res.body.results, [{ ok: false, error: { code: 'audience_mismatch' } }, { ok: true }])
  const old = mint(key, idTokenClaims(ISS, AUD, { auth_time: Math.floor(Date.now() / 1000) - 7200 }))
  const aged = await batch({ tokens: [a, old], maxAge: 3600 })
  t.match(aged.body.results, [{ ok: true }, { ok: false, error: { code: 'authentication_too_old' } }])
  const unconfigured = await batch({ tokens: [a], audience: 'not-ours' })
  t.equal(unconfigured.status, 400)
  t.equal(unconfigured.body.code, 'request_invalid')
})

t.test('more tokens than batch.maxTokens: 400 batch_too_large', async (t) => {
  const token = mint(key, idTokenClaims(ISS, AUD))
  t.equal((await batch({ tokens: Array(5).fill(token) })).status, 200, 'the maximum is fine')
  const res = await batch({ tokens: Array(6).fill(token) })
  t.equal(res.status, 400)
  t.equal(res.body.code, 'batch_too_large')
})

t.test('the default maximum is 100', async (t) => {
  const defaults = await buildApp(configFor(issuers))
  t.teardown(() => defaults.close())
  const token = mint(key, idTokenClaims(ISS, AUD))
  const ok = await batch({ tokens: Array(100).fill(token) }, '/verify/batch', defaults)
  t.equal(ok.status, 200, `${JSON.stringify(ok.body).slice(0, 200)}`)
  t.equal(ok.body.results.length, 100)
  t.equal((await batch({ tokens: Array(101).fill('x') }, '/verify/batch', defaults)).body.code, 'batch_too_large')
})

t.test('malformed requests fail the whole batch with a code, never a 500', async (t) => {
  const token = mint(key, idTokenClaims(ISS, AUD))
  for (const payload of [
    {}, { tokens: [] }, { tokens: token }, { tokens: [token, 5] }, { tokens: [token, null] }, { tokens: [[token]] },
    { tokens: [token], extra: 1 }, { tokens: [token], maxAge: '60' }, { tokens: [token], maxAge: -1 }, { tokens: [token], nonce: 'n' },
    [token], 'tokens', null
  ]) {
    const res = await batch(payload)
    t.equal(res.status, 400, JSON.stringify(payload).slice(0, 60))
    t.equal(res.body.code, 'request_invalid')
  }
  const text = await app.inject({ method: 'POST', url: '/verify/batch', payload: `{"tokens":["${token}"]}`, headers: { 'content-type': 'text/plain' } })
  t.equal(text.statusCode, 415)
  const broken = await app.inject({ method: 'POST', url: '/verify/batch', payload: '{"tokens":["', headers: { 'content-type': 'application/json' } })
  t.equal(broken.statusCode, 400)
  t.equal(broken.json().code, 'request_invalid')
  const inQuery = await batch({ tokens: [token] }, `/verify/batch?token=${token}`)
  t.equal(inQuery.body.code, 'token_in_query')
  // The batch's own field name, in the query as in the body (tokens=a&tokens=b or a JSON list): leaked all the same.
  for (const query of [`tokens=${token}`, `tokens=${token}&tokens=${token}`, `tokens=${encodeURIComponent(JSON.stringify([token]))}`]) {
    const tokensInQuery = await batch({ tokens: [token] }, `/verify/batch?${query}`)
    t.same([tokensInQuery.status, tokensInQuery.body.code], [400, 'token_in_query'], query.slice(0, 30))
  }
})

t.test('the body limit is batch.maxBodyBytes, not server.bodyLimit', async (t) => {
  const token = mint(key, idTokenClaims(ISS, AUD))
  const padded = [token, 'p'.repeat(100_000)]
  const big = await batch({ tokens: padded })
  t.equal(big.status, 200, 'over server.bodyLimit (64 KiB) but within batch.maxBodyBytes')
  t.match(big.body.results, [{ ok: true }, { ok: false, error: { code: 'token_too_large' } }], 'an oversized token fails alone')
  const tooBig = await batch({ tokens: [token, 'p'.repeat(210_000)] })
  t.equal(tooBig.status, 413)
  t.equal(tooBig.body.code, 'request_too_large')
})

t.test('keys unavailable: the batch answers, each affected token says keys_unavailable with a retry time', async (t) => {
  const failing = async (): Promise<never> => { throw new Error('IdP down') }
  const down = await buildApp(configFor([
    ...issuers,
    { id: 'down', issuer: 'https://down.example.com', audiences: [AUD], jwksUri: 'https://down.example.com/jwks' }
  ]), { fetcher: failing as never, startVerifier: false })
  t.teardown(() => down.close())
  const res = await batch({ tokens: [mint(key, idTokenClaims('https://down.example.com', AUD)), mint(key, idTokenClaims(ISS, AUD))] }, '/verify/batch', down)
  t.equal(res.status, 200)
  t.match(res.body.results, [{ ok: false, error: { code: 'keys_unavailable' } }, { ok: true }])
  t.ok(res.body.results[0].error.retryAfterSeconds >= 1)
})

t.test('rate limited like /verify (one request counts once)', async (t) => {
  const limited = await buildApp(configFor(issuers, { rateLimit: { max: 1, windowSeconds: 60 } }))
  t.teardown(() => limited.close())
  const token = mint(key, idTokenClaims(ISS, AUD))
  t.equal((await batch({ tokens: [token, token] }, '/verify/batch', limited)).status, 200)
  const res = await batch({ tokens: [token] }, '/verify/batch', limited)
  t.equal(res.status, 429)
  t.equal(res.body.code, 'rate_limited')
})
