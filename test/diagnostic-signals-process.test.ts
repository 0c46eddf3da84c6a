/**
 * Signals that are not stops (src/stop-signals.ts): SIGUSR2, which node --heapsnapshot-signal takes and tools
 * send to a process they do not mean to end, leaves the service running (in cluster mode the primary passes it on
 * to its workers and nothing in flight is cut); SIGQUIT keeps its default action, so the process dies by the
 * signal instead of a clean exit 0 that would hide it from a supervisor. No signal is left to close-with-grace
 * but SIGHUP without a reload.
 */
import t, { type Test } from 'tap'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { stringify } from 'yaml'
import { NOT_GRACEFUL_SIGNALS } from '../src/stop-signals.js'
import { startJwksServer } from './helpers/jwks-server.js'
import { startNode } from './helpers/node-process.js'
import { tempDir } from './helpers/temp-dir.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

t.setTimeout(240_000)
const ISS = 'https://signals.example.com'
const key = makeKey('ES256')
const stranger = makeKey('ES256') // an unknown kid: its answer waits for a (slow) JWKS refresh

t.test('close-with-grace is left no signal of its list but SIGHUP', async (t) => {
  // Its list is internal; read from the installed version, so that an update adding a signal fails here.
  const { signalEvents } = createRequire(import.meta.url)('close-with-grace/events/signal.events.js') as { signalEvents: string[] }
  t.same(signalEvents.filter((s) => s !== 'SIGHUP' && !(NOT_GRACEFUL_SIGNALS as readonly string[]).includes(s)), [])
})

async function service (t: Test, workers?: number): Promise<{ idp: Awaited<ReturnType<typeof startJwksServer>>, server: ReturnType<typeof startNode>, base: string }> {
  const idp = await startJwksServer({ json: jwksOf(key) })
  t.teardown(() => idp.close())
  const dir = tempDir(t, {
    'config.yaml': stringify({
      server: { host: '127.0.0.1', port: 0, logLevel: 'info', shutdownGraceSeconds: 8 },
      loadShedding: { enabled: false },
      jwks: { unknownKidCooldownSeconds: 0 },
      issuers: [{ id: 's', issuer: ISS, audiences: ['aud'], jwksUri: idp.jwksUrl }]
    })
  })
  const server = startNode('src/server.ts', ['--config', join(dir, 'config.yaml')], workers === undefined ? {} : { env: { WORKERS: String(workers) } })
  t.teardown(() => server.kill())
  if (workers !== undefined) {
    await server.waitForLine(/started \d+ workers/, { timeoutMs: 60_000 })
    server.child.kill('SIGUSR2') // the workers are loading the service: no handler of theirs yet
  }
  const base = (await server.waitForLine(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/, { timeoutMs: 60_000 }))[1] as string
  if (workers !== undefined) await server.waitForLine(/Server listening at[\s\S]*Server listening at/, { timeoutMs: 60_000 })
  return { idp, server, base }
}

const stillRunning = async (server: ReturnType<typeof startNode>): Promise<unknown> =>
  await Promise.race([server.exited, sleep(1500).then(() => 'running')])

t.test('one process: SIGUSR2 is said and ignored; SIGQUIT kills by its default action', async (t) => {
  const { server, base } = await service(t)
  server.child.kill('SIGUSR2')
  await server.waitForLine(/SIGUSR2 received: it does not stop the service/)
  t.equal(await stillRunning(server), 'running', 'still running after SIGUSR2')
  t.equal((await fetch(`${base}/healthz`)).status, 200)
  t.notMatch(server.output(), /shutting down/)
  server.child.kill('SIGQUIT')
  t.same(await server.exited, { code: null, signal: 'SIGQUIT' }, 'dies by SIGQUIT, not a graceful exit 0')
})

t.test('WORKERS=2: SIGUSR2 to the primary while the workers start, then while they serve: it reaches them and cuts nothing', async (t) => {
  const { idp, server, base } = await service(t, 2)
  t.notMatch(server.output(), /exited \(SIGUSR2\)|stopping/, 'sent while the workers were starting: none was ended by it')
  idp.set({ json: jwksOf(key), delayMs: 2000 })
  idp.resetCounts()
  const answer = fetch(`${base}/verify`, { method: 'POST', headers: { authorization: `Bearer ${mint(stranger, idTokenClaims(ISS, 'aud'))}` } })
    .then((r) => r.status, (err: Error) => `failed: ${err.message}`)
  for (let i = 0; i < 500 && idp.requests() === 0; i++) await sleep(20)
  const mark = server.output().length
  server.child.kill('SIGUSR2')
  await server.waitForLine(/SIGUSR2: passed on to every worker/, { from: mark })
  await server.waitForLine(/SIGUSR2 received[\s\S]*SIGUSR2 received/, { from: mark })
  t.equal(await stillRunning(server), 'running', 'the primary is still running')
  t.equal(await answer, 401, 'the request in flight gets its answer (an unknown kid)')
  t.equal((await fetch(`${base}/healthz`)).status, 200)
})
