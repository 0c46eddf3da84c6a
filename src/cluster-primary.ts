/**
 * Several workers on one host behind one port (node:cluster), for a machine with more cores than one
 * process can use: `WORKERS=N npm start`. The primary validates the configuration, forks N workers that each
 * run the whole service (the cluster module shares the listening port), forwards SIGHUP (reload) and
 * SIGTERM/SIGINT (graceful stop), replaces a worker that dies, with a bound on restarts, and relays
 * revocations between the workers when they are kept in memory. One worker per
 * container stays the default for Kubernetes, where replicas are scaled instead.
 */
import cluster, { type Worker } from 'node:cluster'
import { clusterLog, LOG_LEVEL } from './cluster-log.js'
import { relayRevocations } from './revocation/cluster-relay.js'
import { ProcessStop, REPEAT_WINDOW_MS, type StopSignal } from './stop-signals.js'

const STARTED = 'oidc-verifier:started'

/** A worker's channel to its primary: the process's IPC channel (send is undefined without one), or a stand-in in tests. */
export interface PrimaryChannel {
  send?: ((message: object, callback: (error: Error | null) => void) => boolean) | undefined
  on: (event: 'message', listener: (message: unknown) => void) => unknown
  off: (event: 'message', listener: (message: unknown) => void) => unknown
}

/** A worker's side: every listener is open (the primary counts the service as having served). */
export function reportStarted (port: PrimaryChannel = process): void {
  port.send?.({ type: STARTED }, () => {})
}

/** The workers alive now: one that has exited can stay in cluster.workers until its IPC channel is closed too. */
export function liveWorkers (): Worker[] {
  return Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead())
}

/** A worker that dies is replaced, but not more often than this in a minute: a crash loop must surface. */
export const MAX_RESTARTS_PER_MINUTE = 10

export function parseWorkers (value: string | undefined, cores: number): number | Error {
  if (value === undefined || value === '') return 1
  if (value === 'auto') return Math.max(1, cores)
  if (!/^[1-9][0-9]{0,2}$/.test(value)) return new Error(`WORKERS: expected a whole number from 1 to 999 or "auto", got ${JSON.stringify(value.slice(0, 20))}`)
  return Number(value)
}

export interface PrimaryOptions {
  /** With the memory revocation store: the bound of the primary's copy of the revocations it relays. */
  relayRevocations?: number
  /** Called when a SIGHUP asks every worker to reload (src/cluster-start-config.ts: a worker starting meanwhile reloads too). */
  onReload?: () => void
}

/**
 * `signals`: the process's stop signals (src/stop-signals.ts). A signal sent to the whole process group
 * reaches each worker twice, directly and from here; workers ignore the copy. A second signal later than
 * that, an operator's "stop now", kills the workers and exits 1.
 */
