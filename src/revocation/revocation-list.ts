/**
 * The revocations this process knows, checked on every verification, a cache hit included. HTTP-free and
 * synchronous: a store (src/revocation/*-store.ts) feeds it, the Verifier reads it.
 *
 * A check is a few Map lookups in the token's issuer's bucket, and nothing when that issuer has no
 * revocation. `generation` changes whenever a revocation is added or extended, so the verified-token cache
 * re-checks a cached token only when something changed since it last did.
 *
 * Bounded: at `maxEntries` a new revocation is refused (apply returns 'full') rather than an old one dropped,
 * because forgetting a revocation early would accept a token that must be refused. A revocation recorded
 * elsewhere (another process, the shared store) that does not fit makes the list incomplete, and an
 * incomplete list is not available: verifications fail closed until the store has read everything again
 * (receive(), markComplete()). Expired revocations are ignored by checks and removed by sweep().
 */
import type { Revocation, RevocationKind } from './revocation.js'

interface IssuerBucket {
  /** Kind "issuer": at most one per issuer. */
  all: Revocation | undefined
  sid: Map<string, Revocation>
  sub: Map<string, Revocation>
  jti: Map<string, Revocation>
  /** How many sid revocations with a `sub` each user has (expired ones until the sweep removes them). */
  sessionsOfUser: Map<string, number>
}

export type ApplyResult = 'added' | 'extended' | 'unchanged' | 'full'

/** How often the stores remove expired revocations (checks ignore them before that). */
export const SWEEP_INTERVAL_MS = 60_000

export class RevocationList {
  readonly maxEntries: number
  readonly #byIssuer = new Map<string, IssuerBucket>()
  #size = 0
  /** No revocation expires before this (seconds): apply() sweeps a full list only once one may have. */
  #earliestExpiry = Number.POSITIVE_INFINITY
  #generation = 0
  #available: boolean
  /** A revocation held elsewhere did not fit. */
  #incomplete = false

  /** `available`: whether checks may answer before a store has loaded (true for a store of this process only). */
  constructor (maxEntries: number, available = true) {
    this.maxEntries = maxEntries
    this.#available = available
  }

  /** The headroom a list shared with other processes keeps for their revocations (a tenth of the bound). */
  get sharedHeadroom (): number {
    return Math.min(this.maxEntries - 1, Math.ceil(this.maxEntries / 10))
  }

  /** Changes whenever a revocation is added or extended. */
  get generation (): number {
    return this.#generation
  }

  get size (): number {
    return this.#size
  }

  /**
   * Whether this list is known to be current. A store shared between processes sets it false while it cannot
   * tell (not loaded yet, or disconnected for longer than allowed): verifications then fail closed.
   */
  get available (): boolean {
    return this.#available && !this.#incomplete
  }

  /** False once a revocation held elsewhere did not fit (or is known missing), until markComplete(). */
  get complete (): boolean {
    return !this.#incomplete
  }

  /** The store has read every revocation again, and all fitted. */
  markComplete (): void {
    this.#incomplete = false
  }

  /** A revocation held elsewhere is known to be missing, though none was refused here (the source lacked it). */
  markIncomplete (): void {
    this.#incomplete = true
  }

  /** apply() for a revocation recorded elsewhere: one that does not fit makes the list incomplete. */
  receive (revocation: Revocation, nowSeconds: number): ApplyResult {
    const result = this.apply(revocation, nowSeconds)
    if (result === 'full') this.#incomplete = true
    return result
  }

  setAvailable (available: boolean): void {
    this.#available = available
  }

