/**
 * Strict, single-pass parsing of a compact JWS (RFC 7515 §7.1) before anything is trusted.
 * Exactly three segments, canonical unpadded base64url, UTF-8 JSON objects for header and payload.
 * Anything else is `token_malformed`, and so is JSON nested deeper than MAX_JSON_DEPTH (no real header or claim
 * set comes near it; thousands of levels would overflow the stack when the claims are serialized in the answer),
 * and JSON that names a member twice in one object (src/core/json-members.ts); a five-segment compact JWE is
 * `token_encrypted`.
 */
import { isUtf8 } from 'node:buffer'
import { VerificationError } from '../errors.js'
import { decodeBase64url } from './base64url.js'
import { hasDuplicateMembers } from './json-members.js'

export interface ParsedJws {
  header: Record<string, unknown>
  payload: Record<string, unknown>
  /** The ASCII bytes that were signed: `base64url(header) "." base64url(payload)`. */
  signingInput: Buffer
  signature: Buffer
}

/** Arrays and objects inside one another: deeper is refused (a provider's claims nest a few levels). */
export const MAX_JSON_DEPTH = 64

/**
 * Whether JSON text nests arrays and objects deeper than `max`. Counting the opening brackets first (native
 * indexOf, no per-character work in JavaScript) settles it for every ordinary token: fewer than `max` of them
 * cannot nest deeper. Only a text with more is scanned, brackets inside strings not counted.
 */
export function nestsDeeperThan (text: string, max: number): boolean {
  let opening = 0
  for (let i = text.indexOf('['); i !== -1 && opening <= max; i = text.indexOf('[', i + 1)) opening++
  for (let i = text.indexOf('{'); i !== -1 && opening <= max; i = text.indexOf('{', i + 1)) opening++
  if (opening <= max) return false
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // a backslash escapes the next character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) {
      inString = true
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true
    } else if (c === 0x5d || c === 0x7d) {
      depth--
    }
  }
  return false
}

/** Decodes a base64url segment, refusing padding, foreign characters and non-canonical trailing bits. */
function decodeSegment (segment: string): Buffer {
  const bytes = decodeBase64url(segment)
  if (bytes === undefined) throw malformed()
  return bytes
}

function decodeJsonObject (segment: string): Record<string, unknown> {
  if (segment.length === 0) throw malformed()
  let value: unknown
  try {
    const bytes = decodeSegment(segment)
    // Fatal on invalid UTF-8 (a replacement character would change what was signed into something else).
    if (!isUtf8(bytes)) throw malformed()
    const text = bytes.toString('utf8')
    if (nestsDeeperThan(text, MAX_JSON_DEPTH)) throw malformed()
    value = JSON.parse(text)
    if (hasDuplicateMembers(text, value)) throw malformed()
  } catch (err) {
    if (err instanceof VerificationError) throw err
    // Not kept as the cause: JSON.parse's message quotes the decoded payload, the token's claims.
    throw malformed()
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed()
  return value as Record<string, unknown>
}

function malformed (): VerificationError {
  return new VerificationError('token_malformed')
}

/** Counts dots without allocating; the number of segments decides JWS vs JWE before any decoding. */
function countDots (token: string): number {
  let dots = 0
  for (let i = token.indexOf('.'); i !== -1; i = token.indexOf('.', i + 1)) dots++
  return dots
}

/** Five segments: a compact JWE (an encrypted token), which is decrypted before it is parsed as a JWS. */
export function isCompactJwe (token: string): boolean {
  return countDots(token) === 4
}

export function parseCompactJws (token: string, maxTokenBytes: number): ParsedJws {
  // The token is ASCII when well formed, so its length is its size in bytes; anything longer is refused unread.
  if (token.length > maxTokenBytes) throw new VerificationError('token_too_large')
  const dots = countDots(token)
  if (dots === 4) throw new VerificationError('token_encrypted')
  if (dots !== 2) throw malformed()

  const first = token.indexOf('.')
  const second = token.indexOf('.', first + 1)
  const header = decodeJsonObject(token.slice(0, first))
  const payload = decodeJsonObject(token.slice(first + 1, second))
  const signatureSegment = token.slice(second + 1)
  if (signatureSegment.length === 0) throw malformed()
  const signature = decodeSegment(signatureSegment)
  return { header, payload, signingInput: Buffer.from(token.slice(0, second), 'latin1'), signature }
}
