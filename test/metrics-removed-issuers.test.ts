/**
 * Label series of issuers a reload removed are dropped once the replaced Verifier is retired: the scrape-time
 * gauges always did (reset() at collect), and the counters and histograms (verifications, their durations, JWKS
 * fetches and their durations, stale keys, the token cache) do too, so /metrics does not grow with every issuer
 * id ever configured; so are those of callers a reload removed. The issuers and callers kept keep their counts.
 */
import { createHash } from 'node:crypto'
import t, { type Test } from 'tap'
import { buildApp } from '../src/app.js'
import { reloadConfiguration } from '../src/reload.js'
import { configFor } from './helpers/config.js'
import { startJwksServer } from './helpers/jwks-server.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

t.test('series of issuers removed by a reload do not accumulate in /metrics', async (t) => {
  const key = makeKey('ES256')
  const idp = await startJwksServer({ json: jwksOf(key), cacheControl: 'max-age=300' })
  t.teardown(() => idp.close())
  const config = (n: number) => {
    idp.set({ json: jwksOf(key), cacheControl: 'max-age=300' }, `/jwks-${n}`)
    return configFor([
    { id: 'kept', issuer: 'https://kept.example.com', audiences: ['aud'], jwks: jwksOf(key) },
    // A JWKS URL of its own (the same keys): a reload takes over the key sets of URLs it keeps, and each tenant's
    // fetch must be counted under its id.
    { id: `tenant-${n}`, issuer: `https://t${n}.example.com`, audiences: ['aud'], jwksUri: `${idp.url}/jwks-${n}` }
    ], { loadShedding: { enabled: false }, rateLimit: { enabled: false } })
  }
  const app = await buildApp(config(0))
  t.teardown(() => app.close())
  await app.ready()
  const keptToken = mint(key, idTokenClaims('https://kept.example.com', 'aud'))
  for (let i = 0; i < 3; i++) t.equal((await app.inject({ method: 'POST', url: '/verify', payload: { token: keptToken } })).statusCode, 200)
  const RELOADS = 100
  for (let n = 1; n <= RELOADS; n++) {
    const result = await reloadConfiguration(app, () => config(n))
    t.equal(result.outcome, 'applied', `reload ${n}`, { diagnostic: false })
    await result.retired
    const res = await app.inject({ method: 'POST', url: '/verify', payload: { token: mint(key, idTokenClaims(`https://t${n}.example.com`, 'aud')) } })
    t.equal(res.statusCode, 200, `token of tenant-${n}`, { diagnostic: false })
  }
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  const removed = text.split('\n').filter((l) => /issuer="tenant-(\d+)"/.exec(l) !== null && !l.includes(`issuer="tenant-${RELOADS}"`))
  const ids = new Set(removed.map((l) => /issuer="(tenant-\d+)"/.exec(l)?.[1]))
  t.match(text, /^oidc_verifier_verifications_total\{issuer="kept",result="ok"\} 3$/m, 'the issuer kept through every reload keeps its counts')
  t.equal(ids.size, 0, `no series of issuers a reload removed (${[...new Set(removed.map((l) => l.split('{')[0]))].join(', ')})`)
  for (const name of ['oidc_verifier_verifications_total', 'oidc_verifier_jwks_fetches_total', 'oidc_verifier_jwks_fetch_duration_seconds_count', 'oidc_verifier_token_cache_misses_total']) {
    t.match(text, new RegExp(`^${name}\\{[^}]*issuer="tenant-${RELOADS}"`, 'm'), `${name}: the current issuer's series is there`)
  }
})

