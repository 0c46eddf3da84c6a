/**
 * Semantic checks and resolution of the revocation section: what the schema walk in schema-check.ts cannot
 * say (store redis needs a Redis URL, url and urlEnv exclude each other, urlEnv must be set). The URL may carry
 * a password, so no message quotes it.
 */
import { ENV_VAR_NAME_PATTERN, REDIS_REVOCATION_DEFAULTS, REVOCATION_DEFAULTS, type ConfigFile } from './schema.js'
import type { RevocationConfig } from './types.js'
import { envValue, isRecord, type Reporter } from './document.js'
import { pingIntervalMs } from '../revocation/redis-ping.js'
import { redisDatabase } from '../revocation/redis-layout.js'

const ENV_NAME = new RegExp(ENV_VAR_NAME_PATTERN)

export function checkRevocation (doc: Record<string, unknown>, env: NodeJS.ProcessEnv, report: Reporter): void {
  const section = doc.revocation
  if (!isRecord(section)) return
  checkSessionsPerUser(section, report)
  const redis = section.redis
  if (section.store === 'redis' && section.enabled !== false && !isRecord(redis)) {
    report(['revocation', 'redis'], 'expected a redis section (url or urlEnv) with store: redis')
    return
  }
  if (!isRecord(redis)) return
  if (section.store !== 'redis') {
    report(['revocation', 'store'], 'expected store: redis when a redis section is given (or remove the redis section)')
    return
  }
  const hasUrl = redis.url !== undefined
  const hasEnv = redis.urlEnv !== undefined
  if (hasUrl && hasEnv) report(['revocation', 'redis'], 'url and urlEnv are mutually exclusive; expected one of them')
  else if (!hasUrl && !hasEnv) report(['revocation', 'redis'], 'expected url (redis://host:port) or urlEnv (a variable holding it)')
  else if (hasEnv && typeof redis.urlEnv === 'string' && ENV_NAME.test(redis.urlEnv)) {
    const value = envValue(env, redis.urlEnv)
    if (value === undefined) report(['revocation', 'redis', 'urlEnv'], `expected environment variable ${redis.urlEnv} to hold the Redis URL, but it is not set`)
    else if (!isRedisUrl(value)) report(['revocation', 'redis', 'urlEnv'], `expected the value of ${redis.urlEnv} to be a redis:// or rediss:// URL (host, port 1-65535, a database number as its path, "%" in a password written %25)`)
  } else if (typeof redis.url === 'string' && /^rediss?:\/\//.test(redis.url) && !isRedisUrl(redis.url)) {
    // Never quoted: it may carry a password.
    report(['revocation', 'redis', 'url'], 'expected a redis:// or rediss:// URL that parses (host, port 1-65535, no spaces, a database number as its path, "%" in a password written %25)')
  }
  checkCommandTimeout(redis, report)
}

/** A Redis that stops answering must be noticed, and verifications fail closed, within maxStalenessSeconds. */
function checkCommandTimeout (redis: Record<string, unknown>, report: Reporter): void {
  const staleness = typeof redis.maxStalenessSeconds === 'number' ? redis.maxStalenessSeconds : REDIS_REVOCATION_DEFAULTS.maxStalenessSeconds
  const timeout = typeof redis.commandTimeoutMs === 'number' ? redis.commandTimeoutMs : REDIS_REVOCATION_DEFAULTS.commandTimeoutMs
  // Values out of their ranges are the schema's to report.
  if (!Number.isInteger(staleness) || staleness < 1 || !Number.isInteger(timeout)) return
  // A silent Redis is noticed at worst one PING interval after its last answer, plus the PING's timeout.
  const interval = pingIntervalMs(staleness * 1000)
  const most = staleness * 1000 - interval
  if (timeout > most) {
    const which = redis.commandTimeoutMs === undefined ? ' (the default)' : ''
    report(['revocation', 'redis', 'commandTimeoutMs'], `expected at most ${most} ms, revocation.redis.maxStalenessSeconds (${staleness} s) less the ${interval} ms between the PINGs that notice a silent Redis, so that verifications fail closed in time, got ${timeout}${which}`)
  }
}

