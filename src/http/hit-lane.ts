/**
 * The hit lane: `POST /verify` answered for a token the verified-token cache holds, before the request reaches
 * Fastify. A cache hit is most of a busy service's traffic and most of its cost is the framework's: routing, the
 * request and reply objects, four hook chains, the body parser, the schema check, the response listeners. The
 * lane takes one narrow, common shape of request and answers it with what the route would answer; everything
 * else, and everything the lane is not sure of, goes to Fastify as it came.
 *
 * What the lane answers: `POST /verify` with no query; one Host; `Content-Type: application/json` (UTF-8 named
 * or not); a Content-Length of at most the body limit and no Transfer-Encoding; no Authorization header; a body
 * that is exactly `{"token":"…"}`, as JSON.stringify writes it; a token whose SHA-256 the verified-token cache
 * holds and answers with no check refusing it (Verifier.cachedIdentity), which makes the bytes between the quotes
 * a token verified before (base64url and dots: the JSON the route would parse, a body its schema accepts); the
 * lane open (app.ts: no caller keys in force, no per-caller rate limit, load shedding not refusing, the app not
 * closing). Its answer is the route's: the same status, headers and rendered identity (src/http/identity-bodies.ts,
 * shared with the route), a request id from the same generator, the HTTP metrics and the request line as the
 * route's hooks record them.
 *
 * A request the lane does not answer after reading its body gets the body back (`unshift`, the stream API for
 * data a reader has taken and gives back) and goes to Fastify, which reads it again, with the token's key, so
 * that a new token is not hashed twice. Nothing the lane does on that path is counted or logged: the route
 * counts it once.
 */
import { isAscii } from 'node:buffer'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { Logger } from 'pino'
import type { VerifiedIdentity } from '../core/identity.js'
import type { Verifier } from '../core/verifier.js'
import type { ServiceMetrics } from '../metrics/metrics.js'
import { repeatedHeader } from './bearer.js'
import { BODY_TAKEN } from './closing-response.js'
import type { IdentityBodies } from './identity-bodies.js'
import { RequestLogger } from './request-logger.js'
import { requestLine } from './request-log.js'

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void

export interface HitLaneOptions {
  /** The Verifier in force (a reload may replace it between two requests). */
  verifier: () => Verifier
  /** Whether the lane may answer now; checked when a request arrives. */
  open: () => boolean
  /** The app's request id generator (Fastify's genReqId). */
  requestId: (req: IncomingMessage) => string
  /** The app's logger: the request line is written by a request logger made from it, as the route's is. */
  logger: Logger
  metrics: ServiceMetrics | undefined
  /** The route's rendered answers, shared with it. */
  bodies: IdentityBodies
  /** The route's 200 serializer. */
  serialize: (identity: VerifiedIdentity) => string
  /** The largest body the lane reads: the app's bodyLimit. */
  maxBodyBytes: number
}

/** The JSON content types the lane takes (what clients send); any other goes to the route's parser. */
const JSON_TYPES: ReadonlySet<string> = new Set(['application/json', 'application/json; charset=utf-8', 'application/json;charset=utf-8', 'application/json; charset=UTF-8'])
/** The one body shape the lane reads, as JSON.stringify({ token }) writes it. */
const BODY_START = Buffer.from('{"token":"')
const BODY_END = Buffer.from('"}')
const SHORTEST_BODY = BODY_START.length + 1 + BODY_END.length
const BACKSLASH = 0x5c
const ROUTE = '/verify'
/** Where the lane leaves a token's key for the route, on a request it gives back (see knownTokenKey). */
const TOKEN_KEY = Symbol('token key')

interface KeyedRequest { [TOKEN_KEY]?: { key: string, length: number } }

/**
 * The bytes between the quotes of a body of the lane's shape; undefined for any other body. They are not checked:
 * the lane only looks their hash up among tokens verified before, which are base64url and dots, so bytes that
 * are anything else (an escape, a quote closing the string early, more fields) are not found and the route reads
 * the body.
 */
export function tokenBytes (body: Buffer): Buffer | undefined {
  const end = body.length - BODY_END.length
  if (end <= BODY_START.length || body.compare(BODY_START, 0, BODY_START.length, 0, BODY_START.length) !== 0 || body.compare(BODY_END, 0, BODY_END.length, end) !== 0) return undefined
  return body.subarray(BODY_START.length, end)
}

/**
 * The key the lane computed for `token` (Verifier.tokenKey), for the route to look it up with instead of hashing
 * it again: left only for bytes that JSON.parse returns as they are (ASCII, no escape), so the route's token from
 * the same body is the same string; checked by length, in case the route's token came from elsewhere.
 */
