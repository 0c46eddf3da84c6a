/**
 * server.opsPort: /healthz, /readyz and /metrics on their own listener and not on the main one; /verify
 * on the main one only. In process (buildApp + buildOpsApp) and as the real process (src/server.ts),
 * which must also exit cleanly on SIGTERM with both listeners open.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApp } from '../src/app.js'
import { buildOpsApp } from '../src/ops-app.js'
import { closeOpsWithApp } from '../src/run.js'
import { configFor } from './helpers/config.js'
import { startNode } from './helpers/node-process.js'
import { parseMetrics, valueOf } from './helpers/prometheus.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]
const token = mint(key, idTokenClaims(ISS, 'aud'))
const KEY = 'ops-test-key-0123456789abcdef'

t.test('routes are split between the two listeners', async (t) => {
  const config = configFor(issuers, {
    server: { opsPort: 0 },
    callers: { keys: [{ id: 'svc', sha256: createHash('sha256').update(KEY).digest('hex') }] }
  })
  const app = await buildApp(config)
  const ops = await buildOpsApp(app, config)
  t.teardown(async () => { await ops.close(); await app.close() })

  for (const url of ['/healthz', '/readyz', '/metrics']) {
    const res = await app.inject({ method: 'GET', url, headers: { 'x-api-key': KEY } })
    t.equal(res.statusCode, 404, `${url} is not on the main port`)
    t.equal(res.json().code, 'not_found')
  }
  t.equal((await app.inject({ method: 'POST', url: '/verify', headers: { 'x-api-key': KEY }, payload: { token } })).statusCode, 200)

  t.equal((await ops.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
  const ready = await ops.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200)
  t.equal(ready.json().issuers[0].id, 'main')
  const metrics = await ops.inject({ method: 'GET', url: '/metrics' })
  t.equal(metrics.statusCode, 200, 'no caller key on the ops port')
  t.equal(valueOf(parseMetrics(metrics.body), 'oidc_verifier_verifications_total', { issuer: 'main', result: 'ok' }), 1, 'the main app\'s metrics')
  t.equal(valueOf(parseMetrics(metrics.body), 'oidc_verifier_http_requests_total', { route: '/verify', status: '200', caller: 'svc' }), 1)

  const verifyOnOps = await ops.inject({ method: 'POST', url: '/verify', payload: { token } })
  t.equal(verifyOnOps.statusCode, 404, '/verify is not on the ops port')
  t.equal(verifyOnOps.json().code, 'not_found')
  const postHealth = await ops.inject({ method: 'POST', url: '/healthz' })
  t.same([postHealth.statusCode, postHealth.json().code, postHealth.headers.allow], [405, 'method_not_allowed', 'GET, HEAD'], 'a method a route of the ops port does not take')
  const hostile = await ops.inject({ method: 'POST', url: '/metrics', headers: { 'content-type': 'application/json' }, payload: '{"a":'.repeat(1000) })
  t.ok(hostile.statusCode >= 400 && hostile.statusCode < 500, `a hostile body on the ops port is a 4xx (${hostile.statusCode})`)
  t.match(hostile.json(), { code: String, requestId: String })

  const badUrl = await ops.inject({ method: 'GET', url: '/metrics/%zz' })
  t.equal(badUrl.statusCode, 400, 'a malformed URL on the ops port')
  t.same(Object.keys(badUrl.json()).sort(), ['code', 'hint', 'message', 'requestId'], 'the service\'s error shape')
  t.match(badUrl.json(), { code: 'request_invalid', requestId: String })
  t.equal(badUrl.headers['x-request-id'], badUrl.json().requestId)

  // Request ids as on the main listener: a caller's safe X-Request-Id is echoed, an unsafe one replaced.
  const probe = await ops.inject({ method: 'GET', url: '/healthz', headers: { 'x-request-id': 'kubelet-probe.42' } })
  t.equal(probe.headers['x-request-id'], 'kubelet-probe.42', 'a caller\'s id is kept')
  const unsafe = await ops.inject({ method: 'GET', url: '/nope', headers: { 'x-request-id': 'a b<script>' } })
  t.not(unsafe.headers['x-request-id'], 'a b<script>')
  t.equal(unsafe.json().requestId, unsafe.headers['x-request-id'], 'an id of our own, in the answer too')
  t.notOk(badUrl.body.includes('%zz'), 'the URL is not echoed')
  const counted = parseMetrics((await ops.inject({ method: 'GET', url: '/metrics' })).body)
  t.equal(valueOf(counted, 'oidc_verifier_http_requests_total', { route: 'none', status: '400', caller: 'none' }), 1, 'and counted')
})

t.test('shutdown: the ops listener closes when the main one stops accepting, not after the grace period', async (t) => {
  const config = configFor(issuers, { server: { host: '127.0.0.1', port: 0, opsPort: 0 } })
  const app = await buildApp(config)
  // A request in flight on the main listener holds its close (the grace period) until released.
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  let arrived: () => void = () => {}
  const inFlight = new Promise<void>((resolve) => { arrived = resolve })
  app.get('/test-slow', async () => { arrived(); await held; return { done: true } })
  const ops = await buildOpsApp(app, config)
  closeOpsWithApp(app, ops) // as runService does
  t.teardown(async () => { release(); await app.close() })
  await app.listen({ host: '127.0.0.1', port: 0 })
  await ops.listen({ host: '127.0.0.1', port: 0 })
  const address = (instance: typeof app): string => {
    const a = instance.addresses()[0]
    if (a === undefined || typeof a === 'string') throw new Error('not listening on TCP')
    return `http://127.0.0.1:${a.port}`
  }
  const readyz = `${address(ops)}/readyz`
  t.equal((await fetch(readyz)).status, 200, 'ready before shutdown')

  // Connection: close, or its kept-alive connection would hold the close until keepAliveTimeoutMs.
  const slow = fetch(`${address(app)}/test-slow`, { headers: { connection: 'close' } })
  await inFlight
  const closed = app.close()
  // The probe must fail (connection refused, or a 503) while the request on the main listener is in flight.
  const deadline = Date.now() + 3000
  let last: number | string = 200
  while (Date.now() < deadline) {
    last = await fetch(readyz, { headers: { connection: 'close' } }).then((res) => res.status, (err: Error) => err.message)
    if (last !== 200) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.not(last, 200, `/readyz on the ops port is not 200 once shutdown starts (${last})`)
  release()
  t.equal((await slow).status, 200, 'the request in flight finished')
  await closed
  t.equal(ops.server.listening, false, 'the ops listener is closed')
})

t.test('opsPort must differ from port', async (t) => {
  t.throws(() => configFor(issuers, { server: { port: 9000, opsPort: 9000 } }), /server\.opsPort: expected a port other than server\.port \(9000\)/)
})

t.test('the process serves both listeners and stops on SIGTERM', async (t) => {
  // A folder of its own (not t.testdir): two test runs on one machine must not share the file.
  const dir = mkdtempSync(join(tmpdir(), 'oidc-verifier-ops-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const configPath = join(dir, 'config.json')
  // Load shedding off: a busy test machine must not turn these requests into 503s.
  writeFileSync(configPath, JSON.stringify({ server: { port: 0, opsPort: 0, logLevel: 'info', shutdownGraceSeconds: 5 }, loadShedding: { enabled: false }, issuers }))
  const server = startNode('src/server.ts', ['--config', configPath])
  t.teardown(() => { server.kill() })
  const ops = (await server.waitForLine(/"listener":"ops".*"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/, { timeoutMs: 90_000 }))[1] as string
  const main = (await server.waitForLine(/^(?!.*"listener":"ops").*"msg":"Server listening at (http:\/\/127\.0\.0\.1:\d+)"/m))[1] as string
  t.not(main, ops)
  const get = async (url: string, init?: RequestInit): Promise<number> => (await fetch(url, init)).status
  t.equal(await get(`${ops}/healthz`), 200)
  t.equal(await get(`${ops}/readyz`), 200)
  t.equal(await get(`${ops}/metrics`), 200)
  t.equal(await get(`${main}/healthz`), 404)
  t.equal(await get(`${main}/metrics`), 404)
  const post = { method: 'POST', body: JSON.stringify({ token }), headers: { 'content-type': 'application/json' } }
  t.equal(await get(`${ops}/verify`, post), 404)
  const verified = await fetch(`${main}/verify`, post)
  t.equal(verified.status, 200, JSON.stringify(await verified.json()))

  server.child.kill('SIGTERM')
  t.equal((await server.exited).code, 0, 'exits 0 on SIGTERM')
  t.notOk(server.output().includes(token), 'the token is not logged')
})