/**
 * A Redis URL the client can connect with: redis:// or rediss://, a host, a valid port, no whitespace, a path
 * that is a database number or nothing, and a user name and password that percent-decode (ioredis decodes them,
 * and throws on a lone "%" at start-up).
 */
function isRedisUrl (value: string): boolean {
  if (!/^rediss?:\/\/[^\s]+$/.test(value)) return false
  let url: URL
  try {
    url = new URL(value)
    decodeURIComponent(url.username)
    decodeURIComponent(url.password)
  } catch {
    return false
  }
  return url.hostname !== '' && redisDatabase(value) !== undefined
}

/**
 * One user may hold maxSessionsPerUser + 1 entries (src/revocation/revocation.ts): at most a tenth of the list,
 * or a few users logging in and out would fill it. The default is 20, or less for a list under 210 entries.
 */
function sessionsPerUserBound (maxEntries: number): number {
  // 1 at least: a list under 20 entries cannot keep one user to a tenth of it.
  return Math.max(1, Math.floor(maxEntries / 10) - 1)
}

function defaultSessionsPerUser (maxEntries: number): number {
  return Math.min(REVOCATION_DEFAULTS.maxSessionsPerUser, sessionsPerUserBound(maxEntries))
}

function checkSessionsPerUser (section: Record<string, unknown>, report: Reporter): void {
  const perUser = section.maxSessionsPerUser
  if (typeof perUser !== 'number') return
  const maxEntries = typeof section.maxEntries === 'number' ? section.maxEntries : REVOCATION_DEFAULTS.maxEntries
  const most = sessionsPerUserBound(maxEntries)
  if (perUser > most) {
    report(['revocation', 'maxSessionsPerUser'], `expected at most ${most}, so that one user holds at most a tenth of revocation.maxEntries (${maxEntries}), got ${perUser}`)
  }
}

/** Resolves the section once everything conforms (checkRevocation reported no problem). */
export function resolveRevocation (file: ConfigFile, env: NodeJS.ProcessEnv): RevocationConfig {
  const section = file.revocation ?? {}
  const resolved: RevocationConfig = {
    enabled: section.enabled ?? REVOCATION_DEFAULTS.enabled,
    store: section.store ?? REVOCATION_DEFAULTS.store,
    maxEntries: section.maxEntries ?? REVOCATION_DEFAULTS.maxEntries,
    retentionSeconds: section.retentionSeconds ?? REVOCATION_DEFAULTS.retentionSeconds,
    maxSessionsPerUser: section.maxSessionsPerUser ?? defaultSessionsPerUser(section.maxEntries ?? REVOCATION_DEFAULTS.maxEntries),
    logoutTokenMaxAgeSeconds: section.logoutTokenMaxAgeSeconds ?? REVOCATION_DEFAULTS.logoutTokenMaxAgeSeconds,
    logoutRateLimit: {
      max: section.logoutRateLimit?.max ?? REVOCATION_DEFAULTS.logoutRateLimit.max,
      windowSeconds: section.logoutRateLimit?.windowSeconds ?? REVOCATION_DEFAULTS.logoutRateLimit.windowSeconds
    }
  }
  const redis = section.redis
  if (resolved.store === 'redis' && redis !== undefined) {
    resolved.redis = {
      url: redis.url ?? envValue(env, redis.urlEnv ?? '') ?? '',
      keyPrefix: redis.keyPrefix ?? REDIS_REVOCATION_DEFAULTS.keyPrefix,
      maxStalenessSeconds: redis.maxStalenessSeconds ?? REDIS_REVOCATION_DEFAULTS.maxStalenessSeconds,
      commandTimeoutMs: redis.commandTimeoutMs ?? REDIS_REVOCATION_DEFAULTS.commandTimeoutMs
    }
  }
  return resolved
}