export function runPrimary (workers: number, graceSeconds: number, options: PrimaryOptions = {},
  signals: ProcessStop = new ProcessStop({ repeatForces: true, hangup: 'reload' })): void {
  let stopping = false
  const restarts: number[] = []
  const log = clusterLog
  // Before the first fork: every worker, the first ones included, is relayed (src/revocation/cluster-relay.ts).
  if (options.relayRevocations !== undefined) relayRevocations(options.relayRevocations, log)

  const fork = (): Worker => cluster.fork()
  // Workers that have started (every listener open, src/start.ts): only they have their signal handlers for sure.
  const running = new Set<number>()
  // Workers whose signal handlers are in place: each has said something. A worker's first message (its question
  // for the configuration to start with, src/cluster-start-config.ts) comes after src/server.ts installed them; a
  // SIGHUP before that would end it (the signal's default action).
  const handlingSignals = new Set<number>()
  let served = false
  cluster.on('message', (worker, message: unknown) => {
    handlingSignals.add(worker.id)
    if ((message as { type?: unknown } | null)?.type !== STARTED) return
    running.add(worker.id)
    served = true
  })
  const forked = Array.from({ length: workers }, fork)
  log(`started ${workers} workers (pids ${forked.map((w) => w.process.pid).join(', ')})`)

  let stopSignal: StopSignal | undefined
  const pendingReplacements = new Set<ReturnType<typeof setTimeout>>()
  // Until a worker has started, the service has never served: a worker that dies then (a port taken, the ops
  // port included, no privilege for it) would die the same way again, so the primary stops at once, with the
  // worker's own line.
  cluster.on('exit', (worker, code, signal) => {
    running.delete(worker.id)
    handlingSignals.delete(worker.id)
    if (stopping) {
      // A worker that did not stop cleanly fails the whole stop: exit 1 at its grace limit, or killed by another
      // signal than the stop's own (which ends a worker still starting, before its handlers are in place).
      const clean = signal === null ? code === 0 : signal === stopSignal
      if (!clean) {
        log(`worker ${worker.process.pid} exited (${signal ?? code}) while stopping`, LOG_LEVEL.error)
        process.exitCode = 1
      }
      // The exit code stop() was given: 1 after a crash loop, which must not look like a clean stop.
      if (liveWorkers().length === 0) process.exit(process.exitCode ?? 0)
      return
    }
    if (!served && ((code === 0 && signal === null) || signal === 'SIGINT' || signal === 'SIGTERM')) {
      // Stopped (exit 0), or ended by a stop signal before its handlers were in place: most likely a signal to the
      // whole process group (Ctrl-C during start-up), whose copy reaches the primary a moment later and stops the
      // service with exit 0. Only if none comes is it a start-up failure.
      const timer = setTimeout(() => {
        pendingReplacements.delete(timer)
        if (served) replace(worker, code, signal)
        else failedBeforeServing(worker, code, signal)
      }, REPEAT_WINDOW_MS)
      pendingReplacements.add(timer)
      return
    }
    if (!served) {
      failedBeforeServing(worker, code, signal)
      return
    }
    if (code === 0 && signal === null) {
      // A worker exits 0 only when told to stop. A signal sent to the whole process group (Ctrl-C, systemd)
      // reaches the primary too, a moment later: the worker is replaced only if the primary is not stopping
      // by then (someone stopped that one worker, to recycle it).
      const timer = setTimeout(() => {
        pendingReplacements.delete(timer)
        replace(worker, code, signal)
      }, REPEAT_WINDOW_MS)
      pendingReplacements.add(timer)
      return
    }
    replace(worker, code, signal)
  })

  const failedBeforeServing = (worker: Worker, code: number, signal: string | null): void => {
    log(`worker ${worker.process.pid} exited (${signal ?? code}) before the service ever started (all its listeners open); stopping`, LOG_LEVEL.error)
    stop('SIGTERM', 1)
  }

  const replace = (worker: Worker, code: number, signal: string | null): void => {
    const now = Date.now()
    while (restarts.length > 0 && now - (restarts[0] as number) > 60_000) restarts.shift()
    if (restarts.length >= MAX_RESTARTS_PER_MINUTE) {
      log(`worker ${worker.process.pid} exited (${signal ?? code}); too many restarts in a minute, stopping`, LOG_LEVEL.error)
      stop('SIGTERM', 1)
      return
    }
    restarts.push(now)
    const replacement = fork()
    log(`worker ${worker.process.pid} exited (${signal ?? code}); started replacement ${replacement.process.pid}`, LOG_LEVEL.warn)
  }

  const stop = (signal: StopSignal, exitCode = 0): void => {
    if (stopping) return
    stopping = true
    stopSignal = signal
    for (const timer of pendingReplacements) clearTimeout(timer)
    log(`${signal}: stopping workers`)
    if (exitCode !== 0) process.exitCode = exitCode
    const running = liveWorkers()
    // Every worker already gone (each stopped on its copy of a process-group signal): nothing to wait for.
    if (running.length === 0) process.exit(process.exitCode ?? 0)
    for (const worker of running) worker.process.kill(signal)
    // Workers finish their requests within their own grace period; the primary waits a little longer. One still
    // there then cannot run (a blocked event loop never sees the channel close either): it is killed, not left
    // behind without a parent.
    setTimeout(() => {
      const stuck = liveWorkers()
      if (stuck.length > 0) {
        log(`worker${stuck.length === 1 ? '' : 's'} ${stuck.map((w) => w.process.pid).join(', ')} still running ${graceSeconds + 5} s after ${signal}; killing ${stuck.length === 1 ? 'it' : 'them'} (SIGKILL)`, LOG_LEVEL.error)
        for (const worker of stuck) worker.process.kill('SIGKILL')
      }
      process.exit(exitCode === 0 ? 1 : exitCode)
    }, (graceSeconds + 5) * 1000).unref()
  }
  signals.whenStopping((signal) => { stop(signal) }, (signal) => {
    log(`second ${signal}: killing the workers now`, LOG_LEVEL.error)
    for (const worker of liveWorkers()) worker.process.kill('SIGKILL')
    process.exit(1)
  }, (signal) => { log(`${signal} again: already stopping; send it again after a second to kill the workers now`) })
  process.on('SIGHUP', () => {
    // Stopping: the workers are draining, and a reload would change their configuration under those requests.
    if (stopping) {
      log('SIGHUP while stopping: no reload')
      return
    }
    log('SIGHUP: asking every worker to reload its configuration')
    options.onReload?.()
    // A worker still starting that has not asked for its configuration yet gets the reload with its answer
    // (src/cluster-start-config.ts), once its handlers are in place.
    for (const worker of liveWorkers()) if (handlingSignals.has(worker.id)) worker.process.kill('SIGHUP')
  })
  // Diagnostics (a heap snapshot with --heapsnapshot-signal) are about the workers, which serve the requests; a
  // worker still starting may not have its handler yet, and the signal's default action would end it.
  signals.onDiagnostic((signal) => {
    log(`${signal}: passed on to every worker that has started (it stops nothing)`)
    for (const worker of liveWorkers()) if (running.has(worker.id)) worker.process.kill(signal)
  })
  signals.replayHangup()
}

/**
 * The cores this process has to itself: all the cores it may run on (CPU affinity; Node ≥ 22 also counts a
 * container's CPU quota), shared by the workers when it is one of WORKERS=N. Fractional when they do not
 * divide evenly. Decides where signature checks run (src/core/signature-checks.ts).
 */
export function coresPerProcess (env: NodeJS.ProcessEnv, cores: number, isWorker: boolean): number {
  if (!isWorker) return cores
  const workers = parseWorkers(env.WORKERS, cores)
  return workers instanceof Error ? cores : cores / workers
}
