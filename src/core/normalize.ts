/**
 * Turns a verified claim set into the normalized identity through the issuer's claim mapping
 * (defaults below, overridden per issuer). A mapping that points at nothing gives an absent value.
 */
import type { IssuerConfig, MappableField } from '../config/types.js'
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

export type CompiledMapping = Record<MappableField, readonly PathSegment[] | undefined>

/** Parses every path once, at configuration time (parseClaimPath throws ClaimPathError on a bad path). */
export function compileClaimMapping (overrides: IssuerConfig['claimMapping']): CompiledMapping {
  const compiled = {} as CompiledMapping
  for (const field of Object.keys(DEFAULT_CLAIM_MAPPING) as MappableField[]) {
    const path = overrides[field] ?? DEFAULT_CLAIM_MAPPING[field]
    compiled[field] = path === undefined ? undefined : parseClaimPath(path)
  }
  return compiled
}

function asString (value: unknown): string | null {
  if (typeof value === 'string') return value
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  return null
}

function asStringList (value: unknown): string[] {
  if (typeof value === 'string') return value.length > 0 ? [value] : []
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string')
  return []
}

/** Some providers (Cognito among them) send booleans as strings. Anything else is not an assertion. */
function asVerifiedFlag (value: unknown): boolean {
  return value === true || value === 'true'
}

export interface NormalizeInput {
  issuerId: string
  issuerUrl: string
  claims: Record<string, unknown>
  subject: string
  audiences: string[]
  nowSeconds: number
}

export function normalizeIdentity (input: NormalizeInput, mapping: CompiledMapping): VerifiedIdentity {
  const { claims } = input
  const read = (field: MappableField): unknown => {
    const path = mapping[field]
    return path === undefined ? undefined : readClaimPath(claims, path)
  }
  const email = asString(read('email'))
  const user: UserProfile = {
    email,
    emailVerified: email !== null && asVerifiedFlag(read('emailVerified')),
    name: asString(read('name')),
    givenName: asString(read('givenName')),
    familyName: asString(read('familyName')),
    preferredUsername: asString(read('preferredUsername')),
    picture: asString(read('picture')),
    locale: asString(read('locale'))
  }
  const exp = claims.exp as number
  const authTime = claims.auth_time
  return {
    issuer: { id: input.issuerId, url: input.issuerUrl },
    subject: input.subject,
    audiences: input.audiences,
    authorizedParty: typeof claims.azp === 'string' ? claims.azp : null,
    expiresAt: exp,
    issuedAt: claims.iat as number,
    authTime: typeof authTime === 'number' ? authTime : null,
    expiresIn: Math.max(0, Math.floor(exp - input.nowSeconds)),
    user,
    groups: asStringList(read('groups')),
    roles: asStringList(read('roles')),
    tenant: asString(read('tenant')),
    claims
  }
}
