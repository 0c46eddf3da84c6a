/**
 * The address a request is limited by when no caller key names it: the client's IP (behind trusted proxies,
 * the forwarded one), an IPv6 address by its /64, since one host usually holds a whole /64.
 */
import type { FastifyRequest } from 'fastify'
import { normalizeIP } from '@fastify/rate-limit'

export function clientAddress (request: FastifyRequest): string {
  // An address without ':' is IPv4 and needs no normalizing; the IPv6 check is a large regular expression.
  return request.ip.includes(':') ? normalizeIP(request.ip) : request.ip
}