t.test('series of callers removed by a reload are dropped too', async (t) => {
  const { app, key, KEY_A, KEY_B, reloadToCallerB } = await appWithTwoCallers(t)
  const token = mint(key, idTokenClaims('https://main.example.com', 'aud'))
  for (const apiKey of [KEY_A, KEY_B]) {
    t.equal((await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': apiKey }, payload: { token } })).statusCode, 200)
  }
  const result = await reloadToCallerB()
  t.equal(result.outcome, 'applied')
  await result.retired
  const text = (await app.inject({ method: 'GET', url: '/metrics', headers: { 'x-api-key': KEY_B } })).body
  t.notMatch(text, /caller="caller-a"/, 'the removed caller\'s series are gone')
  t.match(text, /^oidc_verifier_http_requests_total\{route="\/verify",method="POST",status="200",caller="caller-b"\} 1$/m, 'the kept caller keeps its count')
})

t.test('an issuer removed, then configured again before the first reload\'s Verifier retires, keeps its series', async (t) => {
  const key = makeKey('ES256')
  const kept = { id: 'kept', issuer: 'https://kept.example.com', audiences: ['aud'], jwks: jwksOf(key) }
  const x = { id: 'x', issuer: 'https://x.example.com', audiences: ['aud'], jwks: jwksOf(key) }
  const opts = { loadShedding: { enabled: false }, rateLimit: { enabled: false } }
  const app = await buildApp(configFor([kept, x], opts))
  t.teardown(() => app.close())
  await app.ready()
  const xToken = mint(key, idTokenClaims('https://x.example.com', 'aud'))
  t.equal((await app.inject({ method: 'POST', url: '/verify', payload: { token: xToken } })).statusCode, 200)

  // A request still running on the first generation (a slow JWKS fetch, a slow client): it holds its lease.
  const lease = app.verifierSlot.lease()
  const first = await reloadConfiguration(app, () => configFor([kept], opts)) // x removed (by mistake)
  const second = await reloadConfiguration(app, () => configFor([kept, x], opts)) // x back
  t.equal(first.outcome, 'applied')
  t.equal(second.outcome, 'applied')
  await second.retired
  for (let i = 0; i < 2; i++) t.equal((await app.inject({ method: 'POST', url: '/verify', payload: { token: xToken } })).statusCode, 200)
  const before = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(before, /^oidc_verifier_verifications_total\{issuer="x",result="ok"\} \d+$/m, 'x is counted before the old request ends')

  app.verifierSlot.release(lease) // the old request ends: the first generation retires
  await first.retired
  const after = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(after, /^oidc_verifier_verifications_total\{issuer="x",result="ok"\} \d+$/m, 'x (configured, just verified) is still counted')
})

t.test('a request of a removed caller in flight at the reload does not bring its series back', async (t) => {
  const { connect } = await import('node:net')
  const { app, key, KEY_A, KEY_B, reloadToCallerB } = await appWithTwoCallers(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }

  // caller-a's request is authenticated (its headers are in), its body still arriving when the reload removes caller-a.
  const body = JSON.stringify({ token: mint(key, idTokenClaims('https://main.example.com', 'aud')) })
  const socket = connect(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  let answer = ''
  socket.on('data', (d: Buffer) => { answer += d.toString('latin1') })
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write(`POST /verify HTTP/1.1\r\nhost: localhost\r\nx-api-key: ${KEY_A}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body.slice(0, 10)}`)
  await new Promise((resolve) => setTimeout(resolve, 100))
  const result = await reloadToCallerB()
  t.equal(result.outcome, 'applied')
  await result.retired
  socket.write(body.slice(10))
  for (let i = 0; i < 200 && !answer.includes('\r\n\r\n'); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.match(answer, /^HTTP\/1\.1 200 /, 'the request, authenticated before the reload, is answered')

  const text = (await app.inject({ method: 'GET', url: '/metrics', headers: { 'x-api-key': KEY_B } })).body
  t.notMatch(text, /caller="caller-a"/, 'no series of the removed caller until the next reload')
  t.equal((await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': KEY_B }, payload: { token: mint(key, idTokenClaims('https://main.example.com', 'aud')) } })).statusCode, 200)
  const kept = (await app.inject({ method: 'GET', url: '/metrics', headers: { 'x-api-key': KEY_B } })).body
  t.match(kept, /^oidc_verifier_http_requests_total\{route="\/verify",method="POST",status="200",caller="caller-b"\} 1$/m, 'a configured caller is counted')
})

/** An app with two callers, caller-a and caller-b, and a reload that keeps only caller-b. */
async function appWithTwoCallers (t: Test) {
  const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex')
  const key = makeKey('ES256')
  const KEY_A = 'ka_0123456789abcdef0123456789abcdef'
  const KEY_B = 'kb_0123456789abcdef0123456789abcdef'
  const config = (callers: Array<{ id: string, sha256: string }>) => configFor([
    { id: 'main', issuer: 'https://main.example.com', audiences: ['aud'], jwks: jwksOf(key) }
  ], { loadShedding: { enabled: false }, callers: { keys: callers } })
  const app = await buildApp(config([{ id: 'caller-a', sha256: sha256(KEY_A) }, { id: 'caller-b', sha256: sha256(KEY_B) }]))
  t.teardown(() => app.close())
  const reloadToCallerB = async () => await reloadConfiguration(app, () => config([{ id: 'caller-b', sha256: sha256(KEY_B) }]))
  return { app, key, KEY_A, KEY_B, reloadToCallerB }
}