export function knownTokenKey (req: IncomingMessage, token: string): string | undefined {
  const known = (req as KeyedRequest)[TOKEN_KEY]
  return known !== undefined && known.length === token.length ? known.key : undefined
}

/** Whether the request's headers are the lane's shape (the body is read only then). */
function isLaneRequest (req: IncomingMessage, maxBodyBytes: number): boolean {
  if (req.method !== 'POST' || req.url !== ROUTE) return false
  const headers = req.headers
  const type = headers['content-type']
  if (type === undefined || !JSON_TYPES.has(type) || headers.authorization !== undefined || headers['transfer-encoding'] !== undefined) return false
  const length = Number(headers['content-length'])
  if (!(length >= SHORTEST_BODY && length <= maxBodyBytes)) return false
  // The route refuses a request without Host (HTTP/1.1) or with two (src/http/request-lifecycle.ts): its answer.
  return headers.host !== undefined && !repeatedHeader(req.rawHeaders, 'host')
}

/** Wraps the server's request listener (Fastify's) in the lane. */
export function hitLane (route: RequestListener, opts: HitLaneOptions): RequestListener {
  const { metrics, bodies, serialize, logger } = opts

  const send = (req: IncomingMessage, res: ServerResponse, text: string, identity: VerifiedIdentity, startedAt: number): void => {
    const id = opts.requestId(req)
    // The route's headers, in its order (request id at arrival, then the route's, then the payload's).
    res.writeHead(200, {
      'x-request-id': id,
      'cache-control': 'no-store',
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text)
    })
    res.end(text)
    const durationMs = performance.now() - startedAt
    metrics?.requestCompleted(ROUTE, 'POST', 200, undefined, undefined, durationMs / 1000)
    if (logger.isLevelEnabled('info')) {
      // The route's request logger: bound to the request id, with the trace fields of a valid traceparent.
      new RequestLogger(logger, { reqId: id }, req).info(requestLine({ method: 'POST', route: ROUTE, status: 200, outcome: { issuer: identity.issuer.id }, caller: null, durationMs }), 'request completed')
    }
  }

  /** Answers a hit; false (nothing sent, counted or logged) when the route must answer. */
  const answer = (req: IncomingMessage, res: ServerResponse, body: Buffer, startedAt: number): boolean => {
    const token = tokenBytes(body)
    if (token === undefined) return false
    const verifier = opts.verifier()
    const key = verifier.tokenKey(token)
    if (key === undefined) return false
    const identity = verifier.cachedIdentity(key)
    if (identity === undefined) {
      if (isAscii(token) && token.indexOf(BACKSLASH) === -1) (req as KeyedRequest)[TOKEN_KEY] = { key, length: token.length }
      return false
    }
    const text = bodies.body(identity, serialize) ?? serialize(identity)
    // Node marks the request complete in a later callback than the one that hands over the body's last bytes:
    // without this, the answer would close the connection (src/http/closing-response.ts).
    ;(req as { [BODY_TAKEN]?: true })[BODY_TAKEN] = true
    send(req, res, text, identity, startedAt)
    return true
  }

  return function hitLaneListener (req, res) {
    if (!isLaneRequest(req, opts.maxBodyBytes) || !opts.open()) {
      route(req, res)
      return
    }
    const startedAt = performance.now()
    const length = Number(req.headers['content-length'])
    let received = 0
    let chunks: Buffer[] | undefined
    let first: Buffer | undefined
    const onData = (chunk: Buffer): void => {
      received += chunk.length
      if (first === undefined) first = chunk
      else (chunks ??= [first]).push(chunk)
      // Node's parser delivers exactly Content-Length bytes of body; until all are here, wait.
      if (received < length) return
      req.removeListener('data', onData)
      const body = chunks === undefined ? first : Buffer.concat(chunks)
      try {
        if (answer(req, res, body, startedAt)) return
      } catch (err) {
        // A bug of the lane must not stop the process (this runs outside Fastify's error handling): the route answers
        // when nothing was sent yet.
        logger.error({ err }, 'unexpected error')
        if (res.headersSent) return
      }
      // Given back whole, before the stream can end: the route reads it as if the lane had not been there.
      req.pause()
      req.unshift(body)
      route(req, res)
    }
    req.on('data', onData)
  }
}

/** Puts the lane in front of the server's one request listener (Fastify's). */
export function installHitLane (server: Server, opts: HitLaneOptions): void {
  const listeners = server.listeners('request') as RequestListener[]
  if (listeners.length !== 1) throw new Error(`the hit lane expects one request listener on the server, found ${listeners.length}`)
  const route = listeners[0]!
  server.removeListener('request', route)
  server.on('request', hitLane(route, opts))
}
