/**
 * The address a request is limited by when no caller key names it: the client's IP (behind trusted proxies,
 * the forwarded one), an IPv6 address by its leading server.clientIpv6PrefixLength bits (a /64 by default, since
 * one host usually holds a whole /64).
 */
import { isIPv4, isIPv6 } from 'node:net'
import type { FastifyRequest } from 'fastify'
import { normalizeIP } from '@fastify/rate-limit'

/**
 * The key of requests without a usable address, one bucket for all: the connection has none any more (reset
 * before the hooks ran), or the forwarded entry is not an IP address (with server.trustProxy: true, a client
 * writes what it likes there).
 */
export const UNKNOWN_ADDRESS = 'unknown'

/**
 * A forwarded address with its client's port: some proxies write X-Forwarded-For entries as `a.b.c.d:port` or
 * `[v6]:port` (Azure Application Gateway, IIS ARR). Each new connection has a new port; the client is the address.
 * An IPv6 address in brackets without a port (`[v6]`, as RFC 7239's Forwarded writes one) is the address too.
 */
const WITH_PORT = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):\d{1,5}|\[([0-9A-Fa-f:.]+)\](?::\d{1,5})?)$/

/** The default of server.clientIpv6PrefixLength. */
const HOST_PREFIX_LENGTH = 64

export function clientAddress (request: FastifyRequest, ipv6PrefixLength = HOST_PREFIX_LENGTH): string {
  // Typed string, but undefined once the client has reset the connection (socket.remoteAddress is gone).
  const ip = request.ip as string | undefined
  if (ip === undefined) return UNKNOWN_ADDRESS
  const socketAddress = request.socket.remoteAddress
  // The connection's own address (nothing forwarded, or the very same): an IP address, in a string of its own.
  // An address without ':' is IPv4 and needs no normalizing; the IPv6 check is a large regular expression.
  if (ip === socketAddress) return ip.includes(':') ? normalizeIP(ip, ipv6PrefixLength) : socketAddress
  return forwardedAddress(ip, ipv6PrefixLength)
}

/**
 * An address read from X-Forwarded-For. The key is kept (the failed-check bound, the rate limits), so it must be
 * small: only an IP address is one, and its text is copied, since V8 keeps a piece of 13 characters or more
 * as a slice of the whole header, which a remembered `203.0.113.100` would keep alive (up to 32 KiB each).
 */
function forwardedAddress (ip: string, ipv6PrefixLength: number): string {
  const withPort = WITH_PORT.exec(ip)
  const address = withPort === null ? ip : (withPort[1] ?? withPort[2]!)
  if (isIPv4(address)) return Buffer.from(address, 'latin1').toString('latin1')
  // A new string: the prefix (or the IPv4 address of a mapped one) written out.
  if (isIPv6(address)) return normalizeIP(address, ipv6PrefixLength)
  return UNKNOWN_ADDRESS
}
