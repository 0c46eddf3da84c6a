/**
 * The lane: `POST /verify` of the commonest shape answered before the request reaches Fastify, a cache hit at once
 * and a new token once it verifies. Cache hits are most of a busy service's traffic, and most of what a hit or a new
 * token costs beyond the signature check is the framework's: routing, the request and reply objects, four hook
 * chains, the body parser, the schema check, the response listeners. The lane takes one narrow, common shape of
 * request and answers it with what the route would answer; everything else, and everything the lane is not sure of,
 * goes to Fastify as it came.
 *
 * What the lane takes: `POST /verify` with no query; one Host; no Transfer-Encoding; either a body that is exactly
 * `{"token":"…"}` (as JSON.stringify writes it), `Content-Type: application/json` (UTF-8 named or not), a
 * Content-Length of at most the body limit and no Authorization header, or one `Authorization: Bearer` line that the
 * route would read and no body (no Content-Length or "0", no Content-Type or JSON); the lane open (app.ts: no per-caller
 * rate limit, load shedding not refusing, the app not closing); with caller keys in force, an X-Api-Key the route's
 * hook would let through at once (a valid key of a caller without a rate limit of its own, no window of failed
 * checks running: FastifyInstance.laneCaller), whose caller the answer's metrics and request line name. A token whose SHA-256 the
 * verified-token cache holds and answers with no check refusing it (Verifier.cachedIdentity) is answered at once: the
 * bytes between the quotes are then a token verified before (base64url and dots: the JSON the route would parse, a
 * body its schema accepts). Any other token that is the route's token as it is (body bytes in ASCII with no escape,
 * which JSON.parse returns unchanged; a Bearer token always) is verified by the lane as the route verifies it (no
 * per-request check: the lane's shapes carry none), on a lease of the Verifier in force, and answered when it
 * verifies. The lane's answers are the route's: the same status, headers and identity (src/http/identity-bodies.ts,
 * shared with the route), a request id from the same generator, the HTTP metrics and the request line as the route's
 * hooks record them, its time counted from the request's arrival.
 *
 * A request the lane does not answer goes to Fastify with its body given back (`unshift`, the stream API for data a
 * reader has taken and gives back), which reads it again: at once when the lane cannot take it, or, for a token the
 * lane verified and the verification refused (or failed), with that verdict (laneVerdict), which the route answers
 * as its own instead of verifying the token again: an error is answered, logged and counted only by the route, and
 * a token is verified once whoever answers.
 */
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http'
import { performance } from 'node:perf_hooks'
import type { Logger } from 'pino'
import type { VerifiedIdentity } from '../core/identity.js'
import type { VerifierSlot } from '../verifier-slot.js'
import type { RequestChecks } from '../core/verifier.js'
import type { ServiceMetrics } from '../metrics/metrics.js'
import { authorizationHeader, bearerToken, repeatedHeader } from './bearer.js'
import type { ClosingServerResponse } from './closing-response.js'
import { LaneGate } from './lane-gate.js'
import type { IdentityBodies } from './identity-bodies.js'
import { RequestLogger } from './request-logger.js'
import { requestLine } from './request-log.js'

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void
/** What the lane's verification of a request's token threw or rejected with, and the token's length. */
export interface LaneVerdict { error: unknown, length: number }

export interface HitLaneOptions {
  /** The Verifier in force (a reload may replace it between two requests), and a lease on it while a new token is verified. */
  verifiers: Pick<VerifierSlot, 'current' | 'lease' | 'release'>
  /** Whether the lane may take a request now; checked when a request arrives. */
  open: () => boolean
  /**
   * The caller whose key the request carries (FastifyInstance.laneCaller): null without caller keys, the caller's id
   * when its key lets the request through at once, undefined when the route's hooks must see the request.
   */
  caller: (headers: IncomingHttpHeaders) => string | null | undefined
  /** The app's request id generator (Fastify's genReqId). */
  requestId: (req: IncomingMessage) => string
  /** The app's logger: the request line is written by a request logger made from it, as the route's is. */
  logger: Logger
  metrics: ServiceMetrics | undefined
  /** The route's rendered answers and its 200 serializer, shared with it. */
  bodies: IdentityBodies
  /** The largest body the lane reads: the app's bodyLimit. */
  maxBodyBytes: number
  /** Steps the lane aside for bodies while they rarely hit (default: a LaneGate of its own). */
  gate?: LaneGate | undefined
}