  /**
   * Adds a revocation, or merges it into the one with the same issuer, kind and value (the later cut-off and
   * the later expiry win). 'full' when it is new and the list is at its bound even after removing expired ones.
   */
  apply (revocation: Revocation, nowSeconds: number): ApplyResult {
    if (revocation.expiresAt <= nowSeconds) return 'unchanged'
    const bucket = this.#bucket(revocation.issuer)
    const existing = this.#find(bucket, revocation.kind, revocation.value)
    if (existing !== undefined && existing.expiresAt > nowSeconds) {
      const before = existing.before === null || revocation.before === null ? existing.before : Math.max(existing.before, revocation.before)
      const expiresAt = Math.max(existing.expiresAt, revocation.expiresAt)
      const merged: Revocation = { ...existing, before, expiresAt }
      // A session revoked without its user (POST /revocations) and then by a logout naming the user: counted now.
      if (existing.sub === undefined && revocation.sub !== undefined) {
        merged.sub = revocation.sub
        countSession(bucket, merged, 1)
      }
      if (before === existing.before && expiresAt === existing.expiresAt) {
        // Whose session it is does not change what it covers.
        if (merged.sub !== existing.sub) this.#put(bucket, merged)
        return 'unchanged'
      }
      this.#put(bucket, merged)
      this.#generation++
      return 'extended'
    }
    if (existing === undefined && this.#size >= this.maxEntries) {
      // Not on every refused revocation: a flood of them would sweep the whole list each time.
      if (nowSeconds >= this.#earliestExpiry) this.sweep(nowSeconds)
      if (this.#size >= this.maxEntries) return 'full'
    }
    if (existing === undefined) this.#size++
    else countSession(bucket, existing, -1)
    countSession(bucket, revocation, 1)
    if (revocation.expiresAt < this.#earliestExpiry) this.#earliestExpiry = revocation.expiresAt
    this.#put(bucket, revocation)
    this.#generation++
    return 'added'
  }

  /**
   * Which revocation covers a token of this issuer, if any: the claims are those of a verified token (iat is a
   * number; sid, sub and jti are read only when they are strings).
   */
  check (issuer: string, claims: Readonly<Record<string, unknown>>, nowSeconds: number): RevocationKind | undefined {
    const bucket = this.#byIssuer.get(issuer)
    if (bucket === undefined) return undefined
    const iat = claims.iat
    // A token without iat is covered by every cut-off (verified ID tokens always have one).
    const issuedAt = typeof iat === 'number' ? iat : Number.NEGATIVE_INFINITY
    if (covers(bucket.all, issuedAt, nowSeconds)) return 'issuer'
    const { sid, sub, jti } = claims
    if (typeof sid === 'string' && bucket.sid.size > 0 && covers(bucket.sid.get(sid), issuedAt, nowSeconds)) return 'sid'
    if (typeof sub === 'string' && bucket.sub.size > 0 && covers(bucket.sub.get(sub), issuedAt, nowSeconds)) return 'sub'
    if (typeof jti === 'string' && bucket.jti.size > 0 && covers(bucket.jti.get(jti), issuedAt, nowSeconds)) return 'jti'
    return undefined
  }

  /**
   * How many sessions (sid revocations) of this user are revoked, counting those recorded with the user's sub
   * (from logout tokens naming both); expired ones count until the next sweep.
   */
  sessionsOf (issuer: string, sub: string): number {
    return this.#byIssuer.get(issuer)?.sessionsOfUser.get(sub) ?? 0
  }

  /**
   * Whether this process may record a new revocation: one it holds already, or a list with more than `headroom`
   * entries free. A list shared with other processes keeps headroom for the revocations they record at the
   * same time, which it must hold (receive()) or fail closed.
   */
  hasRoomFor (revocation: Revocation, headroom: number, nowSeconds: number): boolean {
    if (this.get(revocation.issuer, revocation.kind, revocation.value, nowSeconds) !== undefined) return true
    const bound = this.maxEntries - headroom
    if (this.#size >= bound && nowSeconds >= this.#earliestExpiry) this.sweep(nowSeconds)
    return this.#size < bound
  }

  /** Removes expired revocations; returns how many. */
  sweep (nowSeconds: number): number {
    let removed = 0
    let earliest = Number.POSITIVE_INFINITY
    for (const [issuer, bucket] of this.#byIssuer) {
      if (bucket.all !== undefined && bucket.all.expiresAt <= nowSeconds) {
        bucket.all = undefined
        removed++
      } else if (bucket.all !== undefined) {
        earliest = Math.min(earliest, bucket.all.expiresAt)
      }
      for (const map of [bucket.sid, bucket.sub, bucket.jti]) {
        for (const [value, r] of map) {
          if (r.expiresAt <= nowSeconds) {
            map.delete(value)
            countSession(bucket, r, -1)
            removed++
          } else {
            earliest = Math.min(earliest, r.expiresAt)
          }
        }
      }
      if (bucket.all === undefined && bucket.sid.size + bucket.sub.size + bucket.jti.size === 0) this.#byIssuer.delete(issuer)
    }
    this.#size -= removed
    this.#earliestExpiry = earliest
    return removed
  }

  /** Every revocation held (expired ones included until the next sweep). */
  * entries (): IterableIterator<Revocation> {
    for (const bucket of this.#byIssuer.values()) {
      if (bucket.all !== undefined) yield bucket.all
      yield * bucket.sid.values()
      yield * bucket.sub.values()
      yield * bucket.jti.values()
    }
  }

  /** The revocation with this issuer, kind and value, if held and not expired. */
  get (issuer: string, kind: RevocationKind, value: string, nowSeconds: number): Revocation | undefined {
    const bucket = this.#byIssuer.get(issuer)
    const found = bucket === undefined ? undefined : this.#find(bucket, kind, value)
    return found !== undefined && found.expiresAt > nowSeconds ? found : undefined
  }

  /** A count per issuer id, for metrics. */
  countByIssuer (): Map<string, number> {
    const counts = new Map<string, number>()
    for (const [issuer, bucket] of this.#byIssuer) {
      counts.set(issuer, (bucket.all === undefined ? 0 : 1) + bucket.sid.size + bucket.sub.size + bucket.jti.size)
    }
    return counts
  }

  #bucket (issuer: string): IssuerBucket {
    let bucket = this.#byIssuer.get(issuer)
    if (bucket === undefined) {
      bucket = { all: undefined, sid: new Map(), sub: new Map(), jti: new Map(), sessionsOfUser: new Map() }
      this.#byIssuer.set(issuer, bucket)
    }
    return bucket
  }

  #find (bucket: IssuerBucket, kind: RevocationKind, value: string): Revocation | undefined {
    return kind === 'issuer' ? bucket.all : bucket[kind].get(value)
  }

  #put (bucket: IssuerBucket, revocation: Revocation): void {
    if (revocation.kind === 'issuer') bucket.all = revocation
    else bucket[revocation.kind].set(revocation.value, revocation)
  }
}

function countSession (bucket: IssuerBucket, revocation: Revocation, delta: 1 | -1): void {
  if (revocation.kind !== 'sid' || revocation.sub === undefined) return
  const count = (bucket.sessionsOfUser.get(revocation.sub) ?? 0) + delta
  if (count > 0) bucket.sessionsOfUser.set(revocation.sub, count)
  else bucket.sessionsOfUser.delete(revocation.sub)
}

function covers (revocation: Revocation | undefined, issuedAt: number, nowSeconds: number): boolean {
  if (revocation === undefined || revocation.expiresAt <= nowSeconds) return false
  return revocation.before === null || issuedAt <= revocation.before
}
