/**
 * The service's JSON bodies: Fastify's own parser (prototype-poisoning checks, bodyLimit), with rules of its
 * own, for every route that takes JSON:
 * - a charset other than UTF-8 (or ASCII) is refused (415 unsupported_media_type): JSON is UTF-8 (RFC 8259
 *   §8.1), and a body labelled UTF-16 would otherwise be read as UTF-8 bytes, or refused as malformed with a
 *   misleading hint;
 * - an empty body is no body: a client that labels a bodiless POST as JSON (many do by default) is answered as
 *   if it had sent no content type, so `/verify` with the token in `Authorization: Bearer` works;
 * - a large body nested deeper than any request schema is refused before it is parsed (400 request_invalid);
 * - a body that names a member twice in one object is refused (400 request_invalid), as in a token
 *   (src/core/json-members.ts): `{"token":"A","token":"B"}` would be B here and A to a proxy or log reading the
 *   first.
 */
import type { FastifyInstance } from 'fastify'
import { nestsDeeperThan } from '../core/compact-jws.js'
import { hasDuplicateMembers } from '../core/json-members.js'
import { VerificationError } from '../errors.js'

/** Charsets a JSON body may declare: UTF-8, and ASCII, its subset. */
export const JSON_CHARSETS: ReadonlySet<string> = new Set(['utf-8', 'utf8', 'us-ascii'])
/**
 * Charsets a form body may declare: any that writes ASCII as ASCII, since the values that matter (tokens) are
 * ASCII and percent-escapes are read as UTF-8 (some HTTP clients label every form ISO-8859-1).
 */
export const FORM_CHARSETS: ReadonlySet<string> = new Set([...JSON_CHARSETS, 'iso-8859-1', 'latin1', 'windows-1252'])

/** Whether a Content-Type's charset parameter, if any, is one of `allowed` (lower case). */
export function hasCharsetOf (contentType: string | undefined, allowed: ReadonlySet<string>): boolean {
  // The common case, a bare media type, costs one comparison.
  if (contentType === undefined || !contentType.includes(';')) return true
  for (const parameter of contentType.split(';').slice(1)) {
    const at = parameter.indexOf('=')
    if (at === -1 || parameter.slice(0, at).trim().toLowerCase() !== 'charset') continue
    if (!allowed.has(parameter.slice(at + 1).trim().replace(/^"(.*)"$/, '$1').toLowerCase())) return false
  }
  return true
}

/**
 * No request schema nests deeper than two (an object holding a list of strings). A body of 1 MB of "[" makes
 * JSON.parse build half a million arrays (about 100 ms and 100 MB) before the schema can refuse it, so a large
 * body is first checked for nesting deeper than MAX_BODY_DEPTH (the compact-JWS parse's check,
 * src/core/compact-jws.ts); a small one (a /verify body) is not worth it, JSON.parse of it being bounded by its
 * size.
 */
export const MAX_BODY_DEPTH = 8
const DEPTH_SCAN_BYTES = 16_384

/** Replaces the app's application/json parser (call before the routes are registered). */
export function acceptJsonBodies (fastify: FastifyInstance): void {
  const parse = fastify.getDefaultJsonParser('error', 'error')
  fastify.removeContentTypeParser('application/json')
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') {
      done(null, undefined)
      return
    }
    if (!hasCharsetOf(request.headers['content-type'], JSON_CHARSETS)) {
      done(new VerificationError('unsupported_media_type'), undefined)
      return
    }
    if (body.length > DEPTH_SCAN_BYTES && nestsDeeperThan(body as string, MAX_BODY_DEPTH)) {
      done(new VerificationError('request_invalid', { parameter: 'body' }), undefined)
      return
    }
    parse(request, body as string, (err, value) => {
      if (err === null && hasDuplicateMembers(body as string, value)) done(new VerificationError('request_invalid', { parameter: 'body' }), undefined)
      else done(err, value)
    })
  })
}
