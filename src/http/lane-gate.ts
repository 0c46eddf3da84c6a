/**
 * When the hit lane (src/http/hit-lane.ts) reads a body it cannot answer, the request pays for the lane's read,
 * hash and hand-back on top of the route's own work (a few µs; about 7 % of a random-kid flood request in the
 * benchmark). Where hits are rare (a flood, a batch of tokens seen once, a workload of per-request checks) the lane
 * steps aside: below one hit in MIN_HIT_SHARE tries over a window, it tries only one eligible request in
 * SAMPLE_EVERY, and opens again when the sampled tries hit often enough. Only who answers changes, never the answer.
 */

/** Tries per window over which the lane's hit share is judged. */
export const WINDOW = 256
/** Below one hit in this many tries, the lane stands aside. */
export const MIN_HIT_SHARE = 8
/** While aside, one eligible request in this many is tried (so that hits coming back are seen). */
export const SAMPLE_EVERY = 16

export class LaneGate {
  readonly #window: number
  #tries = 0
  #hits = 0
  #aside = false
  #skipped = 0

  constructor (window = WINDOW) {
    this.#window = window
  }

  /** Whether the lane should try this eligible request. */
  shouldTry (): boolean {
    if (!this.#aside) return true
    if (++this.#skipped < SAMPLE_EVERY) return false
    this.#skipped = 0
    return true
  }

  /** The outcome of a try: answered (a hit) or given back to the route. */
  record (hit: boolean): void {
    this.#tries++
    if (hit) this.#hits++
    if (this.#tries < this.#window) return
    this.#aside = this.#hits * MIN_HIT_SHARE < this.#tries
    this.#tries = 0
    this.#hits = 0
  }

  /** Whether the lane is aside (for tests and the benchmark's notes). */
  get aside (): boolean {
    return this.#aside
  }
}
