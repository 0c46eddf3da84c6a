/**
 * Stop signals on the real process (src/stop-signals.ts, src/server.ts): a signal sent to the whole process
 * group (Ctrl-C, systemd's KillMode=control-group) reaches a cluster worker twice, directly and from the
 * primary, and the service alone twice when npm forwards it; neither copy may cut the graceful stop short.
 * A later repeat forces the stop (exit 1). A stop during start-up is logged and exits 0.
 */
import t, { type Test } from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { closeSync, constants, openSync, readdirSync, readFileSync, readlinkSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { stringify } from 'yaml'
import { REPEAT_WINDOW_MS } from '../src/stop-signals.js'
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js'
import { ROOT, startNode, type StartedProcess } from './helpers/node-process.js'
import { tempDir } from './helpers/temp-dir.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://stop-signals.example.com'
const key = makeKey('ES256')
// Process tests: each starts node with the TypeScript loader, several seconds apiece on a busy machine.
t.setTimeout(240_000)
/** Signed by a key the JWKS does not have: its check waits for a JWKS refresh, which the test makes slow. */
const stranger = makeKey('ES256')
const SLOW_JWKS_MS = 1500

function configFile (t: Test, jwksUrl: string, fetchTimeoutMs?: number): string {
  const dir = tempDir(t, {
    'config.yaml': stringify({
      server: { host: '127.0.0.1', port: 0, logLevel: 'info', shutdownGraceSeconds: 8 },
      loadShedding: { enabled: false },
      jwks: { unknownKidCooldownSeconds: 0 },
      ...(fetchTimeoutMs === undefined ? {} : { fetch: { timeoutMs: fetchTimeoutMs } }),
      issuers: [{ id: 's', issuer: ISS, audiences: ['aud'], jwksUri: jwksUrl }]
    })
  })
  return join(dir, 'config.yaml')
}

/** The JWKS server (its keys: `key`) and the service on it, as a process; both end with the test. */
async function startService (t: Test, workers?: number, fetchTimeoutMs?: number): Promise<{ idp: JwksServer, server: StartedProcess }> {
  const idp = await startJwksServer({ json: jwksOf(key) })
  t.teardown(() => idp.close())
  const server = startNode('src/server.ts', ['--config', configFile(t, idp.jwksUrl, fetchTimeoutMs)], workers === undefined ? {} : { env: { WORKERS: String(workers) } })
  t.teardown(() => server.kill())
  return { idp, server }
}

async function listening (server: StartedProcess, workers: number): Promise<string> {
  let from = 0
  let base = ''
  for (let i = 0; i < workers; i++) {
    const m = await server.waitForLine(/"msg":"oidc-verifier listening"/, { from, timeoutMs: 60_000 })
    from += (m.index ?? 0) + m[0].length
  }
  base = (await server.waitForLine(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/))[1] as string
  // The keys' first load runs after listening: the slow refresh below must be the unknown kid's.
  from = 0
  for (let i = 0; i < workers; i++) {
    const m = await server.waitForLine(/"reason":"warm"[^\n]*"msg":"JWKS [^"]+ loaded"/, { from, timeoutMs: 60_000 })
    from += (m.index ?? 0) + m[0].length
  }
  return base
}

/**
 * Starts a request whose answer waits for a slow JWKS refresh; resolves once that refresh has begun, with the
 * answer still to come (wrapped: an async function returning a promise would wait for it).
 */
async function requestInFlight (t: Test, base: string, idp: JwksServer, delayMs = SLOW_JWKS_MS): Promise<{ answer: Promise<number | string> }> {
  idp.set({ json: jwksOf(key), delayMs })
  idp.resetCounts()
  const token = mint(stranger, idTokenClaims(ISS, 'aud'))
  const answer = fetch(`${base}/verify`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
    .then((r) => r.status, (err: Error) => `failed: ${err.message}`)
  const deadline = Date.now() + 20_000
  while (idp.requests() === 0 && Date.now() < deadline) await sleep(20)
  t.ok(idp.requests() > 0, 'the request in flight waits for the JWKS refresh')
  return { answer }
}

/**
 * Whether process `pid` holds an established TCP connection on local port `port` (Linux: its socket
 * descriptors in /proc/PID/fd, matched with /proc/net/tcp): the worker that accepted a connection.
 */
function holdsConnection (pid: number, port: number): boolean {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let link = ''
    try { link = readlinkSync(`/proc/${pid}/fd/${fd}`) } catch { continue } // closed meanwhile
    const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1]
    if (inode !== undefined) inodes.add(inode)
  }
  const local = `:${port.toString(16).toUpperCase().padStart(4, '0')}`
  return readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1).some((row) => {
    // sl, local_address, rem_address, st (01: established), tx:rx, tr:when, retrnsmt, uid, timeout, inode
    const fields = row.trim().split(/\s+/)
    return fields[1]?.endsWith(local) === true && fields[3] === '01' && inodes.has(fields[9] ?? '')
  })
}

