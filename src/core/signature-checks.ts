/**
 * Where asymmetric signature checks run. Both places give the same answers; they differ in what they cost.
 *
 * - `thread-pool`: each check goes to libuv's thread pool (`crypto.verify` with a callback) while the event
 *   loop reads the next requests. With a core to spare beside the loop, one process verifies on several
 *   cores at once.
 * - `event-loop`: checks asked for during one turn of the loop are run together on the loop right after it
 *   (setImmediate), at most MAX_CHECKS_PER_TURN per turn, and their answers then go out together (past
 *   MAX_WAITING_CHECKS waiting, a check runs at once, so an overload shows as loop delay). With no
 *   core to spare, handing a check to another thread buys no parallelism, only a thread switch and a wake-up
 *   of the loop per check; and answers written one at a time each wake the caller separately.
 *
 * `auto` (the default) picks `thread-pool` when this process has at least two cores to itself, else
 * `event-loop` (docs/benchmarks.md has the measurements).
 */
import { verify } from 'node:crypto'
import { runCheck, type PreparedCheck } from './signature.js'

export type SignatureCheckMode = 'thread-pool' | 'event-loop'
export type SignatureCheckSetting = SignatureCheckMode | 'auto'

export interface SignatureChecks {
  readonly mode: SignatureCheckMode
  /** Whether the signature is valid; never rejects. */
  check: (c: PreparedCheck) => Promise<boolean>
}

/**
 * `auto` → `thread-pool` when the process has two cores or more to itself (a whole core for the checks
 * beside the event loop), `event-loop` otherwise. `coresPerProcess` may be fractional (a CPU quota shared
 * by several workers).
 */
export function resolveSignatureChecks (setting: SignatureCheckSetting, coresPerProcess: number): SignatureCheckMode {
  if (setting !== 'auto') return setting
  return coresPerProcess >= 2 ? 'thread-pool' : 'event-loop'
}

export function createSignatureChecks (mode: SignatureCheckMode): SignatureChecks {
  return mode === 'thread-pool' ? threadPoolChecks : new EventLoopChecks()
}

/**
 * At most this many signature checks wait in libuv's thread pool (process-wide); beyond it they run on the
 * event loop. Unbounded, an overload would only grow a queue the event-loop load shedding cannot see;
 * verifying inline past the bound makes the loop slow again, so shedding and TCP backpressure take over.
 */
export const MAX_QUEUED_VERIFICATIONS = 64
let queued = 0

/** Signature checks waiting in the thread pool now (the tests watch the bound with it). */
export function queuedVerifications (): number {
  return queued
}

const threadPoolChecks: SignatureChecks = {
  mode: 'thread-pool',
  check: (c) => {
    if (queued >= MAX_QUEUED_VERIFICATIONS) return Promise.resolve(runCheck(c))
    queued++
    return new Promise<boolean>((resolve) => {
      try {
        verify(c.hash, c.data, c.key, c.signature, (err, valid) => {
          queued--
          resolve(err === null && valid)
        })
      } catch {
        queued--
        resolve(false)
      }
    })
  }
}

/**
 * At most this many checks per turn of the event loop (about 2 ms of ES256): a burst is verified in
 * slices, and between two slices the loop reads, writes and runs its timers (health checks, scrapes).
 */
export const MAX_CHECKS_PER_TURN = 32

/**
 * At most this many checks wait for a turn (four slices, about 8 ms of ES256); past it a check runs at once, on
 * the turn that asks for it. Sliced, a backlog keeps the loop's delay at a slice's while it grows without
 * bound, so load shedding would never see a flood of new tokens, only their answers coming ever later (as
 * with an unbounded thread-pool queue, MAX_QUEUED_VERIFICATIONS).
 */
export const MAX_WAITING_CHECKS = 4 * MAX_CHECKS_PER_TURN

interface Waiting {
  check: PreparedCheck
  resolve: (valid: boolean) => void
}

class EventLoopChecks implements SignatureChecks {
  readonly mode = 'event-loop'
  private waiting: Waiting[] = []
  private scheduled = false

  // Not async: the promise itself is returned, without a second one wrapped around it.
  check = (c: PreparedCheck): Promise<boolean> => {
    if (this.waiting.length >= MAX_WAITING_CHECKS) return Promise.resolve(runCheck(c))
    return new Promise<boolean>((resolve) => {
      this.waiting.push({ check: c, resolve })
      if (!this.scheduled) {
        this.scheduled = true
        setImmediate(this.runTurn)
      }
    })
  }

  private readonly runTurn = (): void => {
    let turn = this.waiting
    if (turn.length > MAX_CHECKS_PER_TURN) {
      this.waiting = turn.slice(MAX_CHECKS_PER_TURN)
      turn = turn.slice(0, MAX_CHECKS_PER_TURN)
      setImmediate(this.runTurn)
    } else {
      this.waiting = []
      this.scheduled = false
    }
    // Every check of the turn runs before any answer: the answers' continuations are microtasks, which run
    // once this callback returns, so they are written back to back.
    for (const w of turn) w.resolve(runCheck(w.check))
  }
}
