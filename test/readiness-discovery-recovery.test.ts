/**
 * server.readiness: any-issuer and an issuer found by discovery that was down at start. When its discovery
 * succeeds at last, its keys are fetched from the discovered jwks_uri: meanwhile it has been tried (its last
 * attempt failed) and is still not ready, and the process stays ready on the other issuer's keys. It went
 * not ready for the whole fetch instead (up to fetch.timeoutMs), on every replica at about the same time:
 * discovery is retried on the same schedule everywhere.
 */
import t from 'tap'
import type { FetchJsonResult } from '../src/net/fetch-json.js'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

const es = makeKey('ES256')
const INLINE = 'https://inline.example.com'
const REMOTE = 'https://remote.example.com'
const JWKS_URI = 'https://remote.example.com/jwks'

t.test('any-issuer: an issuer whose discovery recovers stays tried while its keys load', async (t) => {
  const discoveries: Array<{ resolve: (r: FetchJsonResult) => void, reject: (e: Error) => void, url: string }> = []
  const jwksFetches: Array<{ resolve: (r: FetchJsonResult) => void, reject: (e: Error) => void, url: string }> = []
  const fetcher = async (url: string): Promise<FetchJsonResult> => await new Promise((resolve, reject) => {
    (url === JWKS_URI ? jwksFetches : discoveries).push({ resolve, reject, url })
  })
  const config = configFor([
    { id: 'inline', issuer: INLINE, audiences: ['aud'], jwks: jwksOf(es) },
    { id: 'remote', issuer: REMOTE, audiences: ['aud'] }
  ], { jwks: { backoffInitialSeconds: 1 } })
  const app = await buildApp(config, { fetcher: fetcher as never })
  t.teardown(async () => {
    for (const f of [...discoveries, ...jwksFetches]) f.reject(new Error('closing'))
    await app.close()
  })
  await app.ready()
  const until = async (what: () => boolean): Promise<void> => {
    for (let i = 0; i < 600 && !what(); i++) await new Promise((resolve) => setTimeout(resolve, 5))
  }
  const ready = async (): Promise<number> => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode

  await until(() => discoveries.length === 1)
  discoveries[0]?.reject(Object.assign(new Error('connect ECONNREFUSED'), { kind: 'network' }))
  await until(() => app.verifier.status()[1]?.lastError !== null)
  t.equal(await ready(), 200, 'the remote provider is down: ready on the inline issuer')

  // The retry of discovery succeeds; the JWKS fetch that follows is still running.
  await until(() => discoveries.length === 2)
  discoveries[1]?.resolve({ url: discoveries[1].url, body: { issuer: REMOTE, jwks_uri: JWKS_URI }, cacheControl: undefined, durationMs: 1 })
  await until(() => jwksFetches.length === 1)
  t.equal(discoveries.length, 2)
  t.equal(await ready(), 200, 'still ready while the recovering issuer\'s keys load')
  t.match(app.verifier.status()[1], { ready: false, lastError: String })

  jwksFetches[0]?.resolve({ url: JWKS_URI, body: jwksOf(es), cacheControl: 'max-age=300', durationMs: 1 })
  await until(() => app.verifier.status()[1]?.ready === true)
  t.match(app.verifier.status()[1], { ready: true, lastError: null })
  t.equal(await ready(), 200)
})
