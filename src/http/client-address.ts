/**
 * The address a request is limited by when no caller key names it: the client's IP (behind trusted proxies,
 * the forwarded one), an IPv6 address by its /64, since one host usually holds a whole /64.
 */
import type { FastifyRequest } from 'fastify'
import { normalizeIP } from '@fastify/rate-limit'

/** The key of requests whose connection has no address any more (reset before the hooks ran): one bucket for all. */
export const UNKNOWN_ADDRESS = 'unknown'

/**
 * A forwarded address with its client's port: some proxies write X-Forwarded-For entries as `a.b.c.d:port` or
 * `[v6]:port` (Azure Application Gateway, IIS ARR). Each new connection has a new port; the client is the address.
 */
const WITH_PORT = /^(?:(\d{1,3}(?:\.\d{1,3}){3})|\[([0-9A-Fa-f:.]+)\]):\d{1,5}$/

export function clientAddress (request: FastifyRequest): string {
  // Typed string, but undefined once the client has reset the connection (socket.remoteAddress is gone).
  const ip = request.ip as string | undefined
  if (ip === undefined) return UNKNOWN_ADDRESS
  // An address without ':' is IPv4 and needs no normalizing; the IPv6 check is a large regular expression.
  if (!ip.includes(':')) return ip
  const withPort = WITH_PORT.exec(ip)
  if (withPort === null) return normalizeIP(ip)
  return withPort[1] ?? normalizeIP(withPort[2]!)
}
