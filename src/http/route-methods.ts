/**
 * A request to a route that exists, with a method it does not take, is 405 method_not_allowed with an Allow
 * header (RFC 9110 §15.5.6), not a 404 that says there is no such route. Fastify answers both from its
 * not-found handler; this tells them apart by the methods each route path was registered with.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { VerificationError } from '../errors.js'
import { sendError } from './error-reply.js'

/** The path as the router matches it: percent-escapes decoded (/verif%79 is /verify), a bad escape left as it is. */
function routedPath (path: string): string {
  if (!path.includes('%')) return path
  try {
    return decodeURI(path)
  } catch {
    return path
  }
}

/**
 * Call before the routes are registered: records every route's methods (onRoute), and sets the not-found
 * handler, with `options` (a rate limit: a scanner pays for either answer).
 */
export function answerUnknownRoutes (fastify: FastifyInstance, options: Parameters<FastifyInstance['setNotFoundHandler']>[0] = {}): void {
  const methodsByPath = new Map<string, Set<string>>()
  fastify.addHook('onRoute', (route) => {
    const methods = methodsByPath.get(route.url) ?? new Set<string>()
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) methods.add(method)
    methodsByPath.set(route.url, methods)
  })
  fastify.setNotFoundHandler(options, async (request: FastifyRequest, reply: FastifyReply) => {
    const query = request.url.indexOf('?')
    const methods = methodsByPath.get(routedPath(query === -1 ? request.url : request.url.slice(0, query)))
    if (methods === undefined) return sendError(request, reply, new VerificationError('not_found'))
    reply.header('allow', [...methods].sort().join(', '))
    return sendError(request, reply, new VerificationError('method_not_allowed'))
  })
}
