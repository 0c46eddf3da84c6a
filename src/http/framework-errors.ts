/**
 * Fastify answers a malformed URL (bad percent-encoding in a path parameter) or an oversized path parameter
 * by itself, before any hook or error handler, with its own body. This sends them through ours instead: the
 * one error shape everywhere, and under the forward-auth prefix a 401 (a proxy in front of an app sends the
 * original path there, and nginx would turn a 400 into a 500).
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { fromFrameworkError, sendError } from './error-reply.js'
import { isForwardAuthUrl, sendDenial } from './routes/forward-auth.js'

export function frameworkErrors (error: Error, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const err = fromFrameworkError(error as { code?: string, statusCode?: number })
  // Fail closed: without a route there is no configuration at hand, and a malformed URL is never allowed.
  if (isForwardAuthUrl(request.raw.url)) return sendDenial(request, reply, err, { keysUnavailableStatus: 401 })
  return sendError(request, reply, err)
}
