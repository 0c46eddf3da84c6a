/**
 * When the hit lane (src/http/hit-lane.ts) reads a body and gives it back to the route (a shape it does not take, or
 * a token its verification refused), the request pays for the lane's read, hash and hand-back on top of the route's
 * own work (a few µs; about 7 % of a random-kid flood request in the benchmark). Where the lane rarely answers (a
 * flood of refused tokens, a workload of per-request checks) it steps aside: below one answer (a hit, or a new token
 * that verified) in MIN_HIT_SHARE tries over a window, it tries only one eligible request in SAMPLE_EVERY, and opens
 * again when the sampled tries are answered often enough. Only who answers changes, never the answer.
 */

/** Tries per window over which the share the lane answers is judged. */
export const WINDOW = 256
/** Below one answer in this many tries, the lane stands aside. */
export const MIN_HIT_SHARE = 8
/** While aside, one eligible request in this many is tried (so that answers coming back are seen). */
export const SAMPLE_EVERY = 16

export class LaneGate {
  readonly #window: number
  #tries = 0
  #answered = 0
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

  /** The outcome of a try: answered by the lane (a hit, a new token that verified) or given back to the route. */
  record (answered: boolean): void {
    this.#tries++
    if (answered) this.#answered++
    if (this.#tries < this.#window) return
    this.#aside = this.#answered * MIN_HIT_SHARE < this.#tries
    this.#tries = 0
    this.#answered = 0
  }

  /** Whether the lane is aside (for tests and the benchmark's notes). */
  get aside (): boolean {
    return this.#aside
  }
}
