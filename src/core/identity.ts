/**
 * The one response shape, whatever the provider. openapi.yaml's VerifiedIdentity schema describes it and
 * src/http/schemas.ts serializes it; keep the three in step.
 */
export interface UserProfile {
  email: string | null
  /** True only when the provider asserts it (email_verified true or "true"); false otherwise. */
  emailVerified: boolean
  name: string | null
  givenName: string | null
  familyName: string | null
  preferredUsername: string | null
  picture: string | null
  locale: string | null
}

export interface VerifiedIdentity {
  issuer: { id: string, url: string }
  subject: string
  /**
   * The key to store this user under: sub by default; for Entra ID tid:oid (sub is pairwise per application,
   * oid is the user's object id within the tenant). Stable across this issuer's tokens.
   */
  userKey: string
  audiences: string[]
  authorizedParty: string | null
  /** NumericDates in seconds since the epoch. */
  expiresAt: number
  issuedAt: number
  authTime: number | null
  /** Whole seconds until exp at verification time (0 when within the clock tolerance past exp). */
  expiresIn: number
  user: UserProfile
  groups: string[]
  /**
   * True when the provider left the groups out of the token and points to another source (an OpenID Connect
   * distributed claim: the Entra ID groups overage). `groups` is then NOT the user's list of groups.
   */
  groupsOverage: boolean
  roles: string[]
  tenant: string | null
  /** The verified claim set as the provider sent it. */
  claims: Record<string, unknown>
}
