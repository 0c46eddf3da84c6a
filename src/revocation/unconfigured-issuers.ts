/**
 * Revocations are kept by configured issuer id (src/revocation/revocation.ts). A process started with an
 * issuer's id changed (a renamed `id`, same issuer) finds those recorded under the old id in a shared store
 * (redis) and never applies them: the sessions and users they revoked are accepted again. A reload that renames
 * an id says so (src/reload.ts); this is the same warning for a restart, where there is no running configuration
 * to compare with, only the ids the revocations name.
 */
import type { Logger } from '../core/logger.js'
import type { RevocationList } from './revocation-list.js'

export interface UnconfiguredIssuerRevocations {
  /** The issuer id the revocations were recorded under. */
  issuerId: string
  revocationsHeld: number
}

/** The issuer ids the list holds revocations for that no configured issuer has, with how many, in id order. */
export function unconfiguredIssuerRevocations (list: RevocationList, configuredIds: Iterable<string>): UnconfiguredIssuerRevocations[] {
  const configured = new Set(configuredIds)
  return [...list.countByIssuer()]
    .filter(([id, count]) => count > 0 && !configured.has(id))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([issuerId, revocationsHeld]) => ({ issuerId, revocationsHeld }))
}

/** One warning per issuer id with revocations and no configured issuer (at start, once the store has loaded). */
export function warnUnconfiguredIssuerRevocations (log: Pick<Logger, 'warn'>, list: RevocationList, configuredIds: Iterable<string>): void {
  for (const { issuerId, revocationsHeld } of unconfiguredIssuerRevocations(list, configuredIds)) {
    log.warn({ issuerId, revocationsHeld },
      `${revocationsHeld} revocation${revocationsHeld === 1 ? ' is' : 's are'} recorded under the issuer id "${issuerId}", which no configured issuer has: ` +
      'revocations are kept by issuer id, so if an issuer was renamed, the sessions and users they revoked are accepted again until their ' +
      `tokens expire. Restore the id "${issuerId}" to apply them, or revoke every token of the renamed issuer issued until now ` +
      '(POST /revocations {"issuer": "<its new id>", "all": true}). Nothing needs doing for an issuer removed on purpose (they expire by ' +
      'themselves), nor when another deployment shares this store and its keyPrefix')
  }
}
