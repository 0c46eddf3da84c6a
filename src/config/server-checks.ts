/**
 * Semantic checks of the server and jwks sections: what the schema walk (src/config/schema-check.ts) cannot
 * say (trusted proxy addresses, no "localhost" listener, maxTokenBytes below bodyLimit, freshness and backoff
 * bounds, JWKS cache entries the issuers need), and the HOST, PORT and LOG_LEVEL variables that override the
 * file's server section.
 */
import { isIP } from 'node:net'
import { envValue, isRecord } from './document.js'
import { ENVIRONMENT } from './environment-mode.js'
import { listsOnlyHmac } from './issuers.js'
import { describe, intField, report, type Ctx, type Schema } from './schema-check.js'
import { JWKS_DEFAULTS, JwksCacheSchema, LOG_LEVELS, SERVER_DEFAULTS, ServerSchema } from './schema.js'
import type { ServerConfig } from './types.js'

const PROXY_KEYWORDS = new Set(['loopback', 'linklocal', 'uniquelocal'])

function isProxyAddress (value: string): boolean {
  if (PROXY_KEYWORDS.has(value)) return true
  const parts = value.split('/')
  if (parts.length > 2) return false
  const version = isIP(parts[0]!)
  if (version === 0) return false
  const bits = parts[1]
  if (bits === undefined) return true
  if (/^[0-9]{1,3}$/.test(bits)) return Number(bits) <= (version === 4 ? 32 : 128)
  return version === 4 && isIP(bits) === 4 // address/netmask
}

/**
 * Listening on the name "localhost" makes Fastify open one server per address it resolves to (127.0.0.1 and
 * ::1); what the service sets up on its listener (certificate renewal, the header limit, ending kept-alive
 * connections at a stop) would reach only the first.
 */
const LOCALHOST_PROBLEM = 'expected an address, not the name "localhost", which opens a second listener (for ::1) that certificate renewal, the header limit and the graceful stop do not reach: use 127.0.0.1 (the default), ::1, or :: for every address'
const isLocalhostName = (host: string): boolean => host === 'localhost'

export function checkServer (server: unknown, ctx: Ctx): void {
  if (!isRecord(server) && server !== undefined) return
  const schema = ServerSchema as unknown as Schema
  const bodyLimit = intField(server, schema, 'bodyLimit', SERVER_DEFAULTS.bodyLimit)
  const maxTokenBytes = intField(server, schema, 'maxTokenBytes', SERVER_DEFAULTS.maxTokenBytes)
  if (bodyLimit !== undefined && maxTokenBytes !== undefined && maxTokenBytes >= bodyLimit) {
    const which = server?.maxTokenBytes === undefined ? ' (the default)' : ''
    report(ctx, ['server', 'maxTokenBytes'], `expected less than server.bodyLimit (${bodyLimit}), got ${maxTokenBytes}${which}`)
  }
  for (const key of ['host', 'opsHost'] as const) {
    if (typeof server?.[key] === 'string' && isLocalhostName(server[key])) report(ctx, ['server', key], LOCALHOST_PROBLEM)
  }
  const trustProxy = server?.trustProxy
  if (Array.isArray(trustProxy)) {
    trustProxy.forEach((entry, i) => {
      if (typeof entry === 'string' && entry !== '' && !isProxyAddress(entry)) {
        report(ctx, ['server', 'trustProxy', i], `expected an IP address, a CIDR such as 10.0.0.0/8, or loopback/linklocal/uniquelocal, got ${describe(entry)}`)
      }
    })
  }
}

/**
 * The JWKS cache entries the issuers need at once: one per JWKS URL (issuers that name the same one share it),
 * and for each provider found by discovery one for its key set and one more while it follows a moved jwks_uri
 * (the new URL's keys are loaded before the old URL is let go). Fewer would make key sets evict each other, and
 * an issuer whose keys are evicted loses the stale keys it serves while its provider is down.
 */
export function jwksEntriesNeeded (issuers: unknown): { needed: number, urls: number, discovered: number } {
  const jwksUris = new Set<string>()
  const discoveries = new Set<string>()
  for (const issuer of Array.isArray(issuers) ? issuers : []) {
    // Inline keys, or only HS* algorithms: nothing fetched, nothing held in the cache.
    if (!isRecord(issuer) || issuer.jwks !== undefined || listsOnlyHmac(issuer)) continue
    if (typeof issuer.jwksUri === 'string') jwksUris.add(issuer.jwksUri)
    else discoveries.add(String(issuer.discoveryUrl ?? issuer.issuer))
  }
  return { needed: jwksUris.size + 2 * discoveries.size, urls: jwksUris.size + discoveries.size, discovered: discoveries.size }
}

export function checkJwksCache (jwks: unknown, ctx: Ctx): void {
  if (!isRecord(jwks) && jwks !== undefined) return
  const schema = JwksCacheSchema as unknown as Schema
  const get = (key: keyof typeof JWKS_DEFAULTS): number | undefined => intField(jwks, schema, key, JWKS_DEFAULTS[key])
  const min = get('minFreshnessSeconds')
  const def = get('defaultFreshnessSeconds')
  const max = get('maxFreshnessSeconds')
  if (min !== undefined && max !== undefined && min > max) {
    report(ctx, ['jwks', 'minFreshnessSeconds'], `expected at most jwks.maxFreshnessSeconds (${max}), got ${min}`)
  } else if (min !== undefined && max !== undefined && def !== undefined && (def < min || def > max)) {
    report(ctx, ['jwks', 'defaultFreshnessSeconds'], `expected from jwks.minFreshnessSeconds (${min}) to jwks.maxFreshnessSeconds (${max}), got ${def}`)
  }
  const initial = get('backoffInitialSeconds')
  const most = get('backoffMaxSeconds')
  if (initial !== undefined && most !== undefined && initial > most) {
    report(ctx, ['jwks', 'backoffInitialSeconds'], `expected at most jwks.backoffMaxSeconds (${most}), got ${initial}`)
  }
}

/** HOST, PORT and LOG_LEVEL, which override the file. */
export function serverFromEnv (env: NodeJS.ProcessEnv, problems: string[]): Partial<ServerConfig> {
  const out: Partial<ServerConfig> = {}
  const host = envValue(env, 'HOST')
  if (host !== undefined) {
    if (host.trim() !== host) problems.push(`${ENVIRONMENT}: HOST: expected a host name or address without surrounding spaces, got ${describe(host)}`)
    else if (isLocalhostName(host)) problems.push(`${ENVIRONMENT}: HOST: ${LOCALHOST_PROBLEM}`)
    else out.host = host
  }
  const port = envValue(env, 'PORT')
  if (port !== undefined) {
    if (/^[0-9]{1,5}$/.test(port) && Number(port) <= 65535) out.port = Number(port)
    else problems.push(`${ENVIRONMENT}: PORT: expected an integer from 0 to 65535, got ${describe(port)}`)
  }
  const level = envValue(env, 'LOG_LEVEL')
  if (level !== undefined) {
    if ((LOG_LEVELS as readonly string[]).includes(level)) out.logLevel = level as ServerConfig['logLevel']
    else problems.push(`${ENVIRONMENT}: LOG_LEVEL: expected one of ${LOG_LEVELS.join(', ')}, got ${describe(level)}`)
  }
  return out
}