t.test('WORKERS=2: a SIGTERM to the whole process group (each worker gets it twice) stops gracefully; the request in flight is answered, exit 0', async (t) => {
  const { idp, server } = await startService(t, 2)
  const base = await listening(server, 2)
  const { answer } = await requestInFlight(t, base, idp)
  // A signal to the whole group (systemd, Ctrl-C) reaches each worker directly and again from the primary. On a
  // busy machine the two copies can merge into one; here they arrive 100 ms apart, as they do on an idle one.
  const workers = (await server.waitForLine(/started 2 workers \(pids (\d+), (\d+)\)/)).slice(1).map(Number)
  for (const pid of workers) process.kill(pid, 'SIGTERM')
  await sleep(100)
  server.child.kill('SIGTERM')
  t.equal(await answer, 401, 'the request in flight gets its answer (key_not_found after the slow refresh), not a reset')
  const { code } = await server.exited
  t.equal(code, 0, 'the primary exits 0')
  t.notMatch(server.output(), /second SIGTERM|exiting now|exited \([^)]+\) while stopping/, 'the copy of the signal from the primary changed nothing')
  t.equal(server.output().match(/shutting down: no new connections/g)?.length, 2, 'each worker stopped once, gracefully')
})

t.test('WORKERS=2: a worker already stopping is not forced by the primary\'s copy of a signal arriving after the repeat window: exit 0', async (t) => {
  // The JWKS answer takes 7 s: longer than the repeat window and the waits below, with seconds to spare on a busy
  // machine; shorter than the fetch timeout (12 s here) and than the grace period once the stop begins: 401.
  const { idp, server } = await startService(t, 2, 12_000)
  const base = await listening(server, 2)
  const workers = (await server.waitForLine(/started 2 workers \(pids (\d+), (\d+)\)/)).slice(1).map(Number)
  const { answer } = await requestInFlight(t, base, idp, REPEAT_WINDOW_MS + 6000)
  let answered = false
  void answer.then(() => { answered = true })
  const busy = workers.filter((pid) => holdsConnection(pid, Number(new URL(base).port)))
  t.equal(busy.length, 1, 'one worker has the request')
  const worker = busy[0] as number
  // A stop that reaches the worker first (its own copy of a group signal, or someone stopping it), and the
  // primary's copy later than the repeat window (a busy machine): the worker must still finish its request.
  const before = server.output().length
  process.kill(worker, 'SIGTERM')
  await server.waitForLine(/shutting down: no new connections/, { from: before })
  await sleep(REPEAT_WINDOW_MS + 200) // setup: past the window the code defines, so the copy counts as a repeat
  t.notOk(answered, 'the request is still in flight when the primary passes the signal on')
  server.child.kill('SIGTERM')
  t.equal(await answer, 401, 'the request in flight gets its answer, not a reset')
  t.same(await server.exited, { code: 0, signal: null }, 'the primary exits 0')
  t.notMatch(server.output(), /exiting now|exited \([^)]+\) while stopping|killing the workers/, 'no stop was forced')
  t.equal(server.output().match(/shutting down: no new connections/g)?.length, 2, 'each worker stopped once, gracefully')
})

t.test('the service alone: a copy of the signal right after it (npm forwards the signal it got) changes nothing', async (t) => {
  const { idp, server } = await startService(t)
  const base = await listening(server, 1)
  const { answer } = await requestInFlight(t, base, idp)
  server.child.kill('SIGINT')
  await sleep(100) // npm passes the signal on after the terminal's copy has arrived
  server.child.kill('SIGINT')
  t.equal(await answer, 401, 'the request in flight is answered')
  t.same(await server.exited, { code: 0, signal: null })
  t.notMatch(server.output(), /second SIGINT|exiting now/)
})

t.test('the service alone: a second signal after the repeat window stops at once with exit 1 and says so', async (t) => {
  const { idp, server } = await startService(t)
  const base = await listening(server, 1)
  const { answer } = await requestInFlight(t, base, idp, 30_000) // a stop that would take the whole grace period
  server.child.kill('SIGTERM')
  await server.waitForLine(/shutting down: no new connections/)
  await sleep(REPEAT_WINDOW_MS + 200)
  server.child.kill('SIGTERM')
  t.same(await server.exited, { code: 1, signal: null }, 'exit 1: the stop was cut short')
  t.match(server.output(), /"signal":"SIGTERM"[^\n]*second stop signal: exiting now, requests in flight are cut off/)
  t.match(await answer, /^failed/, 'the request in flight was cut off')
})

