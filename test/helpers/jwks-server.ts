/**
 * A controllable identity-provider HTTP server for anything that fetches keys or metadata, with faults on
 * demand. Keys to publish come from ./tokens.js (makeKey, jwksOf).
 *
 *   const idp = await startJwksServer()              // serves { keys: [] } at idp.jwksUrl
 *   idp.set({ json: jwksOf(makeKey('ES256')), cacheControl: 'max-age=300' })
 *   idp.set({ status: 500 })                          // IdP down
 *   idp.set({ json: metadata }, '/.well-known/openid-configuration')
 *   idp.requests('/jwks')                             // how many GETs the path received
 *   await idp.close()                                 // in t.teardown
 *
 * The server listens on 127.0.0.1, port 0, plain http (allowed by the outbound URL policy for loopback).
 * `http://localhost:PORT` reaches the same server under another host name, for cross-host redirect tests.
 */
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** What the server answers on one path. Every field is optional; `set` replaces the whole answer. */
export interface ServedResponse {
  /** Default 200. */
  status?: number
  /** Serialized as the body. */
  json?: unknown
  /** A raw body (garbage, HTML, huge…); takes precedence over `json`. */
  body?: string | Buffer
  /** Default 'application/json'; null sends no Content-Type. */
  contentType?: string | null
  /** Cache-Control header; none by default. */
  cacheControl?: string
  /** Location header, for 3xx answers (absolute, or a path on this server). */
  location?: string
  /** Any other headers. */
  headers?: Record<string, string>
  /** Wait this long before sending the status line. */
  delayMs?: number
  /** Send nothing until this settles (then wait `delayMs`, if set): an IdP that answers when the test says so. */
  hold?: Promise<unknown>
  /** Send the body in chunks of `chunkBytes` every `intervalMs` (a slow, dribbling IdP). */
  dribble?: { chunkBytes: number, intervalMs: number }
  /** Send no Content-Length (chunked encoding), so the client only learns the size while reading. */
  chunked?: boolean
}

export interface JwksServer {
  /** Base URL without trailing slash, e.g. http://127.0.0.1:39123 */
  url: string
  /** Same server under the host name "localhost": a different host for the redirect policy. */
  otherHostUrl: string
  /** url + JWKS_PATH */
  jwksUrl: string
  /** Replaces the answer at `path` (default JWKS_PATH). Paths never set answer 404. */
  set: (response: ServedResponse, path?: string) => void
  /** GET requests received at `path`, or on all paths when omitted. */
  requests: (path?: string) => number
  resetCounts: () => void
  /** Drops open connections and stops listening. */
  close: () => Promise<void>
}

export const JWKS_PATH = '/jwks'

export async function startJwksServer (initial: ServedResponse = { json: { keys: [] } }): Promise<JwksServer> {
  const routes = new Map<string, ServedResponse>([[JWKS_PATH, initial]])
  const counts = new Map<string, number>()
  const timers = new Set<ReturnType<typeof setTimeout>>()

  const later = (ms: number, fn: () => void): ReturnType<typeof setTimeout> => {
    const timer = setTimeout(() => {
      timers.delete(timer)
      fn()
    }, ms)
    timers.add(timer)
    return timer
  }

  const send = (res: ServerResponse, spec: ServedResponse): void => {
    const body = spec.body !== undefined
      ? Buffer.from(spec.body)
      : spec.json !== undefined ? Buffer.from(JSON.stringify(spec.json)) : Buffer.alloc(0)
    const headers: Record<string, string> = { ...spec.headers }
    const contentType = spec.contentType === undefined ? 'application/json' : spec.contentType
    if (contentType !== null) headers['content-type'] = contentType
    if (spec.cacheControl !== undefined) headers['cache-control'] = spec.cacheControl
    if (spec.location !== undefined) headers.location = spec.location
    if (spec.chunked !== true && spec.dribble === undefined) headers['content-length'] = String(body.length)
    res.writeHead(spec.status ?? 200, headers)
    if (spec.dribble === undefined) {
      res.end(body)
      return
    }
    const { chunkBytes, intervalMs } = spec.dribble
    let offset = 0
    const next = (): void => {
      if (res.destroyed) return
      if (offset >= body.length) {
        res.end()
        return
      }
      res.write(body.subarray(offset, offset + chunkBytes))
      offset += chunkBytes
      later(intervalMs, next)
    }
    next()
  }

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname
    counts.set(path, (counts.get(path) ?? 0) + 1)
    const spec = routes.get(path)
    if (spec === undefined) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}')
      return
    }
    const answer = (): void => {
      if (res.destroyed) return
      if (spec.delayMs !== undefined && spec.delayMs > 0) {
        const timer = later(spec.delayMs, () => send(res, spec))
        res.on('close', () => {
          clearTimeout(timer)
          timers.delete(timer)
        })
      } else {
        send(res, spec)
      }
    }
    if (spec.hold === undefined) answer()
    else spec.hold.then(answer, answer)
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const { port } = server.address() as AddressInfo
  const url = `http://127.0.0.1:${port}`

  return {
    url,
    otherHostUrl: `http://localhost:${port}`,
    jwksUrl: url + JWKS_PATH,
    set (response, path = JWKS_PATH) {
      routes.set(path, response)
    },
    requests (path) {
      if (path !== undefined) return counts.get(path) ?? 0
      let total = 0
      for (const n of counts.values()) total += n
      return total
    },
    resetCounts () {
      counts.clear()
    },
    async close () {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
