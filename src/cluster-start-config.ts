/**
 * The configuration a cluster worker (WORKERS=N) starts with. Every worker reads the configuration file itself,
 * and reloads it on SIGHUP; a setting a reload cannot apply keeps its running value until the service restarts
 * (src/reload-plan.ts). A worker that replaces one that died must start with what the others run, not with what
 * the file says now: a `revocation` section edited and reloaded (refused until a restart) would otherwise be in
 * force in that one worker, and it would accept tokens the others refuse.
 *
 * So the primary keeps the text of the file it started from and gives it to each worker that asks. The worker
 * resolves that text, then applies the file as it is now the way a reload would: the settings a reload applies
 * take their new values, the others keep the ones the service started with. A file that is not valid now, or
 * whose values do not fit together with the running ones, leaves the worker on the configuration the service
 * started with, as a refused reload leaves the others on theirs.
 */
import cluster from 'node:cluster'
import { LOG_LEVEL, type ClusterLog } from './cluster-log.js'
import { ConfigError } from './config/load.js'
import type { Config } from './config/types.js'
import { heapLimitBytes } from './config/heap-budget.js'
import { inForceProblems, planReload } from './reload-plan.js'

const ASK = 'oidc-verifier:start-config?'
const ANSWER = 'oidc-verifier:start-config'

/** How long a worker waits for the primary's answer before it starts from the file as it is. */
export const ASK_TIMEOUT_MS = 5_000

/** The primary's side: answers each worker's question with the text it started from (undefined: no file). */
export function serveStartConfig (text: string | undefined): void {
  cluster.on('message', (worker, message: unknown) => {
    if (typeof message === 'object' && message !== null && (message as { type?: unknown }).type === ASK) {
      worker.send({ type: ANSWER, text: text ?? null }, () => {})
    }
  })
}

/** The channel to the primary (process in a worker; a stand-in in tests). */
export interface StartConfigPort {
  send?: ((message: object, callback: (error: Error | null) => void) => boolean) | undefined
  on: (event: 'message', listener: (message: unknown) => void) => unknown
  off: (event: 'message', listener: (message: unknown) => void) => unknown
}

/**
 * A worker's side: the text the primary started from; null when it started from the environment, undefined when
 * it did not answer in time (or there is no primary).
 */
export async function askStartConfig (port: StartConfigPort = process, timeoutMs = ASK_TIMEOUT_MS): Promise<string | null | undefined> {
  if (port.send === undefined) return undefined
  const send = port.send.bind(port)
  return await new Promise((resolve) => {
    const done = (value: string | null | undefined): void => {
      clearTimeout(timer)
      port.off('message', listener)
      resolve(value)
    }
    const listener = (message: unknown): void => {
      if (typeof message !== 'object' || message === null || (message as { type?: unknown }).type !== ANSWER) return
      const text = (message as { text?: unknown }).text
      done(typeof text === 'string' ? text : null)
    }
    const timer = setTimeout(() => { done(undefined) }, timeoutMs)
    port.on('message', listener)
    send({ type: ASK }, (error) => { if (error !== null) done(undefined) })
  })
}

/**
 * The configuration a worker runs: `atStart` (the primary's text, resolved) with the file as it is now applied
 * as a reload would apply it. `now` loads the file as it is (throws ConfigError when it is not valid).
 */
export function workerConfig (atStart: Config, now: () => Config, log: ClusterLog): Config {
  let current: Config
  try {
    current = now()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    log(`worker ${process.pid}: the configuration file is not valid now (${err.problems.length} problems, the first: ${err.problems[0] ?? '?'}); ` +
      'starting with the configuration the service started with', LOG_LEVEL.error)
    return atStart
  }
  const plan = planReload(atStart, current)
  const problems = inForceProblems(plan, heapLimitBytes())
  if (problems.length > 0) {
    log(`worker ${process.pid}: the configuration file does not fit the running settings (${problems[0] ?? '?'}); ` +
      'starting with the configuration the service started with', LOG_LEVEL.error)
    return atStart
  }
  if (plan.pending.length > 0) {
    log(`worker ${process.pid}: ${plan.pending.join(', ')} changed since the service started and needs a restart of the ` +
      'whole service to take effect; the value the service started with is kept, as in the other workers', LOG_LEVEL.warn)
  }
  return plan.config
}
