/**
 * A caller's W3C Trace Context (`traceparent`, https://www.w3.org/TR/trace-context/), for the request's log
 * lines only: its trace-id and parent-id become the `traceId` and `spanId` fields, so that operators can join
 * the lines with their traces. Nothing is propagated (the service makes no outbound call for a request) and
 * no span is made. Read by the request logger when it builds its pino child (src/http/request-logger.ts): a
 * request that logs nothing never reads the header.
 */
import type { IncomingMessage } from 'node:http'
import { repeatedHeader } from './bearer.js'

/** What the log lines of a request with a valid traceparent carry. */
export interface TraceFields {
  traceId: string
  spanId: string
}

/**
 * Longer values are ignored. Version 00 is exactly 55 characters; a later version may add fields after the
 * flags ("Versioning of traceparent"), of which nothing is read here: 512 is room for them, not for a header
 * sent to make every log line long (the fields logged are always 32 and 16 characters).
 */
export const MAX_TRACEPARENT_LENGTH = 512

// version "-" trace-id "-" parent-id "-" trace-flags, lower-case hex only; then the end, or a dash and the
// fields of a later version.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(?:-|$)/
const ZERO_TRACE_ID = '0'.repeat(32)
const ZERO_PARENT_ID = '0'.repeat(16)

/**
 * The trace-id and parent-id of a valid traceparent value, or undefined. Version ff is invalid; version 00 has
 * nothing after the flags; a higher version is read as 00 when what follows the flags starts a new field (the
 * specification's rule for versions not yet written). All-zero ids are invalid.
 */
export function parseTraceparent (value: string): TraceFields | undefined {
  if (value.length > MAX_TRACEPARENT_LENGTH) return undefined
  const match = TRACEPARENT.exec(value)
  if (match === null) return undefined
  const [, version, traceId, spanId] = match as unknown as [string, string, string, string]
  if (version === 'ff' || (version === '00' && value.length !== 55)) return undefined
  if (traceId === ZERO_TRACE_ID || spanId === ZERO_PARENT_ID) return undefined
  return { traceId, spanId }
}

/**
 * The trace fields of a request, or undefined when it has no traceparent, an invalid one, or several lines of
 * it (Node joins them with ", ", which a later version's extra fields could hide). Never an error: the header
 * only labels log lines, and a bad one is ignored, neither answered nor logged.
 */
export function traceFields (message: Pick<IncomingMessage, 'headers' | 'rawHeaders'>): TraceFields | undefined {
  const value = message.headers.traceparent
  if (typeof value !== 'string') return undefined
  const fields = parseTraceparent(value)
  if (fields === undefined || repeatedHeader(message.rawHeaders, 'traceparent')) return undefined
  return fields
}
