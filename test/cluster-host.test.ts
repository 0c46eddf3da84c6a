/**
 * The workers of one host (WORKERS=N) act as one service: a worker that replaces one that died while a reload
 * is under way ends up with the reloaded configuration (src/cluster-start-config.ts), and /readyz answers for
 * the host, whichever worker takes the connection (src/cluster-readiness.ts).
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { startJwksServer } from './helpers/jwks-server.js'
import { startNode } from './helpers/node-process.js'
import { tempDir } from './helpers/temp-dir.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

const ISS = 'https://cluster.example.com'
const key = makeKey('ES256')
// Process tests: each starts node with the TypeScript loader, several seconds apiece on a busy machine.
t.setTimeout(240_000)

t.test('a worker replaced while a reload is under way ends up with the reloaded configuration', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(key) })
  t.teardown(() => idp.close())
  // Issuer b's keys come only once the replacement worker has started: until then the reload is under way (the
  // other worker waits for them, up to twice the 15 s fetch timeout), so the replacement asks during the reload.
  let release = (): void => {}
  idp.set({ json: jwksOf(key), hold: new Promise<void>((resolve) => { release = resolve }) }, '/slow')
  const settings = { server: { host: '127.0.0.1', port: 0, logLevel: 'info', shutdownGraceSeconds: 2 }, loadShedding: { enabled: false }, fetch: { timeoutMs: 15_000 } }
  const a = { id: 'a', issuer: 'https://a.example.com', audiences: ['aud'], jwksUri: idp.jwksUrl }
  const b = { id: 'b', issuer: 'https://b.example.com', audiences: ['aud'], jwksUri: `${idp.url}/slow` }
  const dir = tempDir(t, { 'config.yaml': stringify({ ...settings, issuers: [a] }) })
  const server = startNode('src/server.ts', ['--config', join(dir, 'config.yaml')], { env: { WORKERS: '2' } })
  t.teardown(() => server.kill())
  const pids = (await server.waitForLine(/started 2 workers \(pids (\d+), (\d+)\)/, { timeoutMs: 60_000 })).slice(1).map(Number)
  await server.waitForLine(/Server listening at[\s\S]*Server listening at/, { timeoutMs: 60_000 })

  writeFileSync(join(dir, 'config.yaml'), stringify({ ...settings, issuers: [a, b] }))
  server.child.kill('SIGHUP')
  await server.waitForLine(/reloading the configuration[\s\S]*reloading the configuration/)
  const mark = server.output().length
  process.kill(pids[0] as number, 'SIGKILL') // while the other worker still waits for b's keys
  await server.waitForLine(/started replacement \d+/, { from: mark })
  const listening = await server.waitForLine(/"issuers":(\[[^\]]*\])[^\n]*"msg":"oidc-verifier listening"/, { from: mark, timeoutMs: 60_000 })
  // Started from the text before the reload (the other worker had not finished it), then reloaded too, after
  // starting. Lines carry no pid, so the reloads are counted: the other worker's and the replacement's.
  t.same(JSON.parse(listening[1] as string), ['a'], 'the replacement started while the reload was under way')
  release()
  await server.waitForLine(/"msg":"configuration reloaded"[\s\S]*"msg":"configuration reloaded"/, { from: mark, timeoutMs: 60_000 })
  const reloaded = [...server.output().slice(mark).matchAll(/"issuers":(\[[^\]]*\])[^\n]*"msg":"configuration reloaded"/g)].map((m) => JSON.parse(m[1] as string))
  t.same(reloaded, [['a', 'b'], ['a', 'b']], 'both workers, the replacement too, run a and b')
})

t.test('WORKERS=2: /readyz is 503 from every worker while one of them has no keys, and 200 once all have', async (t) => {
  const { createServer } = await import('node:http')
  let fetches = 0
  let healthy = false
  // The first fetch gets the keys, later ones fail until `healthy`: one worker ready, the other not.
  const idp = createServer((_req, res) => {
    if (fetches++ === 0 || healthy) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwksOf(key)))
    else res.writeHead(500).end()
  })
  await new Promise<void>((resolve) => idp.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { idp.closeAllConnections(); idp.close(() => resolve()) }))
  const jwksUri = `http://127.0.0.1:${(idp.address() as { port: number }).port}/jwks`
  const dir = tempDir(t, {
    // A short backoff: the failing worker retries every second or two, so it recovers soon after `healthy`.
    'config.yaml': stringify({ server: { host: '127.0.0.1', port: 0, logLevel: 'info', shutdownGraceSeconds: 2 }, loadShedding: { enabled: false }, jwks: { backoffMaxSeconds: 2 }, issuers: [{ id: 'r', issuer: ISS, audiences: ['aud'], jwksUri }] })
  })
  const server = startNode('src/server.ts', ['--config', join(dir, 'config.yaml')], { env: { WORKERS: '2' } })
  t.teardown(() => server.kill())
  const base = (await server.waitForLine(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/, { timeoutMs: 60_000 }))[1] as string
  await server.waitForLine(/"msg":"JWKS [^"]+ loaded"[\s\S]*"msg":"JWKS fetch [^"]+ failed|"msg":"JWKS fetch [^"]+ failed[\s\S]*"msg":"JWKS [^"]+ loaded"/, { timeoutMs: 30_000 })
  // Each on a new connection, so that both workers answer; the count reaches them within about a second.
  const probe = async (): Promise<{ status: number, workers: unknown }> => {
    const res = await fetch(`${base}/readyz`, { headers: { connection: 'close' } })
    return { status: res.status, workers: (await res.json() as { workers?: unknown }).workers }
  }
  const settle = async (status: number, ready: number): Promise<Array<{ status: number, workers: unknown }>> => {
    const settled = (s: { status: number, workers: unknown }): boolean => s.status === status && JSON.stringify(s.workers) === JSON.stringify({ ready, total: 2 })
    for (let i = 0; i < 40; i++) {
      const seen = await Promise.all(Array.from({ length: 10 }, probe))
      if (seen.every(settled)) return seen
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    return await Promise.all(Array.from({ length: 10 }, probe))
  }
  const notReady = await settle(503, 1)
  t.same(new Set(notReady.map((s) => s.status)), new Set([503]), 'every probe: 503, whichever worker answers')
  t.ok(notReady.every((s) => JSON.stringify(s.workers) === '{"ready":1,"total":2}'), 'one of two workers ready')
  healthy = true
  const ready = await settle(200, 2)
  t.same(new Set(ready.map((s) => s.status)), new Set([200]), 'once the other has its keys (its retry): 200 from every worker')
  t.ok(ready.every((s) => JSON.stringify(s.workers) === '{"ready":2,"total":2}'))
})
