// Starting and stopping the services under test. A target is a script `<name>.sh PORT ISSUER JWKS_URI
// AUDIENCE ALG` (the shared harness's format) in bench/targets/ (ours) or bench/peers/ (the others); it
// exits 78 when it does not support ALG. Each runs in its own process group, pinned when asked, so that
// stopping it stops everything it started.
import { spawn } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'

export const UNSUPPORTED_EXIT = 78
const live = new Set()

/** The script for a target name, or undefined. */
export function targetScript (benchDir, name) {
  for (const dir of ['targets', 'peers']) {
    const file = join(benchDir, dir, `${name}.sh`)
    if (existsSync(file)) return file
  }
  return undefined
}

/** A script carrying the line "# bench: no-verify" is a baseline: it verifies nothing. */
export function isBaseline (script) {
  return /^#\s*bench:\s*no-verify\b/m.test(readFileSync(script, 'utf8'))
}

export function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** Spawns `cmd args` in a new process group, output appended to `log`, optionally pinned to `cpu`. */
export function spawnLogged (cmd, args, { log, cpu, env = process.env, cwd }) {
  const [c, a] = cpu === undefined ? [cmd, args] : ['taskset', ['-c', String(cpu), cmd, ...args]]
  const fd = openSync(log, 'a')
  const child = spawn(c, a, { cwd, env, detached: true, stdio: ['ignore', fd, fd] })
  closeSync(fd)
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    live.delete(child)
    resolve({ code, signal })
  }))
  live.add(child)
  return child
}

function connects (port) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1')
    sock.once('connect', () => { sock.destroy(); resolve(true) })
    sock.once('error', () => resolve(false))
  })
}

/** Resolves { ok } once the port accepts connections, { exited } if the process ended first, or { timeout }. */
export async function waitListening (child, port, timeoutMs) {
  let exited
  child.exited.then((e) => { exited = e })
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (exited !== undefined) return { exited }
    if (await connects(port)) return { ok: true }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { timeout: true }
}

/** SIGTERM to the group, SIGKILL after `graceMs`. */
export async function stopProcess (child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const signal = (sig) => { try { process.kill(-child.pid, sig) } catch { /* already gone */ } }
  signal('SIGTERM')
  const timer = setTimeout(() => signal('SIGKILL'), graceMs)
  await child.exited
  clearTimeout(timer)
}

export async function stopAll () {
  await Promise.all([...live].map((child) => stopProcess(child)))
}

export function tail (file, lines = 12) {
  try { return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') } catch { return '' }
}
