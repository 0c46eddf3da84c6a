/**
 * The verified-token cache: a token whose signature has been verified before is not verified again.
 * Keyed by SHA-256 of the whole token (the raw token is never stored). An entry lives no longer than the
 * token's exp nor the configured cap, is dropped when the key that verified it leaves its issuer's JWKS,
 * and never skips the claim checks: time, audience and the per-request checks run on every hit.
 * Bounded in entries and in estimated bytes. A token is admitted on its second successful verification
 * (src/core/seen-filter.ts): tokens presented once never displace the ones in use, nor cost an entry.
 */
import { hash } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { Algorithm, TokenCacheConfig } from '../config/types.js'
import type { VerifiedIdentity } from './identity.js'
import { SeenFilter } from './seen-filter.js'

export interface CachedVerification {
  /** Configured issuer id. */
  issuer: string
  /** Where the verifying key came from (a JWKS URL, or "inline:<id>" / "secret:<id>"), and which key it was. */
  keySource: string
  keyFingerprint: string
  alg: Algorithm
  curve: string | undefined
  /**
   * The token named no kid: it was verified because at most MAX_KEYS_TRIED_WITHOUT_KID keys of its key set fitted
   * its alg (src/core/verifier.ts), which a new key set may no longer allow.
   */
  kidless: boolean
  /** The normalized identity as first computed; expiresIn is recomputed on every hit. */
  identity: VerifiedIdentity
  /**
   * The revocation list's generation when this token was last found not revoked (RevocationList.generation):
   * a hit checks the revocations again only when they have changed since. The one mutable member.
   */
  revocationGeneration: number
}

/** Rough per-entry overhead beyond the token-sized strings: objects, the identity, LRU bookkeeping. */
const ENTRY_OVERHEAD_BYTES = 1024

type LruOptions = LRUCache.Options<string, CachedVerification, unknown>

export class VerifiedTokenCache {
  /**
   * Made at the first token admitted: lru-cache allocates its arrays for maxEntries up front (for 50,000: ~7 ms of
   * CPU and 1.5 MB, 0.8 MB more at the first entry with a TTL), which a Verifier that never caches a token (a
   * reload's, replaced again; most tests') need not pay.
   */
  private lru: LRUCache<string, CachedVerification> | undefined
  private readonly lruOptions: LruOptions
  private readonly maxTtlMs: number
  /** Tokens verified once, remembered for one to two generations of maxEntries other tokens. */
  private readonly seen: SeenFilter

  /** `now`: the clock entries' lifetimes are counted on (default: lru-cache's own, performance.now). */
  constructor (config: TokenCacheConfig, now?: () => number) {
    this.maxTtlMs = config.maxTtlSeconds * 1000
    // Every entry is counted at least ENTRY_OVERHEAD_BYTES, so no more than maxBytes / that fit: slots past it would
    // never be used, and lru-cache allocates every slot at the first entry (~50 bytes each, counted nowhere else).
    const entries = Math.max(1, Math.min(config.maxEntries, Math.floor(config.maxBytes / ENTRY_OVERHEAD_BYTES)))
    this.seen = new SeenFilter(entries)
    this.lruOptions = {
      max: entries,
      maxSize: config.maxBytes,
      ttlAutopurge: false,
      // Expiry is enforced by the claim checks on every hit; the TTL cap (maxTtlSeconds) only by the TTL.
      allowStale: false,
      // A given clock is read on every lookup (lru-cache otherwise reuses a reading for a millisecond).
      ...(now === undefined ? {} : { perf: { now }, ttlResolution: 0 })
    }
  }

  /** A token's key: its SHA-256. A token's bytes (ASCII, as every token is) have the key of the token as a string. */
  keyOf (token: string | Uint8Array): string {
    // One-shot hashing: no Hash object per request.
    return hash('sha256', token, 'base64')
  }

  get (key: string): CachedVerification | undefined {
    return this.lru?.get(key)
  }

  /**
   * Caches a verified token if it was verified before (returns whether it is now cached).
   * The token's length stands in for its decoded claims (the claims, the identity built from them and the
   * key take about three times the token's base64url length), so sizing costs nothing per entry. For an
   * encrypted token, the length of the signed token inside (a compressed one inflates to many times its size).
   */
  set (key: string, entry: CachedVerification, tokenLength: number, expiresAtMs: number, nowMs: number): boolean {
    const ttl = Math.min(expiresAtMs - nowMs, this.maxTtlMs)
    if (ttl <= 0) return false
    // Admission: the first successful verification of a token is only remembered (a few bits), not cached.
    if (!this.seen.seenBefore(key)) return false
    this.lru ??= new LRUCache(this.lruOptions)
    this.lru.set(key, entry, { ttl: Math.ceil(ttl), size: ENTRY_OVERHEAD_BYTES + 3 * tokenLength })
    return true
  }

  /**
   * A key source's new key set no longer has some keys, or has too many for a token without a kid
   * (`refusesKidless(alg)`): forget what they verified. Returns how many.
   */
  dropKeysNotIn (keySource: string, remaining: ReadonlySet<string>, refusesKidless: (alg: Algorithm) => boolean = () => false): number {
    const lru = this.lru
    if (lru === undefined) return 0
    let dropped = 0
    for (const [key, entry] of lru.entries()) {
      if (entry.keySource === keySource && (!remaining.has(entry.keyFingerprint) || (entry.kidless && refusesKidless(entry.alg)))) {
        lru.delete(key)
        dropped++
      }
    }
    return dropped
  }

  get size (): number {
    return this.lru?.size ?? 0
  }

  clear (): void {
    this.lru?.clear()
    this.seen.clear()
  }
}
