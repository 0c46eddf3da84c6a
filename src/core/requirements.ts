/**
 * Authorization requirements of forward-auth: after a token has been verified, the identity must satisfy
 * every requirement set that applies to the request (the configured defaults, the rules matching the
 * original request, the auth URL's query). Within one list any value will do; every non-empty list of every
 * set must be satisfied. Comparisons are exact: group and role names are case-sensitive strings.
 */
import { VerificationError } from '../errors.js'
import type { VerifiedIdentity } from './identity.js'

export interface Requirements {
  readonly groups: readonly string[]
  readonly roles: readonly string[]
  /** Configured audiences; the token's aud must contain one. */
  readonly audiences: readonly string[]
  /** Configured issuer ids. */
  readonly issuers: readonly string[]
}

export const NO_REQUIREMENTS: Requirements = Object.freeze({ groups: [], roles: [], audiences: [], issuers: [] })

const anyOf = (wanted: readonly string[], had: readonly string[]): boolean =>
  wanted.length === 0 || wanted.some((value) => had.includes(value))

/**
 * Whether the token's azp names another client of its issuer than `clients` (Verifier.isOtherClient): a token
 * issued to that client, which lists a required one among its audiences too, is not a token for the required one.
 */
export type OtherClient = (issuerId: string, azp: string, clients: readonly string[]) => boolean

/** Throws requirement_not_met; `claim` names the kind of the first unmet requirement (iss, aud, azp, groups, roles). */
export function checkRequirements (identity: VerifiedIdentity, sets: readonly Requirements[], otherClient: OtherClient): void {
  const issuer = identity.issuer.id
  const azp = identity.authorizedParty
  for (const set of sets) {
    if (!anyOf(set.issuers, [issuer])) throw new VerificationError('requirement_not_met', { issuer, claim: 'iss' })
    if (!anyOf(set.audiences, identity.audiences)) throw new VerificationError('requirement_not_met', { issuer, claim: 'aud' })
    if (set.audiences.length > 0 && azp !== null && otherClient(issuer, azp, set.audiences)) throw new VerificationError('requirement_not_met', { issuer, claim: 'azp' })
    if (!anyOf(set.groups, identity.groups)) throw new VerificationError('requirement_not_met', { issuer, claim: 'groups' })
    if (!anyOf(set.roles, identity.roles)) throw new VerificationError('requirement_not_met', { issuer, claim: 'roles' })
  }
}
