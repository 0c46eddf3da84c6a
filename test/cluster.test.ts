/**
 * WORKERS=N runs N workers behind one port (node:cluster): all of them serve, SIGTERM stops them all with
 * exit 0, a dead worker is replaced, workers that keep dying stop the primary with exit 1, and a bad WORKERS
 * value or configuration fails before anything forks, a listener that cannot open at once.
 * test/cluster-host.test.ts: reload and readiness across the workers.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { stringify } from 'yaml'
import { MAX_RESTARTS_PER_MINUTE, parseWorkers } from '../src/cluster-primary.js'
import { ROOT, runNode, startNode } from './helpers/node-process.js'
import { tempDir } from './helpers/temp-dir.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://cluster.example.com'
const key = makeKey('ES256')
// Process tests: each starts node with the TypeScript loader, several seconds apiece on a busy machine.
t.setTimeout(240_000)

t.test('parseWorkers', async (t) => {
  t.equal(parseWorkers(undefined, 8), 1)
  t.equal(parseWorkers('', 8), 1)
  t.equal(parseWorkers('auto', 8), 8)
  t.equal(parseWorkers('3', 8), 3)
  for (const bad of ['0', '-1', '1.5', 'many', '1000', '2 ']) t.ok(parseWorkers(bad, 8) instanceof Error, bad)
})

t.test('two workers serve one port and stop together on SIGTERM; the primary never loads the service', async (t) => {
  const dir = tempDir(t, {
    'config.yaml': stringify({ server: { host: '127.0.0.1', port: 0, logLevel: 'info', shutdownGraceSeconds: 2 }, loadShedding: { enabled: false }, issuers: [{ id: 'c', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }] })
  })
  // The primary writes the scripts it parsed to primary-scripts.txt as it exits.
  const record = `--import=${pathToFileURL(join(ROOT, 'test/helpers/record-parsed-scripts.mjs')).href}`
  const scripts = join(dir, 'primary-scripts.txt')
  const server = startNode('src/server.ts', ['--config', join(dir, 'config.yaml')], { env: { WORKERS: '2', NODE_OPTIONS: record, RECORD_PARSED_SCRIPTS: scripts } })
  t.teardown(() => server.kill())
  const first = await server.waitForLine(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/, { timeoutMs: 60_000 })
  const base = first[1] as string
  const at = (first.index ?? 0) + first[0].length
  const second = await server.waitForLine(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/, { from: at, timeoutMs: 60_000 })
  t.equal(second[1], base, 'both workers listen on the same port')
  // Each worker has half the cores (server.signatureChecks: auto): the thread pool only with two or more each.
  const expected = availableParallelism() / 2 >= 2 ? 'thread-pool' : 'event-loop'
  let from = 0
  for (const worker of [1, 2]) {
    const line = await server.waitForLine(/"signatureChecks":"([a-z-]+)"[^\n]*"msg":"oidc-verifier listening"/, { from, timeoutMs: 60_000 })
    t.equal(line[1], expected, `worker ${worker} checks signatures where its share of the ${availableParallelism()} cores says`)
    from += (line.index ?? 0) + line[0].length
  }
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  const statuses = await Promise.all(Array.from({ length: 20 }, async () => (await fetch(`${base}/verify`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status))
  t.same(new Set(statuses), new Set([200]))

  // A worker that dies is replaced, and the port keeps being served.
  const pids = (await server.waitForLine(/started 2 workers \(pids (\d+), (\d+)\)/)).slice(1).map(Number)
  const before = server.output().length
  process.kill(pids[0] as number, 'SIGKILL')
  await server.waitForLine(new RegExp(`worker ${pids[0]} exited \\(SIGKILL\\); started replacement \\d+`), { from: before })
  await server.waitForLine(/Server listening at/, { from: before, timeoutMs: 60_000 })
  t.equal((await fetch(`${base}/verify`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status, 200, 'still served after a worker died')
  server.child.kill('SIGTERM')
  const { code } = await server.exited
  t.equal(code, 0, 'the primary exits 0 after its workers')
  t.match(server.output(), /SIGTERM: stopping workers/)

  // The primary only forks, relays and collects: the service (src/run.ts, src/app.ts, Fastify) is for workers.
  const parsed = readFileSync(scripts, 'utf8').split('\n')
  t.ok(parsed.some((url) => url.endsWith('/dist/cluster-primary.js')), 'the record holds the primary\'s own modules')
  t.same(parsed.filter((url) => /\/dist\/(run|app)\.js$|\/node_modules\/fastify\//.test(url)), [], 'not the service\'s')
})

t.test('workers that keep dying: the primary stops after MAX_RESTARTS_PER_MINUTE replacements and exits 1, not 0', async (t) => {
  const result = await runNode('test/helpers/crash-loop-primary.ts', [], { timeoutMs: 45_000 })
  t.equal(result.signal, null, 'the primary stopped by itself (not killed at the time limit)')
  t.equal((result.stderr.match(/exited \(3\); started replacement \d+/g) ?? []).length, MAX_RESTARTS_PER_MINUTE, `${MAX_RESTARTS_PER_MINUTE} replacements`)
  t.match(result.stderr, /too many restarts in a minute, stopping/)
  t.equal(result.code, 1, 'a crash loop exits 1: a supervisor must see a failure, not a clean stop')
})

t.test('workers that die before the service ever started: the primary stops at once and exits 1', async (t) => {
  const result = await runNode('test/helpers/crash-loop-primary.ts', [], { timeoutMs: 45_000, env: { CRASH_BEFORE_LISTENING: '1' } })
  t.equal(result.code, 1)
  t.match(result.stderr, /exited \(3\) before the service ever started \(all its listeners open\); stopping/)
  t.notMatch(result.stderr, /started replacement/, 'no replacement: it would die the same way')
})

t.test('a port in use with WORKERS=2: one line that names the setting, exit 1', async (t) => {
  const { createServer } = await import('node:net')
  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => taken.close(() => resolve())))
  const port = String((taken.address() as { port: number }).port)
  const result = await runNode('src/server.ts', [], { timeoutMs: 60_000, env: { WORKERS: '2', OIDC_ISSUER: ISS, OIDC_AUDIENCE: 'aud', HOST: '127.0.0.1', PORT: port } })
  t.equal(result.code, 1)
  t.match(result.stderr, /EADDRINUSE[^\n]*set server\.port \(PORT\), or server\.opsPort to a free one/)
  t.ok((result.stderr.match(/EADDRINUSE/g) ?? []).length <= 2, 'at most one line per worker started')
  t.notMatch(result.stderr, /started replacement/)

  // The ops port taken: the main port listens first, but the service has not started until both do.
  const dir = tempDir(t, { 'config.yaml': stringify({ server: { host: '127.0.0.1', port: 0, opsPort: Number(port) }, loadShedding: { enabled: false }, issuers: [{ id: 'c', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }] }) })
  const ops = await runNode('src/server.ts', ['--config', join(dir, 'config.yaml')], { timeoutMs: 60_000, env: { WORKERS: '2' } })
  t.equal(ops.code, 1)
  t.match(ops.stderr, /EADDRINUSE/)
  t.notMatch(ops.stderr, /started replacement/, 'the ops port too: no crash loop')
})

t.test('an invalid WORKERS value or configuration fails before forking', async (t) => {
  const bad = await runNode('src/server.ts', [], { env: { WORKERS: 'lots', OIDC_ISSUER: ISS, OIDC_AUDIENCE: 'aud' } })
  t.equal(bad.code, 2)
  t.match(bad.stderr, /WORKERS: expected a whole number/)
  const invalid = await runNode('src/server.ts', [], { env: { WORKERS: '2', OIDC_ISSUER: 'http://not-loopback.example.com', OIDC_AUDIENCE: 'aud' } })
  t.equal(invalid.code, 2)
  t.match(invalid.stderr, /OIDC_ISSUER/)
  t.notMatch(invalid.stderr, /started 2 workers/)
})
