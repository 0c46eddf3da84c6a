/**
 * A real Redis for integration tests: redis-server started as a child process on 127.0.0.1 and a free port,
 * without persistence, in a temporary directory.
 *
 *   const redis = await startRedis()
 *   new RedisRevocationStore({ url: redis.url, … })
 *   await redis.stop()      // the port stays this server's: restart() listens on it again
 *   await redis.restart()   // or restart(['--requirepass', 'pw']): extra redis-server arguments
 *   await redis.close()     // in t.teardown
 *
 * redis-server is the Debian package `redis-server` (scripts/system-deps.sh installs it). When it is missing
 * the test FAILS with a message saying so: a Redis store test that silently skips would prove nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findBinary, freePort, stopChild } from './system-server.js'

const CANDIDATES = ['/usr/bin/redis-server', '/usr/sbin/redis-server', '/usr/local/bin/redis-server', '/usr/local/sbin/redis-server']
const START_TIMEOUT_MS = 10_000

export function findRedisServer (): string {
  return findBinary('redis-server', CANDIDATES, 'REDIS_SERVER_BIN', 'redis-server')
}

/** Whether redis-server answers PING on the port (not only accepts the connection); NOAUTH is an answer too. */
async function answersPing (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    let reply = ''
    const done = (ok: boolean): void => { socket.destroy(); resolve(ok) }
    socket.setTimeout(1000, () => { done(false) })
    socket.once('connect', () => { socket.write('PING\r\n') })
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1')
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG') || reply.startsWith('-NOAUTH'))
    })
    socket.once('error', () => { done(false) })
  })
}

export interface RedisHandle {
  port: number
  /** redis://127.0.0.1:<port> */
  url: string
  /** Output of the server so far (for failure messages). */
  output: () => string
  /** Stops the server (its data is lost: no persistence); the handle keeps the port. */
  stop: () => Promise<void>
  /** Starts it again on the same port (empty), with these extra redis-server arguments (e.g. --requirepass x). */
  restart: (extraArgs?: string[]) => Promise<void>
  close: () => Promise<void>
}

/** Starts redis-server on 127.0.0.1 and a free port; resolves once it answers PING. */
export async function startRedis (): Promise<RedisHandle> {
  const binary = findRedisServer()
  const dir = mkdtempSync(join(tmpdir(), 'oidc-verifier-redis-'))
  let output = ''
  let child: ChildProcess | undefined

  const launch = async (port: number, extraArgs: string[] = []): Promise<boolean> => {
    const started = spawn(binary, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--daemonize', 'no', '--dir', dir, '--protected-mode', 'no', '--loglevel', 'warning', ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] })
    started.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString('utf8') })
    started.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString('utf8') })
    const deadline = Date.now() + START_TIMEOUT_MS
    while (Date.now() < deadline && started.exitCode === null && started.signalCode === null) {
      if (await answersPing(port)) {
        child = started
        return true
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await stopChild(started)
    return false
  }

  // A port found free can be taken before redis-server binds it: try a few.
  let port = 0
  for (let attempt = 0; attempt < 5 && child === undefined; attempt++) {
    port = await freePort()
    if (await launch(port)) break
    if (!/Address already in use/i.test(output)) break
  }
  if (child === undefined) {
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`redis-server did not start: ${output.trim() === '' ? 'no output' : output.trim()}`)
  }

  const stop = async (): Promise<void> => {
    if (child !== undefined) await stopChild(child)
    child = undefined
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    output: () => output,
    stop,
    restart: async (extraArgs: string[] = []) => {
      await stop()
      // The port was just released by this server; another process taking it in between is unlikely, so retry briefly.
      const deadline = Date.now() + START_TIMEOUT_MS
      while (!(await launch(port, extraArgs))) {
        if (Date.now() > deadline) throw new Error(`redis-server did not restart on port ${port}: ${output.trim()}`)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    },
    close: async () => {
      await stop()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
