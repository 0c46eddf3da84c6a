/**
 * A bound on failed caller-key checks per client address, so that keys cannot be guessed at the rate the
 * service answers: past `max` failures in a window of `windowMs`, every request from that address is refused
 * (429 rate_limited) until the window ends, even with a right key (otherwise the answer to the next guess
 * would still tell whether it was right). The window starts at an address's first failure.
 *
 * Bounded memory: an LRU of addresses (lru-cache), entries expiring with their window. Under a flood from
 * more addresses than it holds, the least recently failing are forgotten first, which lets them guess again
 * sooner; that many addresses are beyond what one bound per address can stop.
 */
import { LRUCache } from 'lru-cache'

/** Addresses remembered at once. */
export const MAX_TRACKED_ADDRESSES = 10_000

interface Window {
  failures: number
  /** Milliseconds since the epoch. */
  endsAt: number
}

export class FailedAttempts {
  readonly #windowMs: number
  readonly #now: () => number
  readonly #windows: LRUCache<string, Window>
  /** When the latest window recorded ends: past it, no address is held back (windows expire lazily in the LRU). */
  #lastEndsAt = 0

  /** `max` is given per call (a configuration reload may change it); 0 turns the bound off. */
  constructor (windowMs: number, now: () => number = Date.now) {
    this.#windowMs = windowMs
    this.#now = now
    this.#windows = new LRUCache<string, Window>({ max: MAX_TRACKED_ADDRESSES })
  }

  /** Seconds until the address may try again, or 0 when it may try now. */
  blockedFor (address: string, max: number): number {
    if (max === 0) return 0
    const window = this.#windows.get(address)
    if (window === undefined) return 0
    const left = window.endsAt - this.#now()
    if (left <= 0) {
      this.#windows.delete(address)
      return 0
    }
    return window.failures >= max ? Math.ceil(left / 1000) : 0
  }

  record (address: string, max: number): void {
    if (max === 0) return
    const now = this.#now()
    const window = this.#windows.get(address)
    if (window === undefined || window.endsAt <= now) {
      this.#windows.set(address, { failures: 1, endsAt: now + this.#windowMs })
      this.#lastEndsAt = Math.max(this.#lastEndsAt, now + this.#windowMs)
    } else {
      window.failures++
    }
  }

  /**
   * Whether some address may be held back now: a window has not ended yet. False once the last one has, though
   * the LRU still holds windows of addresses that never came back (they are dropped when met again, or pushed out).
   */
  get active (): boolean {
    return this.#windows.size > 0 && this.#now() < this.#lastEndsAt
  }

  get size (): number {
    return this.#windows.size
  }
}
