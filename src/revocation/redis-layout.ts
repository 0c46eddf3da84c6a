/**
 * How revocations are laid out in Redis (src/revocation/redis-store.ts reads and writes them):
 *
 *   key      `${keyPrefix}revocation:${sha256hex(revocationKey(issuer, kind, value))}`: hashed, so no
 *            attacker-chosen bytes (a sub, sid or jti from a logout token) make up a key name, and none is
 *            readable there. The value is the revocation as JSON, expiring at expiresAt (PXAT): Redis forgets
 *            a revocation when no token it covers can still be valid.
 *   channel  `${keyPrefix}revocations` (`…revocations:db<N>` for database N > 0): the stored (merged) JSON of
 *            every revocation written.
 *
 * A write is one Lua script, atomic: it merges with what is stored (the later `before` and the later
 * `expiresAt` win, and a session keeps the user it was first recorded with, as in RevocationList.apply),
 * writes with PXAT and publishes the result. Whatever is read back is checked by parseRevocation.
 */
import { createHash } from 'node:crypto'
import { parseRevocation, revocationKey, type Revocation } from './revocation.js'

/** A stored or announced revocation longer than this is not one (the longest valid one is ~3.2 kB of JSON). */
const MAX_ENTRY_LENGTH = 4096

/** The key of a revocation: its issuer, kind and value, hashed. */
export function revocationRedisKey (keyPrefix: string, revocation: Pick<Revocation, 'issuer' | 'kind' | 'value'>): string {
  return `${keyPrefix}revocation:${createHash('sha256').update(revocationKey(revocation.issuer, revocation.kind, revocation.value)).digest('hex')}`
}

/**
 * The pub/sub channel on which every stored revocation is announced. Pub/sub ignores Redis's database number, so
 * a database other than 0 is part of the name: two deployments kept apart by database alone must not hear each
 * other's revocations.
 */
export function revocationChannel (keyPrefix: string, database = 0): string {
  return database === 0 ? `${keyPrefix}revocations` : `${keyPrefix}revocations:db${database}`
}

/** The database a redis:// URL selects (its path, "/3"), 0 without one; undefined when the path is not a number. */
export function redisDatabase (url: string): number | undefined {
  let path: string
  try {
    path = new URL(url).pathname
  } catch {
    return undefined
  }
  if (path === '' || path === '/') return 0
  const match = /^\/(\d{1,9})$/.exec(path)
  return match === null ? undefined : Number(match[1])
}

/** A SCAN MATCH pattern for every revocation key under `keyPrefix` (taken literally). */
export function revocationKeyPattern (keyPrefix: string): string {
  return `${globEscape(keyPrefix)}revocation:*`
}

/**
 * KEYS[1] the revocation's key; ARGV[1] the revocation as JSON; ARGV[2] the channel. Merges with the stored
 * revocation (later before, later expiresAt), stores with PXAT, publishes, returns the stored JSON. A stored
 * value that is not a revocation's JSON is replaced.
 */
export const MERGE_SCRIPT = `
local incoming = cjson.decode(ARGV[1])
local stored = redis.call('GET', KEYS[1])
if stored then
  local ok, old = pcall(cjson.decode, stored)
  if ok and type(old) == 'table' then
    if type(old.expiresAt) == 'number' and old.expiresAt > incoming.expiresAt then incoming.expiresAt = old.expiresAt end
    if type(old.before) == 'number' and type(incoming.before) == 'number' and old.before > incoming.before then incoming.before = old.before end
    if type(old.sub) == 'string' then incoming.sub = old.sub end
  end
end
local json = cjson.encode(incoming)
redis.call('SET', KEYS[1], json, 'PXAT', string.format('%.0f', math.ceil(incoming.expiresAt * 1000)))
redis.call('PUBLISH', ARGV[2], json)
return json
`

export interface MergeCommand {
  revocationMerge (key: string, json: string, channel: string): Promise<string>
}

/** A SCAN MATCH pattern matching `prefix` literally. */
function globEscape (prefix: string): string {
  return prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`)
}

/** A revocation from Redis (a stored value or a message), or undefined when it is not one. */
export function parseEntry (text: string): Revocation | undefined {
  if (text.length > MAX_ENTRY_LENGTH) return undefined
  try {
    return parseRevocation(JSON.parse(text))
  } catch {
    return undefined
  }
}
