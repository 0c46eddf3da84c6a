/**
 * A request to a route that exists, with a method it does not take, is 405 method_not_allowed with an Allow
 * header (RFC 9110 §15.5.6), not a 404 that says there is no such route. Fastify answers both from its
 * not-found handler; this tells them apart by the methods each route path was registered with.
 *
 * Routes match exactly, as the contract (openapi.yaml) names them. A 404 whose path names a route but for
 * trailing slashes or letter case (a provider configured with `https://…/backchannel-logout/`, a caller with
 * `/Verify`) says which route it nearly named (`nearRoute`, in the answer and the request line), with the methods
 * that route takes (`nearRouteMethods`: GET /Verify nearly names /verify, which takes POST), so that the operator who
 * reads either can fix the URL; the request's own path is never repeated.
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

/** The path without its trailing slashes ("/" stays "/"); a loop, not a regular expression, for a path of many slashes. */
function withoutTrailingSlashes (path: string): string {
  let end = path.length
  while (end > 1 && path.charCodeAt(end - 1) === 0x2f) end--
  return end === path.length ? path : path.slice(0, end)
}

/** A-Z to a-z, nothing else: Unicode's toLowerCase also folds the Kelvin sign to k, which no route is spelled with. */
function asciiLowerCase (text: string): string {
  return text.replace(/[A-Z]+/g, (upper) => upper.toLowerCase())
}

/**
 * The registered route `path` nearly names: the same path but for trailing slashes or letter case. `routes` maps a
 * route path, lower-cased and without trailing slashes, to the path as registered (static routes only).
 */
function nearRouteOf (path: string, routes: ReadonlyMap<string, string>): string | undefined {
  const near = routes.get(asciiLowerCase(withoutTrailingSlashes(path)))
  return near === undefined || near === path ? undefined : near
}

/**
 * Call before the routes are registered: records every route's methods (onRoute), and sets the not-found
 * handler, with `options` (a rate limit: a scanner pays for either answer).
 */
export function answerUnknownRoutes (fastify: FastifyInstance, options: Parameters<FastifyInstance['setNotFoundHandler']>[0] = {}): void {
  const methodsByPath = new Map<string, Set<string>>()
  const staticRoutes = new Map<string, string>()
  fastify.addHook('onRoute', (route) => {
    const methods = methodsByPath.get(route.url) ?? new Set<string>()
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) methods.add(method)
    methodsByPath.set(route.url, methods)
    // A path with parameters or a wildcard matches more than itself: no near route is named for it.
    if (!/[:*]/.test(route.url)) staticRoutes.set(asciiLowerCase(withoutTrailingSlashes(route.url)), route.url)
  })
  /** A registered path's methods, sorted (a near route is a registered path: it has some). */
  const methodsOf = (path: string): string[] => [...methodsByPath.get(path) ?? []].sort()
  fastify.setNotFoundHandler(options, async (request: FastifyRequest, reply: FastifyReply) => {
    const query = request.url.indexOf('?')
    const path = routedPath(query === -1 ? request.url : request.url.slice(0, query))
    if (!methodsByPath.has(path)) {
      const nearRoute = nearRouteOf(path, staticRoutes)
      return sendError(request, reply, new VerificationError('not_found', nearRoute === undefined ? {} : { nearRoute, nearRouteMethods: methodsOf(nearRoute) }))
    }
    reply.header('allow', methodsOf(path).join(', '))
    return sendError(request, reply, new VerificationError('method_not_allowed'))
  })
}
