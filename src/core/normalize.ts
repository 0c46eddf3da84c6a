/**
 * Turns a verified claim set into the normalized identity through the issuer's claim mapping
 * (defaults below, then the preset's, then the issuer's own overrides). A mapping that points at nothing
 * gives an absent value, never an error.
 */
import type { ClaimMappingValue, IssuerConfig, MappableField } from '../config/types.js'
import { VerificationError } from '../errors.js'
import { parseClaimPath, readClaimPath, type PathSegment } from './claim-path.js'
import type { UserProfile, VerifiedIdentity } from './identity.js'

export const DEFAULT_CLAIM_MAPPING: Record<MappableField, string | undefined> = {
  email: 'email',
  emailVerified: 'email_verified',
  name: 'name',
  givenName: 'given_name',
  familyName: 'family_name',
  preferredUsername: 'preferred_username',
  picture: 'picture',
  locale: 'locale',
  groups: 'groups',
  roles: 'roles',
  tenant: undefined
}

/** Fields whose value is a list; a mapping of several paths merges their lists. */
export const LIST_FIELDS: ReadonlySet<MappableField> = new Set(['groups', 'roles'])

/** The user key when nothing else is configured: the subject. */
export const DEFAULT_USER_KEY_CLAIMS: readonly string[] = ['sub']

export interface CompiledField {
  paths: ReadonlyArray<readonly PathSegment[]>
  /** Split string values on whitespace (space-separated scope strings). */
  split: boolean
}

export interface CompiledMapping {
  fields: Record<MappableField, CompiledField>
  /** Paths whose values, joined with ":", are the stable user key. */
  userKey: ReadonlyArray<readonly PathSegment[]>
  /** The path texts of userKey, for error details (claim names only, never values). */
  userKeyNames: readonly string[]
  /** False: emailVerified is always false (the provider does not verify email addresses). */
  trustEmailVerified: boolean
}

/** The paths and split flag of a mapping value, in whichever of its three forms it was written. */
export function mappingPaths (value: ClaimMappingValue): { paths: string[], split: boolean } {
  if (typeof value === 'string') return { paths: [value], split: false }
  if (Array.isArray(value)) return { paths: [...value], split: false }
  return { paths: typeof value.path === 'string' ? [value.path] : [...value.path], split: value.split === true }
}

/** Parses every path once, at configuration time (parseClaimPath throws ClaimPathError on a bad path). */
export function compileClaimMapping (
  overrides: IssuerConfig['claimMapping'],
  options: { userKeyClaims?: readonly string[], trustEmailVerified?: boolean } = {}
): CompiledMapping {
  const fields = {} as Record<MappableField, CompiledField>
  for (const field of Object.keys(DEFAULT_CLAIM_MAPPING) as MappableField[]) {
    const override = overrides[field]
    const fallback = DEFAULT_CLAIM_MAPPING[field]
    const { paths, split } = override !== undefined ? mappingPaths(override) : { paths: fallback === undefined ? [] : [fallback], split: false }
    fields[field] = { paths: paths.map((p) => parseClaimPath(p)), split }
  }
  const userKeyNames = [...(options.userKeyClaims ?? DEFAULT_USER_KEY_CLAIMS)]
  return {
    fields,
    userKey: userKeyNames.map((p) => parseClaimPath(p)),
    userKeyNames,
    trustEmailVerified: options.trustEmailVerified ?? true
  }
}

/**
 * A string value of the identity. Text with a lone surrogate (JSON's "\ud800", which parses and is signed) is not
 * text: it has no UTF-8 form, and in a forward-auth header it would read as U+FFFD, the same as other values. A
 * number past 2^53 is not the number the provider signed (JSON.parse rounded it: 9007199254740993 reads as
 * …992), so it is no value either: a numeric tenant id would otherwise pass allowedTenants as its neighbour.
 */
function asString (value: unknown): string | null {
  if (typeof value === 'string') return value.isWellFormed() ? value : null
  if (typeof value === 'number' && Number.isFinite(value) && Math.abs(value) <= Number.MAX_SAFE_INTEGER) return String(value)
  return null
}

/**
 * Whether a claim says something: OpenID Connect Core §5.1 asks providers to omit a claim they do not return
 * rather than send it null or empty, and some send "" anyway (a user without a username); such a claim is absent,
 * so the field's next path is read and an empty field is null, never "".
 */
function isPresent (value: unknown): boolean {
  return value !== undefined && value !== null && value !== ''
}

function pushStrings (out: string[], value: unknown, split: boolean): void {
  const add = (s: string): void => {
    if (split) {
      for (const part of s.split(/\s+/)) if (part !== '') out.push(part)
    } else if (s.length > 0) {
      out.push(s)
    }
  }
  if (typeof value === 'string') {
    if (value.isWellFormed()) add(value)
  } else if (Array.isArray(value)) {
    for (const v of value) if (typeof v === 'string' && v.isWellFormed()) add(v)
  }
}

