/**
 * The address a request is limited by when no caller key names it: the client's IP (behind trusted proxies,
 * the forwarded one), an IPv6 address by its /64, since one host usually holds a whole /64.
 */
import type { FastifyRequest } from 'fastify'
import { normalizeIP } from '@fastify/rate-limit'

/** The key of requests whose connection has no address any more (reset before the hooks ran): one bucket for all. */
export const UNKNOWN_ADDRESS = 'unknown'

export function clientAddress (request: FastifyRequest): string {
  // Typed string, but undefined once the client has reset the connection (socket.remoteAddress is gone).
  const ip = request.ip as string | undefined
  if (ip === undefined) return UNKNOWN_ADDRESS
  // An address without ':' is IPv4 and needs no normalizing; the IPv6 check is a large regular expression.
  return ip.includes(':') ? normalizeIP(ip) : ip
}
