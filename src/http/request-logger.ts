/**
 * The per-request logger, built when it is first needed. Fastify gives every request a child of the app's
 * logger bound to its request id; pino builds a child at once, serializing the bindings into a string
 * (0.4–0.6 µs per request in the service's profile). Most requests log nothing at the levels busy deployments
 * run (`warn`: the request line is `info`), so here the pino child is made the first time the request logs
 * at a level in force, with the same bindings: what reaches the log is what pino's own child writes. A
 * caller's valid W3C `traceparent` adds `traceId` and `spanId` to the bindings (src/http/trace-context.ts),
 * read from the request only then: a request that logs nothing never looks at the header.
 */
import type { FastifyBaseLogger, FastifyServerOptions } from 'fastify'
import type { IncomingMessage } from 'node:http'
import type { Bindings, ChildLoggerOptions, Level, Logger } from 'pino'
import { traceFields } from './trace-context.js'

/** What the request logger reads of a request: its headers, once, when it builds its child. */
export type LoggedRequest = Pick<IncomingMessage, 'headers' | 'rawHeaders'>

/** The request's bindings with the trace fields of its traceparent, when it has a valid one. */
function requestBindings (bindings: Bindings, request: LoggedRequest | undefined): Bindings {
  const trace = request === undefined ? undefined : traceFields(request)
  return trace === undefined ? bindings : { ...bindings, traceId: trace.traceId, spanId: trace.spanId }
}

type LogArgs = [unknown, ...unknown[]]

export class RequestLogger {
  readonly #parent: Logger
  readonly #bindings: Bindings
  readonly #request: LoggedRequest | undefined
  #child: Logger | undefined

  constructor (parent: Logger, bindings: Bindings, request?: LoggedRequest) {
    this.#parent = parent
    this.#bindings = bindings
    this.#request = request
  }

  /** The pino child, made on first use (the request's traceparent is read then). */
  #real (): Logger {
    this.#child ??= this.#parent.child(requestBindings(this.#bindings, this.#request))
    return this.#child
  }

  /** The logger whose level is in force: the child once made, else the parent (the child starts at its level). */
  get #inForce (): Logger {
    return this.#child ?? this.#parent
  }

  #log (level: Level, args: LogArgs): void {
    if (!this.#inForce.isLevelEnabled(level)) return
    ;(this.#real()[level] as (...a: LogArgs) => void)(...args)
  }

  get level (): string {
    return this.#inForce.level
  }

  set level (level: string) {
    this.#real().level = level
  }

  isLevelEnabled (level: string): boolean {
    return this.#inForce.isLevelEnabled(level)
  }

  bindings (): Bindings {
    return this.#real().bindings()
  }

  child (bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#real().child(bindings, options)
  }

  fatal (...args: LogArgs): void { this.#log('fatal', args) }
  error (...args: LogArgs): void { this.#log('error', args) }
  warn (...args: LogArgs): void { this.#log('warn', args) }
  info (...args: LogArgs): void { this.#log('info', args) }
  debug (...args: LogArgs): void { this.#log('debug', args) }
  trace (...args: LogArgs): void { this.#log('trace', args) }
  silent (): void {}
}

/**
 * Fastify's childLoggerFactory: a RequestLogger, or pino's child at once when a route asks for its own level
 * or serializers (no route of this service does). Either way with the trace fields of a valid traceparent.
 */
export const requestChildLogger: NonNullable<FastifyServerOptions['childLoggerFactory']> = (logger, bindings, options, rawRequest) => {
  const parent = logger as unknown as Logger
  // HTTP/1 or HTTPS: an IncomingMessage (the service serves no HTTP/2).
  const request = rawRequest as unknown as LoggedRequest | undefined
  if (options.level !== undefined || options.serializers !== undefined) return parent.child(requestBindings(bindings, request), options)
  return new RequestLogger(parent, bindings, request) as unknown as FastifyBaseLogger
}
