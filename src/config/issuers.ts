/**
 * Semantic checks and resolution of issuers[i]: what the schema walk (src/config/schema-check.ts) cannot say
 * (URLs, jwks or jwksUri, no private key members, the client secret inline or from the environment and its
 * length, algorithms and the HMAC rules, claim mapping paths), and the resolved IssuerConfig. The provider
 * options of an issuer are checked and resolved in src/config/provider-options.ts.
 */
import { parseClaimPath } from '../core/claim-path.js'
import { defined, envValue, isRecord, type Path } from './document.js'
import { conforms, describe, report, type Ctx, type Schema } from './schema-check.js'
import { ConfigFileSchema, ISSUER_DEFAULTS, MIN_SECRET_BYTES, PRIVATE_JWK_MEMBERS, type IssuerFile } from './schema.js'
import {
  DEFAULT_ALGORITHMS,
  HMAC_ALGORITHMS,
  SUPPORTED_ALGORITHMS,
  type Algorithm,
  type ClaimMappingValue,
  type HmacAlgorithm,
  type IssuerConfig,
  type JsonWebKeySet,
  type KeySource,
  type MappableField
} from './types.js'
import { checkUrl } from './url-check.js'

const SUPPORTED = new Set<string>(SUPPORTED_ALGORITHMS)
const HMAC = new Set<string>(HMAC_ALGORITHMS)

/** Whether an issuer document (presets applied) lists an HS* algorithm: only then is its client secret used. */
export function listsHmac (issuer: Record<string, unknown>): boolean {
  return Array.isArray(issuer.algorithms) && issuer.algorithms.some((alg) => HMAC.has(alg as string))
}

/**
 * Whether an issuer document (presets applied) lists only HS* algorithms: its tokens are verified with the client
 * secret, and no key is ever read or fetched for it (src/core/issuer-keys.ts, NoKeysNeeded). Without algorithms,
 * the default asymmetric set.
 */
export function listsOnlyHmac (issuer: Record<string, unknown>): boolean {
  const algorithms = issuer.algorithms
  return Array.isArray(algorithms) && algorithms.length > 0 && algorithms.every((alg) => HMAC.has(alg as string))
}

