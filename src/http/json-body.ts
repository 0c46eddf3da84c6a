/**
 * The service's JSON bodies: Fastify's own parser (prototype-poisoning checks, bodyLimit), with two rules of
 * its own, for every route that takes JSON:
 * - a charset other than UTF-8 is refused (415 unsupported_media_type): JSON is UTF-8 (RFC 8259 §8.1), and a
 *   body labelled UTF-16 would otherwise be read as UTF-8 bytes, or refused as malformed with a misleading hint;
 * - an empty body is no body: a client that labels a bodiless POST as JSON (many do by default) is answered as
 *   if it had sent no content type, so `/verify` with the token in `Authorization: Bearer` works.
 */
import type { FastifyInstance } from 'fastify'
import { VerificationError } from '../errors.js'

/** Whether a Content-Type's charset parameter, if any, names UTF-8. */
export function isUtf8OrUnlabelled (contentType: string | undefined): boolean {
  // The common case, a bare media type, costs one comparison.
  if (contentType === undefined || !contentType.includes(';')) return true
  for (const parameter of contentType.split(';').slice(1)) {
    const at = parameter.indexOf('=')
    if (at === -1 || parameter.slice(0, at).trim().toLowerCase() !== 'charset') continue
    const value = parameter.slice(at + 1).trim().replace(/^"(.*)"$/, '$1').toLowerCase()
    if (value !== 'utf-8' && value !== 'utf8') return false
  }
  return true
}

/** Replaces the app's application/json parser (call before the routes are registered). */
export function acceptJsonBodies (fastify: FastifyInstance): void {
  const parse = fastify.getDefaultJsonParser('error', 'error')
  fastify.removeContentTypeParser('application/json')
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (!isUtf8OrUnlabelled(request.headers['content-type'])) {
      done(new VerificationError('unsupported_media_type'), undefined)
      return
    }
    if (body === '') {
      done(null, undefined)
      return
    }
    parse(request, body as string, done)
  })
}