/** The JSON content types the lane takes (what clients send); any other goes to the route's parser. */
const JSON_TYPES: ReadonlySet<string> = new Set(['application/json', 'application/json; charset=utf-8', 'application/json;charset=utf-8', 'application/json; charset=UTF-8'])
/** The one body shape the lane reads, as JSON.stringify({ token }) writes it. */
const BODY_START = Buffer.from('{"token":"')
const BODY_END = Buffer.from('"}')
const SHORTEST_BODY = BODY_START.length + 1 + BODY_END.length
/** The bytes of a compact JWS or JWE: base64url and its dots. */
const TOKEN_BYTES = new Uint8Array(256)
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.') TOKEN_BYTES[c.charCodeAt(0)] = 1

/**
 * Whether a body's token bytes are a token's only: anything else (a quote ending the string early and more fields
 * after it, an escape, a control character) is a body the route must read, and must not be verified as a token.
 */
function onlyTokenBytes (bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (TOKEN_BYTES[bytes[i] as number] === 0) return false
  return true
}
const ROUTE = '/verify'
/** The lane's shapes ask for no per-request check. */
const NO_CHECKS: RequestChecks = Object.freeze({})
/**
 * What the lane leaves for the route lives on the response (src/http/closing-response.ts, the listeners' response
 * class); a response of another class (inject()'s) never met the lane and has none of it.
 */
type LaneResponse = Partial<Pick<ClosingServerResponse, 'bodyTaken' | 'laneVerdict' | 'arrivedAt' | 'callerAtArrival'>>

/**
 * The bytes between the quotes of a body of the lane's shape; undefined for any other body. They are not checked:
 * the lane only looks their hash up among tokens verified before, which are base64url and dots, so bytes that
 * are anything else (an escape, a quote closing the string early, more fields) are not found and the route reads
 * the body.
 */
export function tokenBytes (body: Buffer): Buffer | undefined {
  const end = body.length - BODY_END.length
  if (end <= BODY_START.length) return undefined
  // Byte by byte: a dozen comparisons cost less than Buffer#compare's call into C++.
  for (let i = 0; i < BODY_START.length; i++) if (body[i] !== BODY_START[i]) return undefined
  for (let i = 0; i < BODY_END.length; i++) if (body[end + i] !== BODY_END[i]) return undefined
  return body.subarray(BODY_START.length, end)
}

/**
 * The verdict of the lane's verification of `token` (what it threw or rejected with), when the lane verified this
 * request's token and gave the request back: the route answers it instead of verifying the token again. Checked by
 * the token's length besides (the lane takes only bodies whose token the route reads as the same string).
 */
export function laneVerdict (res: object, token: string): LaneVerdict | undefined {
  const verdict = (res as LaneResponse).laneVerdict
  return verdict !== undefined && verdict.length === token.length ? verdict : undefined
}

/**
 * How long a request has taken, in ms: Fastify counts from the moment it is handed the request (`reply.elapsedTime`,
 * `fastifyElapsedMs`), which for a request the lane held while its body arrived is when the body was complete;
 * such a request is counted from its arrival, as it was before the lane.
 */
export function requestElapsedMs (res: object, fastifyElapsedMs: number): number {
  const arrived = (res as LaneResponse).arrivedAt
  return arrived === undefined ? fastifyElapsedMs : performance.now() - arrived
}

/**
 * Whether the lane held the request while its body arrived and then gave it back: the route's hooks see it only
 * now, but it was admitted on arrival (the lane takes a request only while load shedding does not refuse).
 */
export function admittedOnArrival (res: object): boolean {
  return (res as LaneResponse).arrivedAt !== undefined
}

/**
 * The caller the lane let through when a request it gave back arrived (a string: that caller's id; null: no caller
 * keys then), or undefined for a request the lane did not take: the route's caller check reads it instead of
 * checking again at hand-back, when a reload or another address's failed checks meanwhile would decide otherwise.
 */
export function callerAtArrival (res: object): string | null | undefined {
  return (res as LaneResponse).callerAtArrival
}

