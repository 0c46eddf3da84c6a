/**
 * /readyz and several issuers (server.readiness). With `any-issuer` (the default) one provider that is down
 * does not take the process out of the load balancer, and every other provider's users with it: its own tokens
 * get 503 keys_unavailable, on every replica alike. The process is not ready before every issuer has been
 * tried, so that no request arrives while the keys it needs are still loading, nor while no issuer has keys.
 * With `every-issuer` it is ready only while every issuer has usable keys.
 */
import t from 'tap'
import type { FetchJsonResult } from '../src/net/fetch-json.js'
import { buildApp } from '../src/app.js'
import { issuersReady } from '../src/http/routes/health.js'
import type { IssuerStatus } from '../src/core/verifier.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const es = makeKey('ES256')
const INLINE = 'https://inline.example.com'
const REMOTE = 'https://remote.example.com'
const JWKS_URI = 'https://remote.example.com/jwks'

/** A fetcher whose answers the test gives: each fetch waits until `settle` is called. */
function heldFetcher (): { fetcher: (url: string) => Promise<FetchJsonResult>, fetches: () => number, settle: (outcome: 'fail' | 'keys') => void } {
  let waiting: Array<{ resolve: (r: FetchJsonResult) => void, reject: (e: Error) => void, url: string }> = []
  let count = 0
  return {
    fetcher: async (url) => await new Promise((resolve, reject) => { count++; waiting.push({ resolve, reject, url }) }),
    fetches: () => count,
    settle: (outcome) => {
      const now = waiting
      waiting = []
      for (const w of now) {
        if (outcome === 'fail') w.reject(Object.assign(new Error('connect ECONNREFUSED'), { kind: 'network' }))
        else w.resolve({ url: w.url, body: jwksOf(es), cacheControl: 'max-age=300', durationMs: 1 })
      }
    }
  }
}

const untilFetched = async (fetches: () => number): Promise<void> => {
  for (let i = 0; i < 500 && fetches() === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5))
}

for (const readiness of ['any-issuer', 'every-issuer'] as const) {
  t.test(`server.readiness: ${readiness}`, async (t) => {
    const held = heldFetcher()
    const config = configFor([
      { id: 'inline', issuer: INLINE, audiences: ['aud'], jwks: jwksOf(es) },
      { id: 'remote', issuer: REMOTE, audiences: ['aud'], jwksUri: JWKS_URI }
    ], { server: { readiness } })
    const app = await buildApp(config, { fetcher: held.fetcher as never })
    t.teardown(async () => { held.settle('fail'); await app.close() })
    await app.ready()
    await untilFetched(held.fetches)
    const ready = async (): Promise<number> => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode

    t.equal(await ready(), 503, 'not ready while an issuer has not been tried yet')
    held.settle('fail')
    for (let i = 0; i < 100 && app.verifier.status()[1]?.lastError === null; i++) await new Promise((resolve) => setTimeout(resolve, 5))
    t.equal(await ready(), readiness === 'any-issuer' ? 200 : 503, 'one provider down')
    const body = (await app.inject({ method: 'GET', url: '/readyz' })).json()
    t.match(body.issuers, [{ id: 'inline', ready: true }, { id: 'remote', ready: false, lastError: String }], 'the body says which issuer is down')
    const good = await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(es, idTokenClaims(INLINE, 'aud')) } })
    t.equal(good.statusCode, 200, 'the other provider\'s users are served')
  })
}

t.test('issuersReady', async (t) => {
  const status = (ready: boolean, lastError: string | null): IssuerStatus => ({
    id: 'x', issuer: 'https://x', ready, lastError, source: 'jwksUri', jwksUri: 'https://x/jwks', state: ready ? 'fresh' : 'missing', keyCount: ready ? 1 : 0, fetchedAt: null
  })
  const up = status(true, null)
  const down = status(false, 'connect ECONNREFUSED')
  const loading = status(false, null)
  t.equal(issuersReady([up, down], 'any-issuer'), true)
  t.equal(issuersReady([up, down], 'every-issuer'), false)
  t.equal(issuersReady([up, loading], 'any-issuer'), false, 'not before every issuer has been tried')
  t.equal(issuersReady([down, down], 'any-issuer'), false, 'not without one issuer with keys')
  t.equal(issuersReady([down], 'any-issuer'), false, 'one issuer: its keys, as with every-issuer')
  t.equal(issuersReady([up], 'any-issuer'), true)
  t.equal(issuersReady([up, up], 'every-issuer'), true)
  t.equal(issuersReady([{ ...up, state: 'stale' }, { ...down, state: 'expired', keyCount: 1 }], 'any-issuer'), true, 'expired keys count as tried')
})
