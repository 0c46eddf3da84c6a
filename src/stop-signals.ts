/**
 * SIGTERM and SIGINT: the first starts one graceful stop; what a repeat means depends on where it comes from.
 *
 * A signal sent to a whole process group reaches a process more than once: Ctrl-C in a terminal and systemd's
 * `KillMode=control-group` signal every process of the group, and the process's parent (npm, which forwards
 * the signals it gets to its child, or the cluster primary, which passes a stop on to its workers) sends it
 * again. Those copies must not cut the stop short. So:
 * - a cluster worker ignores every repeat: the primary decides when a stop has taken too long;
 * - any other process (the primary, or the service alone) ignores repeats within `REPEAT_WINDOW_MS` of the
 *   first signal, the copies of one event, and takes a later one as an operator's "stop now".
 */

/** Copies of one group signal arrive within milliseconds; a person pressing Ctrl-C again takes longer. */
export const REPEAT_WINDOW_MS = 1000

export const STOP_SIGNALS = ['SIGTERM', 'SIGINT'] as const
export type StopSignal = typeof STOP_SIGNALS[number]

/** Signals that neither stop nor reload the service: said in a line (or passed on to the workers), then ignored. */
export const DIAGNOSTIC_SIGNALS = ['SIGUSR2'] as const
export type DiagnosticSignal = typeof DIAGNOSTIC_SIGNALS[number]

/**
 * Every signal close-with-grace would take as a graceful stop with exit 0 (its events/signal.events.js). None is
 * left to it: SIGTERM and SIGINT come through ProcessStop, SIGHUP reloads (or, in npm run dev, stops through
 * close-with-grace), SIGUSR2 is diagnostic, and SIGQUIT and the fault signals (SIGABRT, SIGSEGV, …) keep their
 * default action, so a supervisor sees the process die by them rather than a clean exit that hides a crash.
 */
export const NOT_GRACEFUL_SIGNALS = [...STOP_SIGNALS, ...DIAGNOSTIC_SIGNALS, 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV'] as const

export interface StopSignalHandlers {
  /** The first signal: stop gracefully. */
  stop: (signal: StopSignal) => void
  /** A later signal, outside the repeat window, when repeats may force: stop now. */
  force: (signal: StopSignal) => void
  /** A repeat that changes nothing (a copy of the first signal, or any repeat in a cluster worker). */
  ignored?: (signal: StopSignal) => void
}

export interface StopSignalOptions {
  /** false in a cluster worker: only its primary forces a stop. */
  repeatForces: boolean
  /** For tests; milliseconds, monotonic (a wall-clock step must not turn a copy into a repeat). */
  now?: () => number
  /** For tests: where the listeners go (default: the process). */
  target?: Pick<NodeJS.Process, 'on' | 'removeListener' | 'emit'>
}

/** Installs the listeners; returns a function that removes them. */
export function onStopSignals (handlers: StopSignalHandlers, options: StopSignalOptions): () => void {
  const now = options.now ?? (() => performance.now())
  const target = options.target ?? process
  let firstAt: number | undefined
  const listener = (signal: StopSignal): void => {
    if (firstAt === undefined) {
      firstAt = now()
      handlers.stop(signal)
    } else if (options.repeatForces && now() - firstAt >= REPEAT_WINDOW_MS) {
      handlers.force(signal)
    } else {
      handlers.ignored?.(signal)
    }
  }
  for (const signal of STOP_SIGNALS) target.on(signal, listener)
  return () => { for (const signal of STOP_SIGNALS) target.removeListener(signal, listener) }
}

/**
 * The process's stop signals, installed first thing at start-up (src/server.ts), before the service exists,
 * so that a stop during start-up ends the process cleanly with a line instead of killing it silently (or, as
 * PID 1 in a container, being ignored). What a stop does is set later, by whatever the process runs
 * (`whenStopping`). A SIGHUP until then would kill the process by its default action; instead, where
 * SIGHUP reloads (`hangup: 'reload'`), it is kept and acted on once the service has started
 * (`replayHangup`), so a reload asked for during start-up (the cluster primary passes SIGHUP on to a worker
 * that may still be starting) reads the configuration again; where SIGHUP stops (`npm run dev`), it stops.
 */
export class ProcessStop {
  #diagnostic: ((signal: DiagnosticSignal) => void) | undefined
  #stop: ((signal: StopSignal) => void) | undefined
  #force: ((signal: StopSignal) => void) | undefined
  #ignored: ((signal: StopSignal) => void) | undefined
  #hangupDuringStart = false
  readonly #write: (line: string) => void
  readonly #exit: (code: number) => void
  readonly #target: Pick<NodeJS.Process, 'on' | 'removeListener' | 'emit'>

  constructor (options: StopSignalOptions & { hangup: 'reload' | 'stop', write?: (line: string) => void, exit?: (code: number) => void }) {
    this.#write = options.write ?? ((line) => { process.stderr.write(line + '\n') })
    this.#exit = options.exit ?? ((code) => process.exit(code))
    const target = this.#target = options.target ?? process
    onStopSignals({
      stop: (signal) => {
        if (this.#stop !== undefined) return this.#stop(signal)
        this.#write(`oidc-verifier: ${signal} during start-up: stopping before listening`)
        this.#exit(0)
      },
      force: (signal) => {
        if (this.#force !== undefined) return this.#force(signal)
        this.#write(`oidc-verifier: second ${signal}: exiting now`)
        this.#exit(1)
      },
      // In a cluster worker every repeat is ignored, and said by nobody: the primary is the one to tell.
      ignored: (signal) => { if (options.repeatForces) this.#ignored?.(signal) }
    }, options)
    // Not a stop (close-with-grace would make it one, and its default action kills the process): SIGUSR2 is what
    // node --heapsnapshot-signal=SIGUSR2 takes, and tools send it to a process they do not mean to end.
    for (const signal of DIAGNOSTIC_SIGNALS) {
      target.on(signal, () => {
        if (this.#diagnostic !== undefined) return this.#diagnostic(signal)
        this.#write(`oidc-verifier: ${signal} received: it does not stop the service (node --heapsnapshot-signal=${signal} writes a heap snapshot on it)`)
      })
    }
    target.on('SIGHUP', () => {
      if (this.#stop !== undefined) return // the service's own SIGHUP handling has it
      if (options.hangup === 'stop') {
        this.#write('oidc-verifier: SIGHUP during start-up: stopping before listening')
        this.#exit(0)
      } else if (!this.#hangupDuringStart) {
        this.#hangupDuringStart = true
        this.#write('oidc-verifier: SIGHUP during start-up: the configuration is read again once the service has started')
      }
    })
  }

  /** What a diagnostic signal does instead of the default line (the cluster primary passes it on to its workers). */
  onDiagnostic (handler: (signal: DiagnosticSignal) => void): void {
    this.#diagnostic = handler
  }

  /** Once the service handles SIGHUP itself: a SIGHUP that came during start-up now has its effect. */
  replayHangup (): void {
    if (!this.#hangupDuringStart) return
    this.#hangupDuringStart = false
    this.#target.emit('SIGHUP', 'SIGHUP')
  }

  /**
   * `stop` on the first signal; `force` (optional) on a later one that forces; `ignored` (optional) on a copy
   * within the repeat window, to say that the stop is under way.
   */
  whenStopping (stop: (signal: StopSignal) => void, force?: (signal: StopSignal) => void, ignored?: (signal: StopSignal) => void): void {
    this.#stop = stop
    this.#force = force
    this.#ignored = ignored
  }
}