t.test('a SIGTERM during start-up (here: while the configuration file is being read) is honoured: exit 0, logged', async (t) => {
  const dir = tempDir(t, {})
  const config = join(dir, 'config.yaml')
  writeFileSync(config, stringify({ server: { host: '127.0.0.1', port: 0 }, issuers: [{ id: 's', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }] }))
  const fifo = join(dir, 'hold')
  execFileSync('mkfifo', [fifo])
  // The built service with only the preload below in its arguments (tap's spawn hook still adds its own preload
  // through NODE_OPTIONS, as to every child of a test). The preload holds the service's open of its configuration
  // file until the FIFO is written (the service refuses a FIFO itself).
  const child = spawn(process.execPath, ['--import', pathToFileURL(join(ROOT, 'test/helpers/hold-config-read.mjs')).href, join(ROOT, 'dist/server.js'), '--config', config], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', HOLD_CONFIG_PATH: config, HOLD_FIFO: fifo }
  })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => { output += d })
  child.stderr.setEncoding('utf8').on('data', (d: string) => { output += d })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })))
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const server = { child, exited, output: () => output }
  // Opening a FIFO for writing without blocking succeeds only once a reader has it open: the service is then
  // inside its configuration load, long after the process started.
  const deadline = Date.now() + 60_000
  let fd: number | undefined
  while (fd === undefined && Date.now() < deadline) {
    try { fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK) } catch { await sleep(20) }
  }
  t.ok(fd !== undefined, 'the service is opening its configuration file')
  server.child.kill('SIGTERM')
  await sleep(200)
  writeSync(fd as number, 'go')
  closeSync(fd as number)
  t.same(await server.exited, { code: 0, signal: null }, 'exit 0, not killed by the signal')
  // Node handles the signal at the start's first turn of the event loop: before the service set its stop
  // (the start-up line), or after, when the start reached listening without waiting for I/O (a graceful stop).
  t.match(server.output(), /SIGTERM during start-up: stopping before listening|"signal":"SIGTERM"[^\n]*"msg":"shutting down/)
})

t.test('WORKERS=2: one worker stopped on its own (exit 0) is replaced once the primary has had time to get its copy', async (t) => {
  const { server } = await startService(t, 2)
  await listening(server, 2)
  const [recycled] = (await server.waitForLine(/started 2 workers \(pids (\d+), (\d+)\)/)).slice(1).map(Number)
  const before = server.output().length
  process.kill(recycled as number, 'SIGTERM')
  await server.waitForLine(new RegExp(`worker ${recycled} exited \\(0\\); started replacement \\d+`), { from: before, timeoutMs: 30_000 })
  await server.waitForLine(/"msg":"oidc-verifier listening"/, { from: before, timeoutMs: 60_000 })
  server.child.kill('SIGTERM')
  t.equal((await server.exited).code, 0)
})

t.test('WORKERS=2: a SIGTERM to the primary right after it forked (workers still starting) exits 0', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(key) })
  t.teardown(() => idp.close())
  for (const delayMs of [0, 50, 300]) {
    const server = startNode('src/server.ts', ['--config', configFile(t, idp.jwksUrl)], { env: { WORKERS: '2' } })
    t.teardown(() => server.kill())
    await server.waitForLine(/started 2 workers/, { timeoutMs: 60_000 })
    await sleep(delayMs)
    server.child.kill('SIGTERM')
    t.same(await server.exited, { code: 0, signal: null }, `${delayMs} ms after the fork: a worker ended by the stop's own signal is a clean stop`)
    t.notMatch(server.output(), /while stopping/)
  }
})

t.test('WORKERS=2: a worker that does not finish its stop (killed meanwhile) makes the primary exit 1', async (t) => {
  const { server } = await startService(t, 2)
  await listening(server, 2)
  const [victim] = (await server.waitForLine(/started 2 workers \(pids (\d+), (\d+)\)/)).slice(1).map(Number)
  server.child.kill('SIGTERM')
  await server.waitForLine(/SIGTERM: stopping workers/)
  process.kill(victim as number, 'SIGKILL')
  t.equal((await server.exited).code, 1, 'a supervisor sees the stop failed')
  t.match(server.output(), new RegExp(`worker ${victim} exited \\(SIGKILL\\) while stopping`))
})
