/**
 * Forward-auth: one endpoint for the three common proxy protocols.
 *
 *   nginx auth_request   GET /forward-auth[?group=…&role=…&audience=…&issuer=…]  (a subrequest)
 *   Traefik ForwardAuth  GET /forward-auth[?…]  with X-Forwarded-Method/-Host/-Uri
 *   Envoy ext_authz HTTP <original method> /forward-auth/envoy<original path and query>  (path_prefix)
 *
 * Envoy has its own prefix because there the query is the app's, not ours: a proxy pointed at
 * "/forward-auth/?group=admins" by mistake must not lose its requirement. Any other path under
 * /forward-auth/ is the same as /forward-auth (its query holds requirements; the path is not read).
 *
 * 200 with identity headers when the token is good and meets every requirement; 401 (WWW-Authenticate) for a
 * missing or bad token; 403 for a good token that fails a requirement. nginx turns any other status into a
 * 500, so nothing else ever comes from here: no body parsing (no 400/413/415), no rate limit (no 429), every
 * method and every path under the prefix (no 404), and "cannot decide now" (keys unavailable, overload, a bug)
 * answers forwardAuth.keysUnavailableStatus (401 by default: fail closed).
 */
import { METHODS } from 'node:http'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify'
import type { Config, ForwardAuthConfig } from '../../config/types.js'
import { checkRequirements, type Requirements } from '../../core/requirements.js'
import { isVerificationError, VerificationError } from '../../errors.js'
import { asVerificationError, errorBody, errorOutcome } from '../error-reply.js'
import { identityHeaders } from '../identity-headers.js'
import { readOriginalRequest, ruleApplies, summarize, type EnvoyReading } from '../original-request.js'
import { parseRequirementQuery, rawQuery, RequirementQueryError, type KnownValues } from '../requirement-query.js'
import { ErrorResponseSchema } from '../schemas.js'
import { findToken } from '../token-sources.js'

export const FORWARD_AUTH_PATH = '/forward-auth'
/** Envoy's path_prefix: what follows is the original path and query. */
export const ENVOY_PATH = `${FORWARD_AUTH_PATH}/envoy`

/** An absolute-form request target (RFC 9112 §3.2.2: `GET http://host/path`): scheme, authority, then the path. */
const ABSOLUTE_FORM = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/

/** The path and query of a request target, in origin form whatever its form. */
function originForm (url: string): string {
  const absolute = ABSOLUTE_FORM.exec(url)
  if (absolute === null) return url
  const rest = url.slice(absolute[0].length)
  return rest.startsWith('/') ? rest : `/${rest}`
}

/** True for the forward-auth URL and everything under it (Envoy's path_prefix), in origin or absolute form. */
export function isForwardAuthUrl (url: string | undefined): boolean {
  if (url === undefined) return false
  const path = originForm(url)
  if (!path.startsWith(FORWARD_AUTH_PATH)) return false
  const next = path.charAt(FORWARD_AUTH_PATH.length)
  return next === '' || next === '/' || next === '?'
}

/**
 * The URL Fastify routes on (its rewriteUrl): every Envoy check goes to ENVOY_PATH/ itself. What follows the prefix
 * is the app's own path, which the router would percent-decode, and an escape it cannot decode (a stray "%", a
 * Latin-1 "%E9") would be a 401 for a signed-in user on a path the app serves. The handler reads the original URL.
 */
export function routingUrl (url: string): string {
  return originForm(url).startsWith(`${ENVOY_PATH}/`) ? `${ENVOY_PATH}/` : url
}

const knownByConfig = new WeakMap<Config, KnownValues>()

/** Configured issuer ids and audiences, computed once per configuration (a reload brings a new one). */
function knownValues (config: Config): KnownValues {
  let known = knownByConfig.get(config)
  if (known === undefined) {
    known = {
      issuerIds: new Set(config.issuers.map((i) => i.id)),
      audiences: new Set(config.issuers.flatMap((i) => i.audiences))
    }
    knownByConfig.set(config, known)
  }
  return known
}

/** The status forward-auth gives a failure: 401, 403, or the configured answer for "cannot decide". */
export function denialStatus (err: VerificationError, config: Pick<ForwardAuthConfig, 'keysUnavailableStatus'>): number {
  // Too many failed caller-key checks from the proxy's address: its key is at fault, not the user's login (a 401
  // would send every user behind that proxy to log in again).
  if (err.code === 'rate_limited') return 403
  if (err.family === 'token' || err.family === 'request') return 401
  if (err.family === 'unavailable' || err.family === 'internal') return config.keysUnavailableStatus
  // forbidden (requirements) and caller authentication: 403 is theirs; anything else is denied too.
  return err.status === 401 ? 401 : 403
}

