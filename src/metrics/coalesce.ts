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
 */
export type Coalesced<T> = () => Promise<T>

/** `run`, coalesced: each call answers with a run that started after the call was made. */
export function coalesce<T> (run: () => Promise<T>): Coalesced<T> {
  /** The run in progress (settled or not: only its end matters). */
  let running: Promise<unknown> | undefined
  /** The run that has not started yet, shared by every call since the current one started. */
  let waiting: Promise<T> | undefined

  const start = (): Promise<T> => {
    waiting = undefined // from here on, a call may be too late for this run: it waits for the next
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

  return async () => {
    if (waiting === undefined) {
      const previous = running
      waiting = previous === undefined
        ? new Promise<void>((resolve) => { setImmediate(resolve) }).then(start)
        // Its outcome is its own callers'; this run only waits for its end.
        : previous.then(start, start)
    }
    return await waiting
  }
}
