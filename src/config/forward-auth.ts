/**
 * Semantic checks and resolution of the proxy-integration options: forwardAuth and batch. Shapes, ranges and
 * unknown options are checked by the schema walk in schema-check.ts; here is what a schema cannot say
 * (requirements that name configured issuers and audiences, header names that collide or are reserved, rules
 * that could never apply). load.ts calls these with its reporter, so every problem is listed with its path.
 */
import { BATCH_DEFAULTS, FORWARD_AUTH_DEFAULTS, IDENTITY_HEADER_NAMES, SERVER_DEFAULTS, type ConfigFile } from './schema.js'
import { isRecord, type Path, type Reporter } from './document.js'
import {
  IDENTITY_HEADER_FIELDS,
  type BatchConfig,
  type ForwardAuthConfig,
  type ForwardAuthRuleConfig,
  type IdentityHeaderField,
  type RequirementsConfig
} from './types.js'

/**
 * Headers that an identity header or the token header must never be: they carry credentials, framing or
 * routing, or are the proxies' own protocol. An identity header named "authorization" would overwrite the
 * credential the upstream sees; one named "x-forwarded-host" would let us rewrite routing.
 */
export const RESERVED_HEADER_NAMES: ReadonlySet<string> = new Set([
  'authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'host', 'content-length', 'content-type',
  'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect', 'www-authenticate',
  'proxy-authenticate', 'location', 'retry-after', 'date', 'server', 'via', 'forwarded', 'x-request-id',
  'x-envoy-auth-headers-to-remove', 'x-envoy-auth-partial-body', 'x-api-key'
])

/** Prefixes of headers proxies use to describe the original request (read by forward-auth; never set). */
const RESERVED_HEADER_PREFIXES = ['x-forwarded-', 'x-original-', 'x-envoy-', 'x-real-ip']

export function isReservedHeader (name: string): boolean {
  const lower = name.toLowerCase()
  return RESERVED_HEADER_NAMES.has(lower) || RESERVED_HEADER_PREFIXES.some((p) => lower.startsWith(p))
}

const stringsOf = (value: unknown): string[] => Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : []

/** The resolved identity header names; values of the wrong type are skipped (the schema walk reports them). */
export function identityHeaderNames (forwardAuth: Record<string, unknown> | undefined): Record<IdentityHeaderField, string> {
  const prefix = typeof forwardAuth?.headerPrefix === 'string' ? forwardAuth.headerPrefix : FORWARD_AUTH_DEFAULTS.headerPrefix
  const names = isRecord(forwardAuth?.headerNames) ? forwardAuth.headerNames : {}
  const out = {} as Record<IdentityHeaderField, string>
  for (const field of IDENTITY_HEADER_FIELDS) {
    const given = names[field]
    out[field] = (typeof given === 'string' ? given : prefix + IDENTITY_HEADER_NAMES[field]).toLowerCase()
  }
  return out
}

interface Known {
  issuerIds: ReadonlySet<string>
  audiences: ReadonlySet<string>
}

function knownOf (doc: Record<string, unknown>): Known {
  const issuers = Array.isArray(doc.issuers) ? doc.issuers.filter(isRecord) : []
  return {
    issuerIds: new Set(issuers.map((i) => i.id).filter((id): id is string => typeof id === 'string')),
    audiences: new Set(issuers.flatMap((i) => stringsOf(i.audiences)))
  }
}

/** Checks a requirements mapping; returns how many requirement values it has. */
function checkRequirements (value: unknown, at: Path, known: Known, report: Reporter): number {
  if (!isRecord(value)) return 0
  stringsOf(value.issuers).forEach((id, i) => {
    if (id !== '' && !known.issuerIds.has(id)) {
      report([...at, 'issuers', i], `unknown issuer id ${JSON.stringify(id)}; expected one of the configured issuers[].id (${[...known.issuerIds].join(', ')})`)
    }
  })
  stringsOf(value.audiences).forEach((aud, i) => {
    if (aud !== '' && !known.audiences.has(aud)) {
      report([...at, 'audiences', i], `${JSON.stringify(aud.length > 60 ? `${aud.slice(0, 57)}...` : aud)} is not a configured audience; expected one of the issuers' audiences (a token for another audience is refused before any requirement)`)
    }
  })
  return ['groups', 'roles', 'audiences', 'issuers'].reduce((n, key) => n + stringsOf(value[key]).length, 0)
}