/** Semantic checks of issuers[i]; returns the resolved client secret, if any. */
export function checkIssuer (issuer: Record<string, unknown>, i: number, ctx: Ctx): string | undefined {
  const at = (...rest: Array<string | number>): Path => ['issuers', i, ...rest]

  if (typeof issuer.issuer === 'string' && issuer.issuer !== '') checkUrl(issuer.issuer, at('issuer'), ctx)
  if (typeof issuer.jwksUri === 'string' && issuer.jwksUri !== '') checkUrl(issuer.jwksUri, at('jwksUri'), ctx)

  if (issuer.jwks !== undefined && issuer.jwksUri !== undefined) {
    report(ctx, at(), 'jwks and jwksUri are mutually exclusive; expected one of them (or neither, to use discovery)')
  }
  const jwks = issuer.jwks
  if (isRecord(jwks) && Array.isArray(jwks.keys)) {
    jwks.keys.forEach((key, k) => {
      if (!isRecord(key)) return
      const found = PRIVATE_JWK_MEMBERS.filter((member) => Object.hasOwn(key, member))
      if (found.length > 0) {
        report(ctx, at('jwks', 'keys', k), `contains private key members (${found.join(', ')}); expected public keys only ` +
          '(never put private or symmetric keys in a JWKS; use clientSecret for HMAC)')
      }
    })
  }

  // Client secret: inline or from an environment variable.
  const hasInline = issuer.clientSecret !== undefined
  const hasEnv = issuer.clientSecretEnv !== undefined
  if (hasInline && hasEnv) {
    report(ctx, at(), 'clientSecret and clientSecretEnv are mutually exclusive; expected at most one of them')
  }
  let secret: string | undefined
  let secretPath: Path | undefined
  let secretFrom = ''
  if (hasInline && typeof issuer.clientSecret === 'string') {
    secret = issuer.clientSecret
    secretPath = at('clientSecret')
  } else if (!hasInline && hasEnv && typeof issuer.clientSecretEnv === 'string' &&
    conforms((ConfigFileSchema.properties.issuers.items.properties.clientSecretEnv as unknown as Schema), issuer.clientSecretEnv)) {
    const name = issuer.clientSecretEnv
    const value = envValue(ctx.env, name)
    if (value === undefined) report(ctx, at('clientSecretEnv'), `expected environment variable ${name} to hold the client secret, but it is not set`)
    secret = value
    secretPath = at('clientSecretEnv')
    secretFrom = `the value of ${name} `
  }

  // Algorithms.
  const algorithms = issuer.algorithms === undefined ? DEFAULT_ALGORITHMS : issuer.algorithms
  const valid: Algorithm[] = []
  if (Array.isArray(algorithms)) {
    algorithms.forEach((alg: unknown, j) => {
      if (typeof alg !== 'string' || alg === '') return // reported by the shape check
      if (alg.toLowerCase() === 'none') {
        report(ctx, at('algorithms', j), '"none" is never allowed (unsigned tokens could be forged by anyone); expected a signing algorithm')
      } else if (!SUPPORTED.has(alg)) {
        const close = SUPPORTED_ALGORITHMS.find((s) => s.toLowerCase() === alg.toLowerCase())
        report(ctx, at('algorithms', j), `unsupported algorithm ${describe(alg)}; ${close !== undefined ? `did you mean "${close}"?` : `expected one of ${SUPPORTED_ALGORITHMS.join(', ')}`}`)
      } else if (HMAC.has(alg) && !hasInline && !hasEnv) {
        report(ctx, at('algorithms', j), ctx.envMode
          ? `${alg} requires a client secret, which environment-only mode cannot configure; use a configuration file with clientSecret or clientSecretEnv`
          : `${alg} requires a client secret; set clientSecret or clientSecretEnv (HMAC ID tokens are signed with the client secret)`)
      } else {
        valid.push(alg as Algorithm)
      }
    })
  }
  // OpenID Connect Core §10.1: the HMAC key is the secret of the client the token is for. One secret checking
  // tokens for several clients would let any of them mint tokens for the others.
  const hmac = valid.filter((alg) => HMAC.has(alg))
  if (hmac.length > 0 && Array.isArray(issuer.audiences) && issuer.audiences.length > 1) {
    report(ctx, at('audiences'), `${hmac.join(', ')} tokens are signed with the client secret of one client, so audiences must be that ` +
      `client's id alone, got ${issuer.audiences.length}; list only the client whose secret this is (tokens of the provider's other ` +
      'clients cannot be checked with it), or remove the HS* algorithms to accept several audiences')
  }

  if (isRecord(issuer.claimMapping)) {
    for (const [field, path] of Object.entries(issuer.claimMapping)) {
      if (typeof path !== 'string' || path === '') continue
      try {
        parseClaimPath(path)
      } catch (err) {
        report(ctx, at('claimMapping', field), `expected a claim path such as realm_access.roles, groups[0] or ["https://example.com/roles"]: ${(err as Error).message}`)
      }
    }
  }

  // A Kubernetes Secret made from a file ending in a newline, or a YAML block scalar (clientSecret: |), keeps it: the
  // provider signs with the secret alone, so no token would verify, and the problem would look like a bad signature.
  if (secret !== undefined && secretPath !== undefined && secret.trim() !== secret) {
    const hint = hasInline ? 'a YAML block scalar "|" keeps a final newline: use "|-" or a quoted string' : 'a file it was made from ended in a newline?'
    report(ctx, secretPath, `expected ${hasInline ? 'a secret' : `the value of ${String(issuer.clientSecretEnv)}`} without a line break or spaces at its start or end ` +
      `(${hint}); the provider signs with the secret alone, so no HS* token would verify`)
  } else if (secret !== undefined && secretPath !== undefined) {
    let needed: number = MIN_SECRET_BYTES.HS256
    let because = 'HS256 needs a key of at least 256 bits'
    for (const alg of valid) {
      if (HMAC.has(alg) && MIN_SECRET_BYTES[alg as HmacAlgorithm] > needed) {
        needed = MIN_SECRET_BYTES[alg as HmacAlgorithm]
        because = `${alg} in algorithms needs a key of at least ${needed * 8} bits`
      }
    }
    const bytes = Buffer.byteLength(secret, 'utf8')
    if (bytes < needed) {
      report(ctx, secretPath, `expected ${secretFrom}at least ${needed} bytes (${because}), got ${bytes} bytes`)
    }
  }
  return secret
}

export function resolveIssuer (issuer: IssuerFile, secret: string | undefined): IssuerConfig {
  const algorithms = [...(issuer.algorithms ?? ISSUER_DEFAULTS.algorithms)] as Algorithm[]
  let keys: KeySource = { kind: 'discovery' }
  if (issuer.jwks !== undefined) keys = { kind: 'inline', jwks: structuredClone(issuer.jwks) as JsonWebKeySet }
  else if (issuer.jwksUri !== undefined) keys = { kind: 'jwksUri', jwksUri: issuer.jwksUri }

  // fromEntries defines own properties, so even a claim named "__proto__" stays a plain key.
  const requiredClaims: Record<string, string[]> = Object.fromEntries(
    Object.entries(issuer.requiredClaims ?? {}).map(([claim, value]) => [claim, typeof value === 'string' ? [value] : [...value]])
  )
  const claimMapping: Partial<Record<MappableField, ClaimMappingValue>> = defined(issuer.claimMapping)

  const resolved: IssuerConfig = {
    id: issuer.id,
    issuer: issuer.issuer,
    audiences: [...issuer.audiences],
    authorizedParties: [...(issuer.authorizedParties ?? ISSUER_DEFAULTS.authorizedParties)],
    algorithms,
    keys,
    clockToleranceSeconds: issuer.clockToleranceSeconds ?? ISSUER_DEFAULTS.clockToleranceSeconds,
    requiredClaims,
    claimMapping
  }
  // The secret is kept only when HMAC is actually allowed (types.ts: undefined when HMAC is not allowed).
  if (secret !== undefined && algorithms.some((alg) => HMAC.has(alg))) resolved.clientSecret = secret
  if (issuer.maxTokenAgeSeconds !== undefined) resolved.maxTokenAgeSeconds = issuer.maxTokenAgeSeconds
  return resolved
}
