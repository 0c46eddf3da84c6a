/**
 * application/x-www-form-urlencoded bodies, for the routes that take only them (/introspect, RFC 7662 §2.1;
 * /backchannel-logout, Back-Channel Logout 1.0 §2.5): within the route's plugin, every other content type is
 * refused (415), so JSON is not a second, untested way in. A repeated parameter is refused (RFC 6749 §3.1),
 * since we cannot tell which is meant, and so is a form of more than MAX_FORM_FIELDS parameters.
 */
import type { FastifyInstance } from 'fastify'
import { VerificationError } from '../errors.js'
import { FORM_CHARSETS, hasCharsetOf } from './json-body.js'

/**
 * Parameters a form may have: /introspect reads four and a client may add its own authentication (client_id,
 * client_secret, client_assertion, client_assertion_type), /backchannel-logout reads one. Counted ("&") before
 * the form is parsed: a body of server.bodyLimit holds thousands, and parsing and validating 6,000 cost about
 * 2.5 ms a request, on routes open to any client by default.
 */
export const MAX_FORM_FIELDS = 32

/** application/x-www-form-urlencoded → name → value, refusing repeated names and too many (request_invalid). */
export function parseForm (body: string): Record<string, string> {
  let separators = 0
  for (let i = body.indexOf('&'); i !== -1; i = body.indexOf('&', i + 1)) {
    if (++separators >= MAX_FORM_FIELDS) throw new VerificationError('request_invalid', { parameter: 'body' })
  }
  const out: Record<string, string> = Object.create(null) as Record<string, string>
  for (const [name, value] of new URLSearchParams(body)) {
    if (Object.hasOwn(out, name)) throw new VerificationError('request_invalid', { parameter: 'body' })
    out[name] = value
  }
  return out
}

/** Call inside a route's plugin: its routes take form bodies and nothing else. */
export function acceptFormBodiesOnly (fastify: FastifyInstance): void {
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (request, body, done) => {
    // A body in a charset that does not write ASCII as ASCII (UTF-16) is refused.
    if (!hasCharsetOf(request.headers['content-type'], FORM_CHARSETS)) {
      done(new VerificationError('unsupported_media_type'), undefined)
      return
    }
    try {
      done(null, parseForm(body as string))
    } catch (err) {
      done(err as Error, undefined)
    }
  })
}
