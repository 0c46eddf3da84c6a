/**
 * `npm start` and `npm run dev` as a supervisor runs them: a SIGTERM sent to npm alone (`kill <pid>`, systemd's
 * KillMode=mixed, a container whose CMD is npm) must reach the service. npm passes it on to the shell that runs
 * the script; Debian's sh (dash) does not pass it on, so the script execs node and the shell is node itself.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { ROOT } from './helpers/node-process.js'

const freePort = async (): Promise<number> => await new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => { const { port } = s.address() as { port: number }; s.close(() => resolve(port)) })
})
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
const children = (pid: number): number[] => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}
const descendants = (pid: number): number[] => children(pid).flatMap((c) => [c, ...descendants(c)])

t.test('SIGTERM to npm start alone stops the service gracefully', async (t) => {
  const port = await freePort()
  let log = ''
  const npm = spawn('npm', ['start'], {
    cwd: ROOT,
    env: { ...process.env, NODE_OPTIONS: '', OIDC_ISSUER: 'https://i.invalid', OIDC_AUDIENCE: 'a', OIDC_JWKS_URI: 'http://127.0.0.1:9/jwks.json', HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  npm.stdout.on('data', (d: Buffer) => { log += String(d) })
  npm.stderr.on('data', (d: Buffer) => { log += String(d) })
  let below: number[] = []
  t.teardown(() => {
    for (const pid of [npm.pid!, ...below]) if (alive(pid)) process.kill(pid, 'SIGKILL')
  })
  for (let i = 0; i < 300 && !/oidc-verifier listening/.test(log); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  t.match(log, /oidc-verifier listening/, 'started')
  below = descendants(npm.pid!)
  t.ok(below.length > 0, 'the service runs below npm')
  const exited = new Promise((resolve) => npm.once('exit', resolve))
  process.kill(npm.pid!, 'SIGTERM')
  await exited
  for (let i = 0; i < 100 && below.some(alive); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(below.filter(alive), [], 'no process of the service is left running')
  t.equal(await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status, () => 0), 0, 'the port no longer answers')
  t.match(log, /shutting down/, 'the service logged its graceful stop')
})

t.test('npm run dev execs node too', async (t) => {
  const scripts = (JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { scripts: Record<string, string> }).scripts
  t.match(scripts.start, /^exec node /)
  t.match(scripts.dev, /(^|&& )exec node dist\/dev\.js$/, 'the development issuer is the shell itself once built')
})
