/**
 * The Verifier the service uses right now, replaceable while it runs (configuration reload, src/reload.ts).
 *
 * A request takes a lease on the Verifier generation that is current when it first uses one (request.verifier,
 * src/http/request-lifecycle.ts). A replaced Verifier is closed once the requests that leased it have finished,
 * or after a bound: closing only clears its timers and cache entries, so even a verification still running on
 * it completes.
 */
import type { Config } from './config/types.js'
import type { Verifier } from './core/verifier.js'

/** A replaced Verifier is closed at the latest this long after the swap, even if a lease is still held. */
export const RETIRE_AFTER_MS = 30_000

/** What a request holds while it runs: give it back once with VerifierSlot.release. */
export type Lease = Generation

interface Generation {
  readonly verifier: Verifier
  /** Replaced by reconfigure() when a reload keeps the Verifier. */
  config: Config
  leases: number
  /** Set when the generation is replaced: closes it. */
  retire?: () => void
}

export class VerifierSlot {
  #current: Generation
  readonly #create: (config: Config) => Verifier
  readonly #retiring = new Set<Generation>()
  #closed = false

  constructor (config: Config, create: (config: Config) => Verifier) {
    this.#create = create
    this.#current = { verifier: create(config), config, leases: 0 }
  }

  get current (): Verifier {
    return this.#current.verifier
  }

  /**
   * The configuration in force, which routes read per request and the current Verifier was built from (or,
   * after reconfigure(), whose Verifier settings equal those it was built from). After a reload, settings that
   * need a restart keep their running values in it (src/reload-plan.ts).
   */
  get config (): Config {
    return this.#current.config
  }

  /** The app has closed: nothing is swapped in any more. */
  get closed (): boolean {
    return this.#closed
  }

  /** Verifiers replaced but not closed yet (requests from before the swap still running). */
  get retiring (): number {
    return this.#retiring.size
  }

  /** Builds a Verifier the way the service does (same logger, events, fetcher), without installing it. */
  create (config: Config): Verifier {
    return this.#create(config)
  }

  /** Taken when a request first uses the Verifier (no allocation: this is on every verification's path). */
  lease (): Lease {
    const generation = this.#current
    generation.leases++
    return generation
  }

  /** Exactly once per lease: the caller forgets the lease when it gives it back. */
  release (lease: Lease): void {
    lease.leases--
    if (lease.leases === 0) lease.retire?.()
  }

  /**
   * Installs `verifier` (already started by the caller) in one assignment: a request arriving afterwards
   * sees only the new one. Resolves when the previous Verifier has been closed.
   */
  swap (verifier: Verifier, config: Config): Promise<void> {
    if (this.#closed) {
      verifier.close()
      return Promise.resolve()
    }
    const previous = this.#current
    this.#current = { verifier, config, leases: 0 }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => previous.retire?.(), RETIRE_AFTER_MS)
      timer.unref()
      previous.retire = () => {
        previous.retire = undefined
        clearTimeout(timer)
        this.#retiring.delete(previous)
        previous.verifier.close()
        resolve()
      }
      this.#retiring.add(previous)
      if (previous.leases === 0) previous.retire()
    })
  }

  /**
   * Installs `config` as the configuration in force and keeps the current Verifier: a reload that changed
   * nothing the Verifier is built from (src/reload-plan.ts). Resolves at once: nothing is retired.
   */
  reconfigure (config: Config): Promise<void> {
    this.#current.config = config
    return Promise.resolve()
  }

  /** Closes the current Verifier and every replaced one still waiting for its requests. */
  close (): void {
    this.#closed = true
    for (const generation of [...this.#retiring]) generation.retire?.()
    this.#current.verifier.close()
  }
}
