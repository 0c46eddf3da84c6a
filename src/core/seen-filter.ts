/**
 * Which verified tokens were seen before, in fixed memory: the admission filter of the verified-token cache
 * (the "doorkeeper" of TinyLFU, as in Caffeine). A token enters the cache on its second successful
 * verification, not its first, so tokens presented once (a batch job, a scan, a flood of fresh logins) neither
 * push the tokens in real use out of the cache nor cost an entry's memory and garbage collection each.
 *
 * Two Bloom filters over the cache key (a SHA-256 digest, so its bits are already uniform): lookups read both,
 * insertions go to the current one, and after `capacity` insertions the current becomes the previous and a
 * cleared one takes its place. So a token is remembered for between one and two generations of `capacity`
 * other tokens, and memory is fixed: two bit arrays of about ten bits per token of capacity. A false positive
 * (about 1 in 150 at capacity) only admits a token on its first sighting, as a cache without the filter would.
 */
import { SEXTETS } from './base64url.js'

/** Bits per token of capacity; with 7 probes this is a false-positive rate of about 0.7 %. */
const BITS_PER_ENTRY = 10
const PROBES = 7
/** Bits of the key each probe reads: 4 base64 characters. */
const CHARS_PER_PROBE = 4
const MIN_BITS = 1 << 12
const MAX_BITS = 1 << 24

export class SeenFilter {
  readonly #capacity: number
  readonly #mask: number
  #current: Uint32Array
  #previous: Uint32Array
  #inserted = 0
  readonly #probes = new Uint32Array(PROBES)

  /** `capacity`: tokens per generation (the cache's entry bound is a good choice). */
  constructor (capacity: number) {
    this.#capacity = Math.max(1, capacity)
    let bits = MIN_BITS
    while (bits < this.#capacity * BITS_PER_ENTRY && bits < MAX_BITS) bits *= 2
    this.#mask = bits - 1
    this.#current = new Uint32Array(bits / 32)
    this.#previous = new Uint32Array(bits / 32)
  }

  /** Memory held, in bytes (fixed). */
  get bytes (): number {
    return this.#current.byteLength + this.#previous.byteLength
  }

  /**
   * Whether `key` was recorded before (in this generation or the previous one); records it either way.
   * `key` must be a base64 digest of at least 28 characters: its characters are read as the probe positions.
   */
  seenBefore (key: string): boolean {
    if (key.length < PROBES * CHARS_PER_PROBE) throw new RangeError('SeenFilter keys are base64 digests of 168 bits or more')
    const probes = this.#probes
    for (let p = 0; p < PROBES; p++) {
      const at = p * CHARS_PER_PROBE
      probes[p] = ((sextet(key, at) << 18) | (sextet(key, at + 1) << 12) | (sextet(key, at + 2) << 6) | sextet(key, at + 3)) & this.#mask
    }
    if (isSet(this.#current, probes)) return true
    const before = isSet(this.#previous, probes)
    this.#record(probes)
    return before
  }

  clear (): void {
    this.#current.fill(0)
    this.#previous.fill(0)
    this.#inserted = 0
  }

  #record (probes: Uint32Array): void {
    if (this.#inserted >= this.#capacity) {
      const cleared = this.#previous.fill(0)
      this.#previous = this.#current
      this.#current = cleared
      this.#inserted = 0
    }
    const bits = this.#current
    for (let p = 0; p < PROBES; p++) {
      const bit = probes[p] as number
      bits[bit >>> 5] = (bits[bit >>> 5] as number) | (1 << (bit & 31))
    }
    this.#inserted++
  }
}

function sextet (key: string, at: number): number {
  return SEXTETS[key.charCodeAt(at) & 127] as number
}

function isSet (bits: Uint32Array, probes: Uint32Array): boolean {
  for (let p = 0; p < PROBES; p++) {
    const bit = probes[p] as number
    if (((bits[bit >>> 5] as number) & (1 << (bit & 31))) === 0) return false
  }
  return true
}