/**
 * Which of the lane's two shapes the request's headers have: a JSON body `{"token":"…"}` (read only then), or a
 * Bearer token and no body; undefined for any other request.
 */
function laneShape (req: IncomingMessage, maxBodyBytes: number): 'body' | 'bearer' | undefined {
  if (req.method !== 'POST' || req.url !== ROUTE) return undefined
  const headers = req.headers
  const type = headers['content-type']
  if ((type !== undefined && !JSON_TYPES.has(type)) || headers['transfer-encoding'] !== undefined) return undefined
  // The route refuses a request without Host (HTTP/1.1) or with two (src/http/request-lifecycle.ts): its answer.
  if (headers.host === undefined || repeatedHeader(req.rawHeaders, 'host')) return undefined
  // Node has checked that a Content-Length is digits; an empty JSON body is no body to the route (src/http/json-body.ts).
  const contentLength = headers['content-length']
  // Fastify takes a request without a content type as bodiless only for no Content-Length or exactly "0": "00" goes
  // to its parser of no content type (415 at the route).
  if (headers.authorization !== undefined) return contentLength === undefined || contentLength === '0' ? 'bearer' : undefined
  const length = Number(contentLength ?? 0)
  return type !== undefined && length >= SHORTEST_BODY && length <= maxBodyBytes ? 'body' : undefined
}

/** The Bearer token as the route reads it (src/http/bearer.ts); undefined where the route answers an error. */
function bearerOf (req: IncomingMessage): string | undefined {
  try {
    return bearerToken(authorizationHeader(req))
  } catch {
    return undefined
  }
}

