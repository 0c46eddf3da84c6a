/**
 * Bounds on a listener's connections, so that a client cannot take the process down by opening them:
 * - `maxConnections`: past it, Node closes a new connection at once. Each connection holds a file descriptor;
 *   when the process runs out of them, it can neither answer anyone nor read /proc (@fastify/under-pressure's
 *   memory sample then throws EMFILE and the process stops). By default the main listener may use three
 *   quarters of the open-file limit, the ops listener a tenth (at most 1,024): the rest is left for the JWKS
 *   fetches, Redis, the files the service reads and the other listener.
 * - `connectionsCheckingInterval`: how often Node looks for requests past server.headersTimeoutMs and
 *   server.requestTimeoutMs. Node's default, 30 s, let a slow client hold a connection up to 30 s past them.
 */
import { readFileSync } from 'node:fs'
import type { Server } from 'node:http'

/** How often the request and headers timeouts are enforced, in milliseconds. */
export const CONNECTIONS_CHECKING_INTERVAL_MS = 1_000

/** Without an open-file limit to go by (not Linux), the main listener's bound. */
export const FALLBACK_MAX_CONNECTIONS = 10_000

/** The soft open-file limit in /proc/self/limits' text; undefined when there is none or it is unlimited. */
export function openFileLimit (limits: string | undefined): number | undefined {
  const match = limits === undefined ? null : /^Max open files\s+(\d+)\s/m.exec(limits)
  return match === null ? undefined : Number(match[1])
}

/** This process's /proc/self/limits (Linux), or undefined. */
export function readLimits (): string | undefined {
  try {
    return readFileSync('/proc/self/limits', 'utf8')
  } catch {
    return undefined
  }
}

/** The bounds of the two listeners: `configured` (server.maxConnections) or three quarters of `fileLimit`. */
export function connectionBounds (configured: number | undefined, fileLimit: number | undefined): { main: number, ops: number } {
  const main = configured ?? (fileLimit === undefined ? FALLBACK_MAX_CONNECTIONS : Math.max(1, Math.floor(fileLimit * 0.75)))
  const ops = Math.max(1, Math.min(1024, fileLimit === undefined ? 1024 : Math.floor(fileLimit / 10), main))
  return { main, ops }
}

/** Applies the bounds to a listener (HTTP or HTTPS alike), before it listens. */
export function limitConnections (server: Server, maxConnections: number): void {
  server.maxConnections = maxConnections
  // Read by Node when the server starts listening.
  ;(server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = CONNECTIONS_CHECKING_INTERVAL_MS
}
