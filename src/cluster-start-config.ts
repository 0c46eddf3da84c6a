/**
 * The configuration a cluster worker (WORKERS=N) starts with. Every worker reads the configuration file itself,
 * and reloads it on SIGHUP; a setting a reload cannot apply keeps its running value until the service restarts
 * (src/reload-plan.ts). A worker that replaces one that died must start with what the others run, not with what
 * the file says now: a `revocation` section edited and reloaded (kept until a restart) would otherwise be in
 * force in that one worker, which would accept tokens the others refuse; and a file being edited, or invalid,
 * when the worker starts must not undo a reload (a leaked caller key removed).
 *
 * So the primary keeps what the workers run: the configuration the service started with (the settings a reload
 * cannot change are plain data in it), and the text of the last configuration file a worker reloaded (at first
 * the text the primary started from). A new worker resolves that text and keeps the start values of the
 * settings a reload cannot change, as a reload would. When that text no longer resolves (a file it names is
 * gone), it takes the file as it is now, the same way; when neither does, it does not start.
 */
import cluster, { type Worker } from 'node:cluster'
import { clusterLog, LOG_LEVEL, type ClusterLog } from './cluster-log.js'
import type { PrimaryChannel } from './cluster-primary.js'
import { ConfigError } from './config/load.js'
import type { Config } from './config/types.js'
import { heapLimitBytes } from './config/heap-budget.js'
import { callerAuthenticationProblems, inForceProblems, planReload } from './reload-plan.js'

const ASK = 'oidc-verifier:start-config?'
const ANSWER = 'oidc-verifier:start-config'
const APPLIED = 'oidc-verifier:applied-config'
const REFUSED = 'oidc-verifier:refused-config'

/** How long a worker waits for the primary's answer before it starts from the file as it is. */
export const ASK_TIMEOUT_MS = 5_000

/** What the primary tells a new worker. */
export interface StartConfigAnswer {
  /** The configuration the service started with, as JSON (restart-only settings are plain data). */
  start: string
  /** The text of the last configuration file a worker applied; null when the service runs from the environment. */
  applied: string | null
}

/** The primary's handle on what it serves. */
export interface StartConfigServer {
  /** The primary has asked every running worker to reload (SIGHUP). */
  reloadAsked: () => void
}

/**
 * The primary's side: answers each worker's question, and keeps the text of each configuration a worker reports
 * applied by a reload. `startText`: the file's text at start (undefined: the environment).
 *
 * A worker that asks while a reload is under way (asked for, and no worker has applied or refused a reload
 * that began after the ask) would start from the text before it, and was not running to be asked: it gets a
 * SIGHUP with its answer, which it keeps until it has started (src/stop-signals.ts), and reloads then as the
 * others do. A report of a reload that began before the last ask (a worker merges a SIGHUP that comes during
 * a reload into one more reload afterwards) does not end it.
 */
export function serveStartConfig (start: Config, startText: string | undefined, log: ClusterLog = clusterLog): StartConfigServer {
  const startJson = JSON.stringify(start)
  let applied = startText ?? null
  let askedAt: number | undefined
  const ends = (startedAt: unknown): void => {
    if (askedAt !== undefined && typeof startedAt === 'number' && startedAt >= askedAt) askedAt = undefined
  }
  // What the workers did with the last reload asked for. A process applies a reload whole or refuses it; so must the
  // host: workers left on different configurations (one refused a reload the others applied, its keys not fetched in
  // time, a file read half-written) would answer the same token differently, a leaked caller key removed in some only.
  let outcomes: { askedAt: number, applied: Set<Worker>, refused: Set<Worker> } | undefined
  const reported = (worker: Worker, startedAt: unknown, outcome: 'applied' | 'refused'): void => {
    if (outcomes === undefined || typeof startedAt !== 'number' || startedAt < outcomes.askedAt) return
    outcomes[outcome].add(worker)
    if (outcomes.applied.size === 0 || outcomes.refused.size === 0) return
    recycle([...outcomes.applied], [...outcomes.refused], log)
    outcomes.refused.clear()
  }
  cluster.on('message', (worker, message: unknown) => {
    if (typeof message !== 'object' || message === null) return
    const { type, text, startedAt } = message as { type?: unknown, text?: unknown, startedAt?: unknown }
    if (type === ASK) {
      worker.send({ type: ANSWER, start: startJson, applied }, () => {})
      if (askedAt !== undefined) worker.process.kill('SIGHUP')
    } else if (type === APPLIED) {
      if (typeof text === 'string' && applied !== null) applied = text
      ends(startedAt)
      reported(worker, startedAt, 'applied')
    } else if (type === REFUSED) {
      ends(startedAt)
      reported(worker, startedAt, 'refused')
    }
  })
  return {
    reloadAsked: () => {
      askedAt = Date.now()
      outcomes = { askedAt, applied: new Set(), refused: new Set() }
    }
  }
}