/** Some providers (Cognito among them) send booleans as strings. Anything else is not an assertion. */
function asVerifiedFlag (value: unknown): boolean {
  return value === true || value === 'true'
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/**
 * Whether the provider left the groups out of the token and points elsewhere for them: an OpenID Connect
 * distributed claim (Core §5.6.2: the claim is named in _claim_names), which is how Entra ID signals a groups
 * overage, or Entra's hasgroups flag (implicit flow). The caller must then not read the list as complete.
 */
function groupsLeftOut (claims: Record<string, unknown>, paths: CompiledField['paths']): boolean {
  if (claims.hasgroups === true) return true
  const names = claims._claim_names
  if (!isRecord(names)) return false
  return paths.some((path) => typeof path[0] === 'string' && Object.hasOwn(names, path[0]))
}

/** Colons and percent signs are escaped in a composite key, so that two different pairs never give one key. */
function keyPart (value: string): string {
  return value.replaceAll('%', '%25').replaceAll(':', '%3A')
}

export interface NormalizeInput {
  issuerId: string
  /** The token's iss (for a {tenantid} template issuer, the tenant's own issuer). */
  issuerUrl: string
  claims: Record<string, unknown>
  subject: string
  audiences: string[]
  nowSeconds: number
}

export function normalizeIdentity (input: NormalizeInput, mapping: CompiledMapping): VerifiedIdentity {
  const { claims } = input
  /** The first present value of the field's paths, and which path gave it. */
  const mapped = (field: MappableField): { value: unknown, path: number } => {
    const { paths } = mapping.fields[field]
    for (let i = 0; i < paths.length; i++) {
      const value = readClaimPath(claims, paths[i]!)
      if (isPresent(value)) return { value, path: i }
    }
    return { value: undefined, path: -1 }
  }
  const scalar = (field: MappableField): unknown => mapped(field).value
  const list = (field: MappableField): string[] => {
    const { paths, split } = mapping.fields[field]
    const out: string[] = []
    for (const path of paths) pushStrings(out, readClaimPath(claims, path), split)
    return paths.length > 1 || split ? [...new Set(out)] : out
  }
  const emailClaim = mapped('email')
  const email = asString(emailClaim.value)
  const user: UserProfile = {
    email,
    // The provider's flag is about the address in its first mapped claim (email_verified about email): an address
    // from a fallback path (email: [email, upn]) is one nobody said was verified.
    emailVerified: mapping.trustEmailVerified && email !== null && emailClaim.path === 0 && asVerifiedFlag(scalar('emailVerified')),
    name: asString(scalar('name')),
    givenName: asString(scalar('givenName')),
    familyName: asString(scalar('familyName')),
    preferredUsername: asString(scalar('preferredUsername')),
    picture: asString(scalar('picture')),
    locale: asString(scalar('locale'))
  }
  const exp = claims.exp as number
  const authTime = claims.auth_time
  return {
    issuer: { id: input.issuerId, url: input.issuerUrl },
    subject: input.subject,
    userKey: userKey(input, mapping),
    audiences: input.audiences,
    authorizedParty: typeof claims.azp === 'string' ? claims.azp : null,
    expiresAt: exp,
    issuedAt: claims.iat as number,
    authTime: typeof authTime === 'number' ? authTime : null,
    expiresIn: Math.max(0, Math.floor(exp - input.nowSeconds)),
    user,
    groups: list('groups'),
    groupsOverage: groupsLeftOut(claims, mapping.fields.groups.paths),
    roles: list('roles'),
    tenant: tenantOf(claims, mapping),
    claims
  }
}

/** The normalized tenant of a claim set (Entra tid, Google hd, …): what allowedTenants is checked against. */
export function tenantOf (claims: Record<string, unknown>, mapping: CompiledMapping): string | null {
  for (const path of mapping.fields.tenant.paths) {
    const value = readClaimPath(claims, path)
    if (isPresent(value)) return asString(value)
  }
  return null
}

/** The stable user key; a claim it is built from must be present (a key that silently changes is worse). */
function userKey (input: NormalizeInput, mapping: CompiledMapping): string {
  const { userKey: paths, userKeyNames } = mapping
  if (paths.length === 1 && userKeyNames[0] === 'sub') return input.subject
  const parts: string[] = []
  paths.forEach((path, i) => {
    const claim = readClaimPath(input.claims, path)
    // A number past 2^53 was already rounded by JSON.parse: two users' ids could give one key; a fraction is no id.
    const value = typeof claim === 'number' && !Number.isSafeInteger(claim) ? null : asString(claim)
    if (value === null || value === '') {
      throw new VerificationError(claim === undefined ? 'claim_missing' : 'claim_invalid', { issuer: input.issuerId, claim: userKeyNames[i] as string })
    }
    parts.push(paths.length === 1 ? value : keyPart(value))
  })
  return parts.join(':')
}
