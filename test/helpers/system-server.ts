/**
 * What the helpers that start a real system server (nginx, redis-server) share: finding the binary, which a
 * test needs and never skips without, a free port on 127.0.0.1, and stopping the child.
 */
import type { ChildProcess } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { createServer } from 'node:net'

/**
 * The first executable of `candidates` (or the path in the environment variable `envVar`); otherwise an
 * error that says which Debian package to install.
 */
export function findBinary (name: string, candidates: readonly string[], envVar: string, debianPackage: string): string {
  const override = process.env[envVar]
  const paths = override !== undefined && override !== '' ? [override] : candidates
  for (const path of paths) {
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {
      // try the next one
    }
  }
  throw new Error(`${name} not found (looked at ${paths.join(', ')}): install the Debian package "${debianPackage}" ` +
    `(apt-get install -y ${debianPackage}; bash scripts/system-deps.sh does it) or set ${envVar}. This test needs a real ${name} and does not skip.`)
}

/** A port nothing listens on right now (the kernel's choice; a race with other processes is possible but rare). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => { resolve(port) })
    })
  })
}

/** Stops a server child: SIGTERM, then SIGKILL if it has not exited within `timeoutMs`. */
export async function stopChild (child: ChildProcess, timeoutMs = 5_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
  child.kill('SIGTERM')
  const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
  await exited
  clearTimeout(timer)
}
