/**
 * Revocations with WORKERS=2 and the memory store: a revocation made through one worker reaches the other
 * through the cluster primary (src/revocation/cluster-relay.ts), cached tokens included, and a worker that
 * replaces a dead one starts with the primary's copy.
 */
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { stringify } from 'yaml'
import { startNode } from './helpers/node-process.js'
import { tempDir } from './helpers/temp-dir.js'
import { idTokenClaims, jwksOf, makeKey, mint, nowSeconds } from './helpers/tokens.js'

const ISS = 'https://cluster-revocations.example.com'
const key = makeKey('ES256')
const REVOKER_KEY = 'revoker-key-0123456789abcdef'
const APP_KEY = 'app-key-0123456789abcdef'
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

interface Answer { status: number, code: unknown, worker: string }

/** One request on a new connection, so that the primary hands it to the next worker (round robin). */
async function call (url: string, init: { method?: string, apiKey: string, bearer?: string, json?: unknown }): Promise<Answer> {
  const headers: Record<string, string> = { connection: 'close', 'x-api-key': init.apiKey }
  if (init.bearer !== undefined) headers.authorization = `Bearer ${init.bearer}`
  if (init.json !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(url, { method: init.method ?? 'POST', headers, body: init.json === undefined ? undefined : JSON.stringify(init.json) })
  const body = await res.json() as { code?: unknown }
  // Request ids are a per-process random prefix and a counter: the prefix tells the workers apart.
  const id = res.headers.get('x-request-id') ?? ''
  const worker = id.slice(0, id.lastIndexOf('-'))
  return { status: res.status, code: body.code ?? null, worker }
}

const configText = (revocation: object, audiences: string[]): string => stringify({
  server: { host: '127.0.0.1', port: 0, logLevel: 'info', shutdownGraceSeconds: 2 },
  loadShedding: { enabled: false },
  callers: { keys: [{ id: 'revoker', sha256: sha256(REVOKER_KEY), revoke: true }, { id: 'app', sha256: sha256(APP_KEY) }] },
  revocation,
  issuers: [{ id: 'c', issuer: ISS, audiences, jwks: jwksOf(key) }]
})

t.test('a revocation reaches every worker, and a replacement worker', async (t) => {
  const dir = tempDir(t, { 'config.yaml': configText({ enabled: true, store: 'memory' }, ['aud']) })
  const server = startNode('src/server.ts', ['--config', join(dir, 'config.yaml')], { env: { WORKERS: '2' } })
  t.teardown(() => server.kill())
  const pids = (await server.waitForLine(/started 2 workers \(pids (\d+), (\d+)\)/, { timeoutMs: 60_000 })).slice(1).map(Number)
  const first = await server.waitForLine(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/, { timeoutMs: 60_000 })
  const base = first[1] as string
  await server.waitForLine(/Server listening at/, { from: (first.index ?? 0) + first[0].length, timeoutMs: 60_000 })

  const issuedAt = nowSeconds() - 30
  const victim = mint(key, idTokenClaims(ISS, 'aud', { sub: 'victim', iat: issuedAt }))
  const bystander = mint(key, idTokenClaims(ISS, 'aud', { sub: 'bystander', iat: issuedAt }))
  const verifyMany = async (token: string, n: number): Promise<Answer[]> => {
    const answers: Answer[] = []
    for (let i = 0; i < n; i++) answers.push(await call(`${base}/verify`, { apiKey: APP_KEY, bearer: token }))
    return answers
  }

  // Before: both tokens verify on both workers, often enough to be in both workers' token caches.
  const before = await verifyMany(victim, 8)
  t.same(new Set(before.map((a) => a.status)), new Set([200]), 'the victim\'s token verifies before the revocation')
  const workers = new Set(before.map((a) => a.worker))
  t.equal(workers.size, 2, 'new connections reach both workers')

  const refused = await call(`${base}/revocations`, { apiKey: APP_KEY, json: { issuer: 'c', sub: 'victim' } })
  t.equal(refused.status, 403, 'a caller without revoke: true may not revoke')
  t.equal(refused.code, 'caller_not_permitted')
  const revoked = await call(`${base}/revocations`, { apiKey: REVOKER_KEY, json: { issuer: 'c', sub: 'victim' } })
  t.equal(revoked.status, 200, 'revoked through one worker')

  const after = await verifyMany(victim, 12)
  t.same(after.filter((a) => a.status !== 401 || a.code !== 'token_revoked'), [], 'every answer is 401 token_revoked')
  t.same(new Set(after.map((a) => a.worker)), workers, 'from both workers')
  const others = await verifyMany(bystander, 4)
  t.same(others.filter((a) => a.status !== 200), [], 'another user\'s token still verifies')

  // The file changes and is reloaded: revocation turned off (a restart-only setting: every worker keeps it on) and
  // a second audience (applied at once).
  writeFileSync(join(dir, 'config.yaml'), configText({ enabled: false }, ['aud', 'aud2']))
  const reloadMark = server.output().length
  server.child.kill('SIGHUP')
  const restartLine = /revocation\.enabled changed and needs a restart/
  const once = await server.waitForLine(restartLine, { from: reloadMark, timeoutMs: 30_000 })
  await server.waitForLine(restartLine, { from: (once.index ?? 0) + once[0].length, timeoutMs: 30_000 })
  const second = mint(key, idTokenClaims(ISS, 'aud2', { sub: 'bystander', iat: issuedAt }))
  t.same((await verifyMany(second, 4)).filter((a) => a.status !== 200), [], 'the new audience, on both workers')

  // The file is being edited (not valid) when a worker dies; its replacement starts with what the others run (the
  // text they applied, the start values of what waits for a restart), and asks the primary for the revocations
  // before it serves.
  writeFileSync(join(dir, 'config.yaml'), `${configText({ enabled: false }, ['aud'])}typo: true\n`)
  const mark = server.output().length
  process.kill(pids[0] as number, 'SIGKILL')
  await server.waitForLine(new RegExp(`worker ${pids[0]} exited \\(SIGKILL\\); started replacement \\d+`), { from: mark, timeoutMs: 30_000 })
  await server.waitForLine(/revocation\.enabled changed since the service started and needs a restart of the whole service/, { from: mark, timeoutMs: 30_000 })
  await server.waitForLine(/Server listening at/, { from: mark, timeoutMs: 60_000 })
  const replaced = await verifyMany(victim, 12)
  t.same(replaced.filter((a) => a.status !== 401 || a.code !== 'token_revoked'), [], 'after the replacement, still every answer is token_revoked')
  const newWorkers = [...new Set(replaced.map((a) => a.worker))].filter((w) => !workers.has(w))
  t.equal(newWorkers.length, 1, 'the replacement worker answered too')
  t.same((await verifyMany(bystander, 4)).filter((a) => a.status !== 200), [], 'another user\'s token still verifies on every worker')
  t.same((await verifyMany(second, 6)).filter((a) => a.status !== 200), [], 'and the new audience, the replacement included (not the file being edited)')

  server.child.kill('SIGTERM')
  t.equal((await server.exited).code, 0)
})
