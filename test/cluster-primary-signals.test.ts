/**
 * The cluster primary's signals (src/cluster-primary.ts), with workers of a few lines of plain JavaScript
 * (test/helpers/signal-primary.ts): a SIGHUP reaches only workers whose handlers are in place (its default action
 * would end one still loading); a worker that does not stop within the grace period is killed, not left without
 * a parent; a worker stopped before the service started, followed by the primary's own stop signal (Ctrl-C to
 * the whole process group), is a stop with exit 0, and one not followed by it is a failed start (exit 1).
 */
import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { startNode, type StartedProcess } from './helpers/node-process.js'

t.setTimeout(120_000)

function primary (t: Test, mode: string): StartedProcess {
  const server = startNode('test/helpers/signal-primary.ts', [], { env: { WORKER_MODE: mode } })
  t.teardown(() => server.kill())
  return server
}

async function workerPids (server: StartedProcess): Promise<number[]> {
  return (await server.waitForLine(/started 2 workers \(pids (\d+), (\d+)\)/, { timeoutMs: 30_000 })).slice(1).map(Number)
}

/** Whether a process is gone (or a zombie waiting for a parent to collect it): not running, not stopped. */
function gone (pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').startsWith('Z')
  } catch {
    return true
  }
}

t.test('a SIGHUP while the workers are still loading ends none of them; one after they started reaches each', async (t) => {
  const server = primary(t, 'slow-handlers')
  const pids = await workerPids(server)
  server.child.kill('SIGHUP')
  await server.waitForLine(/SIGHUP: asking every worker to reload/)
  // Both workers get their handlers (after 400 ms) and start without dying of the first SIGHUP.
  for (const pid of pids) await server.waitForLine(new RegExp(`worker ${pid} has its handlers`), { timeoutMs: 30_000 })
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.notMatch(server.output(), /exited \(SIGHUP\)/, 'no worker ended by the SIGHUP')
  t.ok(pids.every((pid) => !gone(pid)), 'both workers still run')
  const before = server.output().length
  server.child.kill('SIGHUP')
  for (const pid of pids) await server.waitForLine(new RegExp(`worker ${pid} got SIGHUP`), { from: before })
  server.child.kill('SIGTERM')
  t.equal((await server.exited).code, 0)
})

t.test('a worker still running when the grace period is over is killed with the primary\'s exit', async (t) => {
  const server = primary(t, 'started')
  const [stuck, other] = await workerPids(server) as [number, number]
  await new Promise((resolve) => setTimeout(resolve, 300))
  // A stopped process stands for a blocked event loop: it sees neither the SIGTERM nor its channel close.
  process.kill(stuck, 'SIGSTOP')
  t.teardown(() => { if (!gone(stuck)) process.kill(stuck, 'SIGKILL') })
  server.child.kill('SIGTERM')
  const { code } = await server.exited
  t.equal(code, 1, 'a stop that did not finish is a failure')
  t.match(server.output(), new RegExp(`worker ${stuck} still running 5 s after SIGTERM; killing it \\(SIGKILL\\)`))
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.ok(gone(stuck), 'not left behind without its primary')
  t.ok(gone(other), 'the other stopped as asked')
})

t.test('a worker that stops before the service started, then the primary\'s own stop signal: a stop, exit 0', async (t) => {
  const server = primary(t, 'stops-before-start')
  const [first] = await workerPids(server)
  process.kill(first as number, 'SIGTERM')
  await new Promise((resolve) => setTimeout(resolve, 150))
  server.child.kill('SIGINT')
  const { code } = await server.exited
  t.equal(code, 0, 'Ctrl-C during start-up is a stop, as without WORKERS')
  t.notMatch(server.output(), /before the service ever started/)
})

t.test('a worker that stops before the service started, with no stop signal after it: a failed start, exit 1', async (t) => {
  const server = primary(t, 'stops-before-start')
  const [first] = await workerPids(server)
  process.kill(first as number, 'SIGTERM')
  const { code } = await server.exited
  t.equal(code, 1)
  t.match(server.output(), /exited \((?:0|SIGTERM)\) before the service ever started \(all its listeners open\); stopping/)
})