/** Wraps the server's request listener (Fastify's) in the lane. */
export function hitLane (route: RequestListener, opts: HitLaneOptions): RequestListener {
  const { metrics, bodies, logger, verifiers } = opts
  const gate = opts.gate ?? new LaneGate()

  const send = (req: IncomingMessage, res: ServerResponse, text: string, identity: VerifiedIdentity, caller: string | null, startedAt: number): void => {
    const id = opts.requestId(req)
    // The route's headers, in its order (request id at arrival, then the route's, then the payload's).
    res.writeHead(200, {
      'x-request-id': id,
      'cache-control': 'no-store',
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text)
    })
    res.end(text)
    // An answer queued behind the answer to an earlier request on its connection (pipelined: Node gives it the
    // socket only when that one is written) is counted when it is written, as the route's are, and not at all
    // when the connection ends first; one with the socket is written as it ends (no closure on that path).
    if (res.socket === null) res.once('finish', () => { completed(req, id, identity, caller, startedAt) })
    else completed(req, id, identity, caller, startedAt)
  }

  /** An answer of the lane's written: its HTTP metrics and request line, as the route's. */
  const completed = (req: IncomingMessage, id: string, identity: VerifiedIdentity, caller: string | null, startedAt: number): void => {
    const durationMs = performance.now() - startedAt
    metrics?.requestCompleted(ROUTE, 'POST', 200, caller ?? undefined, undefined, durationMs / 1000)
    if (logger.isLevelEnabled('info')) {
      // The route's request logger: bound to the request id, with the trace fields of a valid traceparent.
      new RequestLogger(logger, { reqId: id }, req).info(requestLine({ method: 'POST', route: ROUTE, status: 200, outcome: { issuer: identity.issuer.id }, caller, durationMs }), 'request completed')
    }
  }

  /**
   * Gives the request to the route: the body back when the lane read one (the route reads it as if the lane had not
   * been there), with the lane's verdict on its token when it verified it.
   */
  const giveBack = (req: IncomingMessage, res: ServerResponse, body: Buffer | undefined, caller: string | null, startedAt: number, verdict?: LaneVerdict): void => {
    const lane = res as LaneResponse
    lane.callerAtArrival = caller
    if (body !== undefined) {
      req.pause()
      req.unshift(body)
    }
    // Counted from its arrival, as the route counted it before the lane.
    if (body !== undefined || verdict !== undefined) lane.arrivedAt = startedAt
    if (verdict !== undefined) lane.laneVerdict = verdict
    route(req, res)
  }

  /** How a request the lane took ended: the gate hears it (bodies only), and an answered body's request may end. */
  const settled = (req: IncomingMessage, body: Buffer | undefined, answered: boolean): void => {
    if (body === undefined) return
    gate.record(answered)
    if (answered) req.resume()
  }

  /**
   * Verifies a new token as the route would, on a lease of the Verifier in force (which a reload meanwhile does not
   * close), and answers it, or gives the request back with the verdict.
   */
  const verifyNew = (req: IncomingMessage, res: ServerResponse, token: string, key: string, body: Buffer | undefined, caller: string | null, startedAt: number): void => {
    const lease = verifiers.lease()
    /** The route answers what the verification, or the lane's answer before its head, threw. */
    const refused = (error: unknown): void => {
      giveBack(req, res, body, caller, startedAt, { error, length: token.length })
      settled(req, body, false)
    }
    let outcome: VerifiedIdentity | Promise<VerifiedIdentity>
    try {
      outcome = lease.verifier.verifyNow(token, NO_CHECKS, key)
    } catch (error) {
      verifiers.release(lease)
      refused(error)
      return
    }
    // Held before the stream can end (Node ends it in a later callback), so that the body can still be given back.
    if (body !== undefined) req.pause()
    // verifyNow returns a promise for a token it verifies in full; an identity it answered at once takes the same path.
    ;(outcome instanceof Promise ? outcome : Promise.resolve(outcome)).then((identity) => {
      verifiers.release(lease)
      // A client that went away meanwhile gets nothing, as from the route.
      if (req.destroyed) return
      try {
        send(req, res, bodies.serialize(identity), identity, caller, startedAt)
      } catch (err) {
        // After the answer went (a log destination that throws): answered. Before it: the route answers the error.
        logger.error({ err }, 'unexpected error')
        if (!res.headersSent) {
          refused(err)
          return
        }
      }
      settled(req, body, true)
    }, (error: unknown) => {
      verifiers.release(lease)
      if (!req.destroyed) refused(error)
    })
  }

  /**
   * Takes the request of `token` (a Bearer token, or the bytes between a body's quotes; `body` the body they came in):
   * answers a hit at once or verifies a new token (this file's header). False: nothing sent, counted or logged, the
   * route answers. An error of the lane never stops the process nor loses the request: the route answers when
   * nothing was sent yet.
   */
  const take = (req: IncomingMessage, res: ServerResponse, token: string | Buffer | undefined, body: Buffer | undefined, caller: string | null, startedAt: number): boolean => {
    if (token === undefined) return false
    try {
      const verifier = verifiers.current
      const key = verifier.tokenKey(token)
      if (key === undefined) return false
      const identity = verifier.cachedIdentity(key)
      if (identity !== undefined) {
        send(req, res, bodies.body(identity) ?? bodies.serialize(identity), identity, caller, startedAt)
        settled(req, body, true)
        return true
      }
      // A Bearer token is token68 characters; body bytes are the route's whole token only when they are a token's
      // bytes (`{"token":T,"nonce":"n"}` ends in the same bytes, and T","nonce":"n is no token to verify).
      if (typeof token !== 'string' && !onlyTokenBytes(token)) return false
      verifyNew(req, res, typeof token === 'string' ? token : token.toString('latin1'), key, body, caller, startedAt)
      return true
    } catch (err) {
      // This runs outside Fastify's error handling.
      logger.error({ err }, 'unexpected error')
      return res.headersSent
    }
  }

  return function hitLaneListener (req, res) {
    const shape = laneShape(req, opts.maxBodyBytes)
    // The gate first: while it stands aside, a body costs no more than this look at its headers.
    if (shape === undefined || (shape === 'body' && !gate.shouldTry()) || !opts.open()) {
      route(req, res)
      return
    }
    const caller = opts.caller(req.headers)
    if (caller === undefined) {
      route(req, res)
      return
    }
    const startedAt = performance.now()
    if (shape === 'bearer') {
      if (!take(req, res, bearerOf(req), undefined, caller, startedAt)) route(req, res)
      return
    }
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
      // Node marks the request complete in a later callback than the one that hands over the body's last bytes:
      // without this, an answer would close the connection (src/http/closing-response.ts).
      ;(res as LaneResponse).bodyTaken = true
      if (take(req, res, tokenBytes(body), body, caller, startedAt)) return
      gate.record(false)
      giveBack(req, res, body, caller, startedAt)
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
