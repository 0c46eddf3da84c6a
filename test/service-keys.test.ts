/**
 * The JWKS life cycle seen through the service: an IdP that is down at start, a flood of random kids,
 * shared first fetches, unknown issuers costing no I/O, and discovery that names the wrong issuer.
 */
import t from 'tap'
import { randomUUID } from 'node:crypto'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { startJwksServer } from './helpers/jwks-server.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const AUD = 'client-a'
const key = makeKey('RS256')

async function until (check: () => Promise<boolean>, ms = 8000): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return false
}

t.test('IdP down at start: the service starts, is not ready, answers 503 keys_unavailable, recovers', async (t) => {
  const idp = await startJwksServer({ status: 500 })
  t.teardown(() => idp.close())
  const ISS = idp.url
  const app = await buildApp(configFor([{ id: 'down', issuer: ISS, audiences: [AUD], jwksUri: idp.jwksUrl }]))
  t.teardown(() => app.close())
  await app.ready()
  t.ok(await until(async () => idp.requests('/jwks') >= 1), 'tried at start-up')
  // The IdP counts the request when it arrives; the service records the failure once it has read the answer.
  t.ok(await until(async () => typeof (await app.inject({ method: 'GET', url: '/readyz' })).json().issuers[0]?.lastError === 'string'), 'the failure is recorded')
  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().issuers[0].ready, false)
  t.match(ready.json().issuers[0].lastError, idp.jwksUrl, 'the error names the URL')
  t.match(ready.json().issuers[0].lastError, /500/)
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'liveness never depends on the IdP')

  const res = await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(key, idTokenClaims(ISS, AUD)) } })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'keys_unavailable')
  t.ok(Number(res.headers['retry-after']) >= 1)
  t.notOk(res.headers['www-authenticate'], 'not a token problem')

  idp.set({ json: jwksOf(key) })
  t.ok(await until(async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200), 'background retries make it ready')
  const ok = await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(key, idTokenClaims(ISS, AUD)) } })
  t.equal(ok.statusCode, 200)
})

t.test('a flood of random kids costs the IdP a bounded number of fetches', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(key), cacheControl: 'max-age=600' })
  t.teardown(() => idp.close())
  const ISS = idp.url
  const app = await buildApp(configFor([{ id: 'flood', issuer: ISS, audiences: [AUD], jwksUri: idp.jwksUrl }], { jwks: { unknownKidCooldownSeconds: 0, unknownKidRefreshesPerMinute: 3 } }))
  t.teardown(() => app.close())
  await app.ready()
  t.ok(await until(async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200))
  const before = idp.requests('/jwks')
  const attacker = makeKey('RS256')
  const results = await Promise.all(Array.from({ length: 300 }, () => app.inject({
    method: 'POST', url: '/verify', payload: { token: mint(attacker, idTokenClaims(ISS, AUD), { header: { kid: randomUUID() } }) }
  })))
  t.ok(results.every((r) => r.statusCode === 401 && r.json().code === 'key_not_found'))
  // One at a time, so that no fetch is shared: only the per-minute budget stands between them and the IdP.
  for (let i = 0; i < 50; i++) {
    const r = await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(attacker, idTokenClaims(ISS, AUD), { header: { kid: randomUUID() } }) } })
    t.equal(r.json().code, 'key_not_found')
  }
  const spent = idp.requests('/jwks') - before
  t.ok(spent <= 3, `350 random kids cost ${spent} fetches (limit 3 a minute)`)
  t.equal((await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(key, idTokenClaims(ISS, AUD)) } })).statusCode, 200, 'real tokens still verify')
})

t.test('concurrent first requests share one fetch; unknown issuers cost no I/O', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(key), delayMs: 100 })
  t.teardown(() => idp.close())
  const ISS = idp.url
  const app = await buildApp(configFor([{ id: 'lazy', issuer: ISS, audiences: [AUD], jwksUri: idp.jwksUrl }]), { startVerifier: false })
  t.teardown(() => app.close())
  const token = mint(key, idTokenClaims(ISS, AUD))
  const results = await Promise.all(Array.from({ length: 50 }, () => app.inject({ method: 'POST', url: '/verify', payload: { token } })))
  t.ok(results.every((r) => r.statusCode === 200))
  t.equal(idp.requests('/jwks'), 1, 'one fetch for 50 concurrent misses')
  const stranger = await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(key, idTokenClaims(`${idp.url}/other`, AUD)) } })
  t.equal(stranger.json().code, 'issuer_unknown')
  t.equal(idp.requests(), 1, 'no request for an unknown issuer')
})

t.test('discovery naming another issuer is refused with what was found', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(key) })
  t.teardown(() => idp.close())
  idp.set({ json: { issuer: 'https://impostor.example.com', jwks_uri: idp.jwksUrl } }, '/.well-known/openid-configuration')
  const app = await buildApp(configFor([{ id: 'disc', issuer: idp.url, audiences: [AUD] }]))
  t.teardown(() => app.close())
  await app.ready()
  t.ok(await until(async () => idp.requests('/.well-known/openid-configuration') >= 1))
  let body: { issuers: Array<{ lastError: string | null, state: string }> } = { issuers: [] }
  t.ok(await until(async () => {
    body = (await app.inject({ method: 'GET', url: '/readyz' })).json()
    return body.issuers[0]?.lastError !== null
  }))
  t.equal(body.issuers[0]?.state, 'discovering')
  t.match(body.issuers[0]?.lastError, /impostor\.example\.com/)
  t.equal(idp.requests('/jwks'), 0, 'the JWKS of a mismatched discovery is never fetched')
  const res = await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(key, idTokenClaims(idp.url, AUD)) } })
  t.equal(res.statusCode, 503)
  t.equal(res.json().code, 'keys_unavailable')
})

t.test('a JWKS with no usable signature key is not ready', async (t) => {
  const encOnly = makeKey('RS256', { jwkExtras: { use: 'enc' } })
  const small = makeKey('RS256', { modulusLength: 1024 })
  const idp = await startJwksServer({ json: jwksOf(encOnly, small) })
  t.teardown(() => idp.close())
  const app = await buildApp(configFor([{ id: 'unfit', issuer: idp.url, audiences: [AUD], jwksUri: idp.jwksUrl }]))
  t.teardown(() => app.close())
  await app.ready()
  t.ok(await until(async () => idp.requests('/jwks') >= 1))
  await until(async () => (await app.inject({ method: 'GET', url: '/readyz' })).json().issuers[0].state === 'fresh')
  const res = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(res.statusCode, 503)
  t.equal(res.json().issuers[0].keyCount, 0)
  for (const key of [encOnly, small]) {
    const r = await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(key, idTokenClaims(idp.url, AUD)) } })
    t.equal(r.json().code, 'key_not_found', `${String(key.jwk.use)} ${key.kid}`)
  }
})