export function checkForwardAuth (doc: Record<string, unknown>, report: Reporter): void {
  const known = knownOf(doc)
  const fa = doc.forwardAuth
  if (isRecord(fa)) {
    checkRequirements(fa.require, ['forwardAuth', 'require'], known, report)
    if (Array.isArray(fa.rules)) {
      fa.rules.forEach((rule: unknown, i) => {
        if (!isRecord(rule)) return
        const at: Path = ['forwardAuth', 'rules', i]
        if (rule.pathPrefix === undefined && rule.methods === undefined && rule.hosts === undefined) {
          report(at, 'expected at least one of pathPrefix, methods or hosts (for every request, use forwardAuth.require)')
        }
        const count = checkRequirements(rule.require, [...at, 'require'], known, report)
        if (isRecord(rule.require) && count === 0) {
          report([...at, 'require'], 'expected at least one group, role, audience or issuer (a rule without a requirement does nothing)')
        }
      })
    }

    // Header names: each identity header once, none reserved, and not the header that carries the token.
    const headers = identityHeaderNames(fa)
    const explicit = isRecord(fa.headerNames) ? fa.headerNames : {}
    const pathOf = (field: IdentityHeaderField): Path => explicit[field] !== undefined ? ['forwardAuth', 'headerNames', field] : ['forwardAuth', 'headerPrefix']
    const seen = new Map<string, IdentityHeaderField>()
    const reservedByPrefix: string[] = []
    for (const field of IDENTITY_HEADER_FIELDS) {
      const name = headers[field]
      const first = seen.get(name)
      if (first !== undefined) {
        report(pathOf(field), `identity header "${name}" is used for both ${first} and ${field}; expected distinct header names`)
      } else {
        seen.set(name, field)
      }
      if (!isReservedHeader(name)) continue
      if (explicit[field] !== undefined) {
        report(pathOf(field), `"${name}" is reserved (credentials, framing or the proxy protocol); expected another name for the ${field} header`)
      } else {
        reservedByPrefix.push(name)
      }
    }
    if (reservedByPrefix.length > 0) {
      report(['forwardAuth', 'headerPrefix'], `gives reserved header names (${reservedByPrefix.join(', ')}): x-forwarded-*, x-original-* and x-envoy-* describe the original request or belong to the proxy; expected another prefix`)
    }
    if (typeof fa.tokenHeader === 'string') {
      const name = fa.tokenHeader.toLowerCase()
      if (isReservedHeader(name)) {
        report(['forwardAuth', 'tokenHeader'], `"${name}" is reserved; expected a dedicated header (Authorization: Bearer is always read)`)
      } else if (seen.has(name)) {
        report(['forwardAuth', 'tokenHeader'], `"${name}" is also the ${seen.get(name)!} identity header; expected another name (the upstream would get the token instead of the identity)`)
      }
    }
  }

  const batch = doc.batch
  const server = doc.server
  const maxTokenBytes = isRecord(server) && typeof server.maxTokenBytes === 'number' ? server.maxTokenBytes : SERVER_DEFAULTS.maxTokenBytes
  if (isRecord(batch) && typeof batch.maxBodyBytes === 'number') {
    if (batch.maxBodyBytes <= maxTokenBytes) {
      report(['batch', 'maxBodyBytes'], `expected more than server.maxTokenBytes (${maxTokenBytes}), so that a batch can hold one token of the maximum size, got ${batch.maxBodyBytes}`)
    }
  } else if (maxTokenBytes >= BATCH_DEFAULTS.maxBodyBytes) {
    // The default batch limit must hold one token of the maximum size too.
    report(['server', 'maxTokenBytes'], `expected less than batch.maxBodyBytes (${BATCH_DEFAULTS.maxBodyBytes}, the default), so that a batch can hold one token of the maximum size, got ${maxTokenBytes}; or set batch.maxBodyBytes above it`)
  }
}

function resolveRequirements (value: Partial<RequirementsConfig> | undefined): RequirementsConfig {
  return {
    groups: [...(value?.groups ?? [])],
    roles: [...(value?.roles ?? [])],
    audiences: [...(value?.audiences ?? [])],
    issuers: [...(value?.issuers ?? [])]
  }
}

export function resolveForwardAuth (file: ConfigFile): { forwardAuth: ForwardAuthConfig, batch: BatchConfig } {
  const fa = file.forwardAuth ?? {}
  const rules: ForwardAuthRuleConfig[] = (fa.rules ?? []).map((rule) => {
    const resolved: ForwardAuthRuleConfig = {
      methods: [...(rule.methods ?? [])],
      hosts: (rule.hosts ?? []).map((h) => h.toLowerCase().replace(/\.$/, '')),
      require: resolveRequirements(rule.require)
    }
    if (rule.pathPrefix !== undefined) resolved.pathPrefix = rule.pathPrefix
    return resolved
  })
  const forwardAuth: ForwardAuthConfig = {
    headers: identityHeaderNames(fa as Record<string, unknown>),
    identityHeader: fa.identityHeader ?? FORWARD_AUTH_DEFAULTS.identityHeader,
    stripToken: fa.stripToken ?? FORWARD_AUTH_DEFAULTS.stripToken,
    keysUnavailableStatus: (fa.keysUnavailableStatus ?? FORWARD_AUTH_DEFAULTS.keysUnavailableStatus) as 401 | 403 | 503,
    require: resolveRequirements(fa.require),
    rules
  }
  if (fa.tokenCookie !== undefined) forwardAuth.tokenCookie = fa.tokenCookie
  if (fa.tokenHeader !== undefined) forwardAuth.tokenHeader = fa.tokenHeader.toLowerCase()
  const batch: BatchConfig = {
    maxTokens: file.batch?.maxTokens ?? BATCH_DEFAULTS.maxTokens,
    maxBodyBytes: file.batch?.maxBodyBytes ?? BATCH_DEFAULTS.maxBodyBytes
  }
  return { forwardAuth, batch }
}