/**
 * Workers that refused a reload other workers applied are stopped (SIGTERM: they finish their requests); the
 * primary replaces them (src/cluster-primary.ts), and their replacements start from the configuration the others
 * applied, so that the host runs one configuration again.
 */
function recycle (applied: readonly Worker[], refused: readonly Worker[], log: ClusterLog): void {
  const pids = (workers: readonly Worker[]): string => workers.map((w) => w.process.pid).join(', ')
  const one = refused.length === 1
  log(`configuration reload applied by worker${applied.length === 1 ? '' : 's'} ${pids(applied)} but refused by ${one ? 'worker' : 'workers'} ` +
    `${pids(refused)} (${one ? 'its' : 'their'} log says why): stopping ${one ? 'it' : 'them'}, so that ${one ? 'its replacement starts' : 'their replacements start'} ` +
    'from the configuration the others applied', LOG_LEVEL.error)
  for (const worker of refused) worker.process.kill('SIGTERM')
}

/**
 * A worker's side, after a reload it applied: the text it read (none from the environment), for the workers that
 * start after it, and when the reload began.
 */
export function reportApplied (text: string | undefined, startedAt: number, port: PrimaryChannel = process): void {
  port.send?.(text === undefined ? { type: APPLIED, startedAt } : { type: APPLIED, text, startedAt }, () => {})
}

/** A worker's side, after a reload it refused: the reload that began at `startedAt` is over, nothing changed. */
export function reportRefused (startedAt: number, port: PrimaryChannel = process): void {
  port.send?.({ type: REFUSED, startedAt }, () => {})
}

/** A worker's side: the primary's answer; undefined when it did not answer in time (or there is no primary). */
export async function askStartConfig (port: PrimaryChannel = process, timeoutMs = ASK_TIMEOUT_MS): Promise<StartConfigAnswer | undefined> {
  if (port.send === undefined) return undefined
  const send = port.send.bind(port)
  return await new Promise((resolve) => {
    const done = (value: StartConfigAnswer | undefined): void => {
      clearTimeout(timer)
      port.off('message', listener)
      resolve(value)
    }
    const listener = (message: unknown): void => {
      if (typeof message !== 'object' || message === null) return
      const { type, start, applied } = message as { type?: unknown, start?: unknown, applied?: unknown }
      if (type !== ANSWER || typeof start !== 'string') return
      done({ start, applied: typeof applied === 'string' ? applied : null })
    }
    const timer = setTimeout(() => { done(undefined) }, timeoutMs)
    port.on('message', listener)
    send({ type: ASK }, (error) => { if (error !== null) done(undefined) })
  })
}

export interface WorkerConfigSources {
  /** Resolves a configuration file's text (files it names are read now); throws ConfigError. */
  fromText: (text: string) => Config
  /** Loads the configuration from its source as it is now (the file, or the environment); throws ConfigError. */
  now: () => Config
  log: ClusterLog
}

/**
 * The configuration a new worker runs (see the module comment). Throws ConfigError when no configuration the
 * other workers could be running resolves: the worker then exits, and the primary's restart bound applies.
 */
export function workerConfig (answer: StartConfigAnswer, sources: WorkerConfigSources): Config {
  const running = JSON.parse(answer.start) as Config
  let next: Config
  if (answer.applied === null) {
    next = sources.now()
  } else {
    try {
      next = sources.fromText(answer.applied)
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      sources.log(`worker ${process.pid}: the configuration the other workers run no longer resolves (${err.problems[0] ?? '?'}); ` +
        'starting from the file as it is now', LOG_LEVEL.warn)
      next = sources.now()
    }
  }
  const plan = planReload(running, next)
  const problems = [...callerAuthenticationProblems(running, next), ...inForceProblems(plan, heapLimitBytes())]
  if (problems.length > 0) throw new ConfigError(problems)
  if (plan.pending.length > 0) {
    sources.log(`worker ${process.pid}: ${plan.pending.join(', ')} changed since the service started and needs a restart of the ` +
      'whole service to take effect; the value the service started with is kept, as in the other workers', LOG_LEVEL.warn)
  }
  return plan.config
}