export function sendDenial (request: FastifyRequest, reply: FastifyReply, err: VerificationError, config: Pick<ForwardAuthConfig, 'keysUnavailableStatus'>): FastifyReply {
  const status = denialStatus(err, config)
  request.outcome = { ...request.outcome, ...errorOutcome(err) }
  reply.header('cache-control', 'no-store')
  if (status === 401) {
    // RFC 6750 §3.1: invalid_token for a token that failed, invalid_request for a request that carries its token
    // wrongly (malformed, or in more than one way), and no error code when it carried no token at all.
    reply.header('www-authenticate', err.family === 'token'
      ? `Bearer error="invalid_token", error_description="${err.code}"`
      : err.family === 'request' && err.code !== 'token_missing' ? `Bearer error="invalid_request", error_description="${err.code}"` : 'Bearer')
  } else if (err.code === 'requirement_not_met') {
    reply.header('www-authenticate', 'Bearer error="insufficient_scope"')
  }
  if (status === 503 || err.code === 'rate_limited') reply.header('retry-after', String(err.details.retryAfterSeconds ?? 1))
  return reply.code(status).send(errorBody(request, err))
}

/** Every method Node can parse but CONNECT: Envoy forwards the original method. */
function allMethods (supported: readonly string[]): HTTPMethods[] {
  return [...new Set([...supported, ...METHODS])].filter((m) => m !== 'CONNECT') as HTTPMethods[]
}

export const forwardAuthRoute: FastifyPluginAsync = async (fastify) => {
  for (const method of METHODS) {
    if (method !== 'CONNECT' && !fastify.supportedMethods.includes(method)) fastify.addHttpMethod(method)
  }
  // The body is never read: a proxy may forward one (Envoy with_request_body, Traefik forwardBody), and
  // parsing it could only produce 400/413/415. Its Content-Type is dropped before Fastify looks at it.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, _payload, done) => { done(null, undefined) })
  // QUERY must carry a Content-Type (RFC 10008; Fastify refuses it without one): a neutral one, never parsed.
  fastify.addHook('onRequest', async (request) => {
    if (request.raw.method === 'QUERY') request.raw.headers['content-type'] = 'application/octet-stream'
    else delete request.raw.headers['content-type']
  })

  const forwardAuth = (): ForwardAuthConfig => fastify.verifierSlot.config.forwardAuth

  fastify.setErrorHandler((err, request, reply) => {
    const error = asVerificationError(err, request)
    if (err instanceof RequirementQueryError) {
      // A configuration mistake in the proxy: loud, with the parameter's name only (values may be anything).
      request.log.error({ parameter: err.parameter, reason: err.reason }, 'forward-auth URL has an invalid requirement; every request is denied')
    } else if (error.status >= 500 && !isVerificationError(err)) {
      // As on the other routes: a framework 4xx (a request it cannot take) is the client's, not a bug.
      request.log.error({ err }, 'unexpected error')
    }
    return sendDenial(request, reply, error, forwardAuth())
  })

  const handle = async (request: FastifyRequest, reply: FastifyReply, envoy: EnvoyReading | undefined): Promise<FastifyReply> => {
    // A proxy sends its checks in origin form. In absolute form (`GET http://host/forward-auth/…`, a direct call) the
    // target's host and the Host header could name different hosts for the rules: refused, as a malformed check.
    if (!request.originalUrl.startsWith('/')) throw new VerificationError('request_invalid', { parameter: 'request target' })
    // Read once: a configuration reload may swap both while this request runs.
    const config = fastify.verifierSlot.config
    const verifier = request.verifier
    const fa = config.forwardAuth
    request.outcome = { original: summarize(request.headers, envoy) }

    const original = readOriginalRequest(request.headers, envoy)
    const sets: Requirements[] = [fa.require, ...fa.rules.filter((rule) => ruleApplies(rule, original)).map((rule) => rule.require)]
    // Envoy appends the original query to the path: there it is the app's, not ours.
    if (envoy === undefined) sets.push(parseRequirementQuery(rawQuery(request.raw.url ?? ''), knownValues(config)))

    const found = findToken(request.raw, fa)
    const identity = await verifier.verify(found.token)
    checkRequirements(identity, sets, (issuerId, azp, clients) => verifier.isOtherClient(issuerId, azp, clients))

    request.outcome = { ...request.outcome, issuer: identity.issuer.id }
    reply.header('cache-control', 'no-store')
    for (const [name, value] of Object.entries(identityHeaders(identity, fa))) reply.header(name, value)
    if (fa.stripToken) {
      const carriers: string[] = []
      if (found.sources.includes('authorization')) carriers.push('authorization')
      if (found.sources.includes('header') && fa.tokenHeader !== undefined) carriers.push(fa.tokenHeader)
      // A cookie cannot be removed alone (Cookie carries the app's other cookies too).
      if (carriers.length > 0) reply.header('x-envoy-auth-headers-to-remove', carriers.join(', '))
    }
    return reply.code(200).send()
  }

  const schema = { response: { '4xx': ErrorResponseSchema, '5xx': ErrorResponseSchema } }
  const methods = allMethods(fastify.supportedMethods)
  for (const url of [FORWARD_AUTH_PATH, `${FORWARD_AUTH_PATH}/*`]) {
    fastify.route({ method: methods, url, schema, handler: async (request, reply) => await handle(request, reply, undefined) })
  }
  fastify.route({
    method: methods,
    url: `${ENVOY_PATH}/*`,
    schema,
    handler: async (request, reply) => await handle(request, reply, {
      method: request.method,
      host: request.headers.host,
      uri: request.originalUrl.slice(ENVOY_PATH.length)
    })
  })
}
