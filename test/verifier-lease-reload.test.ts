/**
 * A request leases the Verifier it verifies with (request.verifier, on first use), not the one current when it
 * arrived: a request whose body is still arriving during a reload verifies on the new generation, and a second
 * reload must not close that Verifier while the request still uses it. Before 2026-11-27 the lease was taken on
 * arrival, and a second reload closed the Verifier under the request (a 503 keys_unavailable for a good token).
 */
import t from 'tap'
import { PassThrough } from 'node:stream'
import { buildApp } from '../src/app.js'
import type { Config } from '../src/config/types.js'
import type { FetchJson } from '../src/net/fetch-json.js'
import { reloadConfiguration } from '../src/reload.js'
import { configFor as baseConfigFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

function configFor (issuers: Array<Record<string, unknown>>, extra: Record<string, unknown> = {}): Config {
  return baseConfigFor(issuers, { loadShedding: { enabled: false }, ...extra })
}

async function until (condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5))
  if (!condition()) throw new Error(`timed out waiting for ${what}`)
}

const ISS = 'https://a.example.com'
const k1 = makeKey('ES256', { kid: 'k1' })
const k2 = makeKey('ES256', { kid: 'k2' })
const remote = { id: 'a', issuer: ISS, audiences: ['aud-a'], jwksUri: 'https://a.example.com/jwks' }

t.test('a Verifier in use by a request is not closed by a reload while the request runs', async (t) => {
  let published: unknown = jwksOf(k1)
  let hold = false
  let held = 0
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  let calls = 0
  const fetcher: FetchJson = async (url) => {
    calls++
    if (hold) { held++; await gate }
    return { url, body: published, durationMs: 1 }
  }
  const app = await buildApp(configFor([remote]), { fetcher })
  t.teardown(() => app.close())
  await app.ready()
  await until(() => app.verifier.ready, 'keys')

  // The token's kid k2 is not published yet: its verification waits for an unknown-kid refresh.
  const token = mint(k2, idTokenClaims(ISS, 'aud-a'))
  const body = new PassThrough()
  const pending = app.inject({ method: 'POST', url: '/verify', headers: { 'content-type': 'application/json' }, payload: body })
  body.write('{"token":')
  await new Promise((resolve) => setTimeout(resolve, 20))

  const first = await reloadConfiguration(app, () => configFor([remote], { jwks: { defaultFreshnessSeconds: 301, unknownKidCooldownSeconds: 0 } }))
  t.equal(first.outcome, 'applied')
  t.comment(`retiring after the first reload: ${app.verifierSlot.retiring} (the request's lease, taken on arrival, holds the first generation)`)
  const second = app.verifier

  // The rest of the body: the handler runs now, on the second generation.
  hold = true
  published = jwksOf(k1, k2)
  body.end(JSON.stringify(token) + '}')
  await until(() => held === 1, 'the unknown-kid refresh of the request')

  hold = false
  const reload2 = await reloadConfiguration(app, () => configFor([remote], { jwks: { defaultFreshnessSeconds: 302, unknownKidCooldownSeconds: 0 } }))
  t.equal(reload2.outcome, 'applied')
  let secondClosed = false
  void reload2.retired.then(() => { secondClosed = true })
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.not(app.verifier, second)
  t.notOk(secondClosed, 'the Verifier the request is verifying on is not closed while the request runs')

  release()
  const res = await pending
  t.equal(res.statusCode, 200)
  t.comment(`JWKS fetches: ${calls}`)
})

t.test('a request verifying on the Verifier of one reload gets its answer through a second reload', async (t) => {
  const ISS_D = 'https://d.example.com'
  const kd = makeKey('ES256', { kid: 'kd' })
  const inline = { id: 'a', issuer: ISS, audiences: ['aud-a'], jwks: jwksOf(k1) }
  const discovered = { id: 'd', issuer: ISS_D, audiences: ['aud-d'] }
  let holdNext = false
  let held = 0
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const fetcher: FetchJson = async (url) => {
    if (holdNext) { holdNext = false; held++; await gate }
    const body = url.endsWith('/.well-known/openid-configuration') ? { issuer: ISS_D, jwks_uri: `${ISS_D}/jwks` } : jwksOf(kd)
    return { url, body, durationMs: 1 }
  }
  const app = await buildApp(configFor([inline]), { fetcher })
  t.teardown(() => app.close())
  await app.ready()

  const body = new PassThrough()
  const pending = app.inject({ method: 'POST', url: '/verify', headers: { 'content-type': 'application/json' }, payload: body })
  body.write('{"token":')
  await new Promise((resolve) => setTimeout(resolve, 20))

  // Reload 1 adds issuer d, whose discovery is slow: swapped in while d is still discovering (a new issuer does not block).
  holdNext = true
  const first = await reloadConfiguration(app, () => configFor([inline, discovered]), { readyTimeoutMs: 100 })
  t.equal(first.outcome, 'applied')
  t.equal(held, 1, 'the discovery of d under the first reload is held')
  // The request's body completes: its handler runs on the Verifier of reload 1 and waits for d's discovery.
  body.end(JSON.stringify(mint(kd, idTokenClaims(ISS_D, 'aud-d'))) + '}')
  await new Promise((resolve) => setTimeout(resolve, 20))

  // Reload 2 (any change of the Verifier's inputs): d's discovery is quick now. It closes reload 1's Verifier at once.
  const second = await reloadConfiguration(app, () => configFor([inline, discovered], { jwks: { defaultFreshnessSeconds: 301 } }), { readyTimeoutMs: 2000 })
  t.equal(second.outcome, 'applied')
  let retired = false
  void second.retired.then(() => { retired = true })
  const fresh = await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(kd, idTokenClaims(ISS_D, 'aud-d')) } })
  t.equal(fresh.statusCode, 200, 'the service verifies d\'s tokens now')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(retired, false, 'reload 1\'s Verifier is not closed while the request verifies on it')

  release()
  const res = await pending
  t.equal(res.statusCode, 200, `the request in flight gets its answer (got ${res.statusCode} ${res.json().code as string})`)
  await second.retired
  t.pass('and it is closed once the request is done')
})
