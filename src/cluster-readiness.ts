/**
 * Readiness of the workers of one host (WORKERS=N, src/cluster-primary.ts). Each worker answers /readyz for
 * itself, but a load balancer's probe lands on whichever worker takes the connection: while one worker has
 * keys and another has none (a fetch that failed in one of them), the host would be ready and not ready in
 * turn. So each worker tells the primary whether it is ready (when that changes, looked at every
 * READINESS_REPORT_MS), the primary tells every worker how many of them are, and a worker's /readyz is 200 only
 * when it and every other worker are ready (src/http/routes/health.ts). A worker that has not reported yet (one
 * starting, or replacing one that died) counts as not ready, and so does one that has died and is not replaced
 * yet: the host has WORKERS of them (a worker that stopped cleanly is replaced a second later). A worker that has
 * no count from the primary yet is not ready either.
 */
import cluster, { type Worker } from 'node:cluster'
import { liveWorkers, type PrimaryChannel } from './cluster-primary.js'

const REPORT = 'oidc-verifier:ready'
const STATE = 'oidc-verifier:workers-ready'

/** How often a worker looks at its own readiness (a change is reported at once). */
export const READINESS_REPORT_MS = 1_000

/** How many workers of the host are ready, as the primary last said. */
export interface WorkersReady {
  ready: number
  total: number
}

/**
 * The primary's side: keeps each live worker's readiness and tells every worker the count when it changes.
 * `workers`: WORKERS, the total while fewer are alive.
 */
export function serveWorkerReadiness (workers: number): void {
  const readiness = new Map<number, boolean>()
  let said: string | undefined
  const tell = (force: Worker | undefined): void => {
    const live = liveWorkers()
    const state: WorkersReady = { ready: live.filter((w) => readiness.get(w.id) === true).length, total: Math.max(workers, live.length) }
    const key = `${state.ready}/${state.total}`
    if (key === said && force === undefined) return
    const changed = key !== said
    said = key
    for (const worker of changed ? live : [force as Worker]) worker.send({ type: STATE, ...state }, () => {})
  }
  cluster.on('message', (worker, message: unknown) => {
    if (typeof message !== 'object' || message === null || (message as { type?: unknown }).type !== REPORT) return
    const first = !readiness.has(worker.id)
    readiness.set(worker.id, (message as { ready?: unknown }).ready === true)
    // A worker's first report: it has no count yet, even when the count has not changed.
    tell(first ? worker : undefined)
  })
  cluster.on('fork', () => { tell(undefined) })
  cluster.on('exit', (worker) => {
    readiness.delete(worker.id)
    tell(undefined)
  })
}

/** A cluster worker's readiness before its reporter runs: no count of the host's workers yet. */
export const NO_WORKER_COUNT_YET: Pick<WorkerReadinessReporter, 'workers'> = Object.freeze({ workers: () => undefined })

/** A worker's side: reports `isReady()` when it changes; `workers()` is the primary's last count (undefined before one). */
export class WorkerReadinessReporter {
  #workers: WorkersReady | undefined
  #reported: boolean | undefined
  readonly #timer: NodeJS.Timeout
  readonly #port: PrimaryChannel
  readonly #listener: (message: unknown) => void

  /** `isReady`: undefined says nothing (a worker that is stopping). */
  constructor (isReady: () => boolean | undefined, port: PrimaryChannel = process, intervalMs = READINESS_REPORT_MS) {
    this.#port = port
    this.#listener = (message) => {
      if (typeof message !== 'object' || message === null) return
      const { type, ready, total } = message as { type?: unknown, ready?: unknown, total?: unknown }
      if (type !== STATE || !Number.isSafeInteger(ready) || !Number.isSafeInteger(total)) return
      this.#workers = { ready: ready as number, total: total as number }
    }
    port.on('message', this.#listener)
    const look = (): void => {
      const ready = isReady()
      if (ready === undefined || ready === this.#reported) return
      this.#reported = ready
      port.send?.({ type: REPORT, ready }, () => {})
    }
    look()
    this.#timer = setInterval(look, intervalMs).unref()
  }

  workers (): WorkersReady | undefined {
    return this.#workers
  }

  close (): void {
    clearInterval(this.#timer)
    this.#port.off('message', this.#listener)
  }
}
