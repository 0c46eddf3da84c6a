/**
 * At most one run of an expensive read at a time, shared by the requests that wait for it, and never an answer
 * older than the request: /metrics renders the whole registry (with WORKERS, every worker's), and anyone who
 * reaches the port can ask for it as often as they like.
 *
 * A call joins the run that has NOT started yet, never the one in progress: a run in progress may have read
 * its series before the call came (a test that counts something and then scrapes must see its count). The
 * next run starts when the current one ends (or, with none in progress, on the next turn of the event loop,
 * so that requests read in the same turn share it). However many calls, at most one run is in progress and
 * one waits: N concurrent scrapes cost two runs, not N. A run that fails fails every call that shares it;
 * the next run is tried afresh.
 *
 * Runs start at least `minIntervalMs` apart: callers that keep asking, each as soon as its answer came (a
 * flood from any number of addresses, which no per-address limit sees), would otherwise keep runs going back
 * to back. A call waits at most that long more than it would have; one after a quiet spell, not at all.
 */
export type Coalesced<T> = () => Promise<T>

/**
 * The least time between two renders of /metrics (one process's, or with WORKERS one collection of the host's):
 * a flood of scrapes costs at most 20 renders a second (~1 ms of CPU each in one process, ~10 ms over a host of
 * two workers: README "What a scrape costs"). Prometheus scrapes every 15 s or more and never notices it.
 */
export const RENDER_MIN_INTERVAL_MS = 50

export interface CoalesceOptions {
  /** The least time between the starts of two runs (default 0: a run starts as soon as the previous ends). */
  minIntervalMs?: number
  /** The clock (tests). */
  now?: () => number
}

/** `run`, coalesced: each call answers with a run that started after the call was made. */
export function coalesce<T> (run: () => Promise<T>, opts: CoalesceOptions = {}): Coalesced<T> {
  const minIntervalMs = opts.minIntervalMs ?? 0
  const now = opts.now ?? Date.now
  /** The run in progress (settled or not: only its end matters). */
  let running: Promise<unknown> | undefined
  /** The run that has not started yet, shared by every call since the current one started. */
  let waiting: Promise<T> | undefined
  /** When the last run started (-Infinity before the first). */
  let startedAt = -Infinity

  const start = (): Promise<T> => {
    waiting = undefined // from here on, a call may be too late for this run: it waits for the next
    startedAt = now()
    let current: Promise<T>
    try {
      current = run()
    } catch (err) {
      current = Promise.reject(err)
    }
    running = current
    const ended = (): void => { if (running === current) running = undefined }
    current.then(ended, ended)
    return current
  }

  /** `start`, once `minIntervalMs` has passed since the last run started. */
  const startInTurn = async (): Promise<T> => {
    const wait = startedAt + minIntervalMs - now()
    if (wait > 0) await new Promise((resolve) => { setTimeout(resolve, wait) })
    return await start()
  }

  return async () => {
    if (waiting === undefined) {
      const previous = running
      waiting = previous === undefined
        ? new Promise<void>((resolve) => { setImmediate(resolve) }).then(startInTurn)
        // Its outcome is its own callers'; this run only waits for its end.
        : previous.then(startInTurn, startInTurn)
    }
    return await waiting
  }
}
