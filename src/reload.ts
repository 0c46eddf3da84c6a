/**
 * Configuration reload (SIGHUP) without dropping requests in flight.
 *
 * The new configuration is read from the same source as at start and validated completely; an invalid one
 * is refused with a log line and the running one keeps serving. A valid one builds a new Verifier, which is
 * started and given time to load its keys before it is swapped in: a request never meets a Verifier that is
 * still discovering an issuer that was serving a moment ago. If such an issuer gets no usable keys under the
 * new configuration within the bound, the reload is refused too (the old Verifier still has its keys, stale
 * or not). The replaced Verifier is closed once the requests that arrived before the swap are done.
 *
 * Only what the Verifier owns can change without a restart (RELOADABLE). Any other changed setting (host,
 * port, TLS, body limit, rate limit…) is logged as needing a restart and otherwise ignored.
 */
import type { FastifyInstance } from 'fastify'
import { ConfigError } from './config/load.js'
import type { Config } from './config/types.js'
import { callerLimitApplies } from './http/route-rate-limit.js'
import type { IssuerStatus, Verifier } from './core/verifier.js'

/**
 * Settings a reload applies: everything the Verifier is built from, the log level, and the sections that
 * routes read per request from fastify.verifierSlot.config (callers, forwardAuth). A new setting is read
 * once at start unless it is listed here AND read through the slot.
 */
export const RELOADABLE: readonly string[] = [
  'issuers', 'jwks', 'fetch', 'tokenCache', 'server.maxTokenBytes', 'server.logLevel', 'callers', 'forwardAuth',
  // Read per request by POST /verify/batch (its body limit, batch.maxBodyBytes, is fixed when the route is built).
  'batch.maxTokens'
]
/** Never compared: where the configuration came from is not a setting. */
const NOT_SETTINGS = new Set(['source'])

/** How often the new Verifier's key status is looked at while waiting for it. */
const READY_POLL_MS = 50

export interface ReloadResult {
  outcome: 'applied' | 'refused'
  /** Why the reload was refused; empty when applied. */
  problems: string[]
  /** Changed settings that were not applied (they need a restart), as paths such as "server.port". */
  needsRestart: string[]
  /** Resolves when the replaced Verifier has been closed (immediately when refused). */
  retired: Promise<void>
}

export interface ReloadOptions {
  /**
   * How long the new Verifier may take to load the keys of issuers that had keys before. Default: twice
   * the new configuration's fetch timeout (discovery, then the JWKS).
   */
  readyTimeoutMs?: number
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Paths of settings whose values differ; lists and leaves are compared whole. Values are never reported. */
export function changedSettings (before: unknown, after: unknown, prefix = ''): string[] {
  if (isPlainObject(before) && isPlainObject(after)) {
    const keys = new Set([...Object.keys(before), ...Object.keys(after)])
    return [...keys].sort().flatMap((key) => {
      if (prefix === '' && NOT_SETTINGS.has(key)) return []
      return changedSettings(before[key], after[key], prefix === '' ? key : `${prefix}.${key}`)
    })
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [prefix]
}

function isReloadable (path: string): boolean {
  return RELOADABLE.some((r) => path === r || path.startsWith(`${r}.`))
}

/** The callers' own rate limits, comparable. */
function callerLimits (config: Config): string {
  return JSON.stringify(config.callers.keys.map((key) => [key.id, key.rateLimit ?? null]))
}

/** Not unref'd: the wait is bounded, and with inject() (tests) nothing else may keep the loop alive. */
const sleep = async (ms: number): Promise<void> => {
  await new Promise<void>((resolve) => setTimeout(resolve, ms))
}

/**
 * Waits until every issuer of `next` either has usable keys or, if it had none before, has at least been
 * tried; returns the issuers that had usable keys before and still have none when the time is up.
 */
async function waitForKeys (previous: Verifier, next: Verifier, timeoutMs: number, cancelled: () => boolean): Promise<IssuerStatus[]> {
  const readyBefore = new Set(previous.status().filter((s) => s.ready).map((s) => s.issuer))
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const statuses = next.status()
    const regressed = statuses.filter((s) => !s.ready && readyBefore.has(s.issuer))
    const settled = statuses.every((s) => s.ready || (!readyBefore.has(s.issuer) && s.lastError !== null))
    if (settled || Date.now() >= deadline || cancelled()) return regressed
    await sleep(READY_POLL_MS)
  }
}

/**
 * Reloads the configuration of a running app (built by buildApp). `load` reads it from the same source as at
 * start. Never throws: every outcome is logged and returned.
 */
export async function reloadConfiguration (app: FastifyInstance, load: () => Config, options: ReloadOptions = {}): Promise<ReloadResult> {
  const slot = app.verifierSlot
  const log = app.log.child({ component: 'reload' })
  const refused = (problems: string[], needsRestart: string[] = []): ReloadResult => {
    log.error({ problems }, `configuration reload refused (${problems.length === 1 ? '1 problem' : `${problems.length} problems`}); the previous configuration keeps serving`)
    return { outcome: 'refused', problems, needsRestart, retired: Promise.resolve() }
  }

  let next: Config
  try {
    next = load()
  } catch (err) {
    return refused(err instanceof ConfigError ? err.problems : [`cannot read the configuration: ${(err as Error).message}`])
  }

  const previous = slot.config
  const changed = changedSettings(previous, next)
  const needsRestart = changed.filter((path) => !isReloadable(path))
  // Callers' own limits are read per request, but only by routes built with a limit (src/http/route-rate-limit.ts).
  if (!app.callerRateLimited && callerLimitApplies(next) && callerLimits(next) !== callerLimits(previous)) {
    needsRestart.push('callers.keys[].rateLimit')
  }
  const applied = changed.filter(isReloadable)

  // Set first so that the new Verifier's logger is created at the new level; restored if refused.
  const previousLevel = app.log.level
  app.log.level = next.server.logLevel
  let verifier: Verifier
  try {
    verifier = slot.create(next)
    verifier.start()
  } catch (err) {
    app.log.level = previousLevel
    return refused([`cannot build a verifier from the new configuration: ${(err as Error).message}`], needsRestart)
  }
  const regressed = await waitForKeys(slot.current, verifier, options.readyTimeoutMs ?? 2 * next.fetch.timeoutMs, () => slot.closed)
  if (regressed.length > 0) {
    verifier.close()
    app.log.level = previousLevel
    return refused(regressed.map((s) => `issuers: ${s.id} (${s.issuer}) has usable keys now but got none under the new configuration` +
      (s.lastError === null ? '' : `: ${s.lastError}`)), needsRestart)
  }

  const retired = slot.swap(verifier, next)
  const notReady = verifier.status().filter((s) => !s.ready).map((s) => s.id)
  log.info({ issuers: verifier.issuerIds, changed: applied, notReady, source: next.source }, 'configuration reloaded')
  if (needsRestart.length > 0) {
    log.warn({ settings: needsRestart }, `configuration reloaded, but ${needsRestart.join(', ')} changed and needs a restart to take effect; the running value is kept`)
  }
  return { outcome: 'applied', problems: [], needsRestart, retired }
}

/**
 * Reloads on SIGHUP until the app closes. Reloads never overlap: a SIGHUP during a reload runs one more
 * reload after it, so the last signal always wins. Call it before the app is ready (it adds an onClose hook).
 */
export function reloadOnSighup (app: FastifyInstance, load: () => Config, options: ReloadOptions = {}): void {
  let running: Promise<void> | undefined
  let again = false
  const run = (): void => {
    if (running !== undefined) {
      again = true
      return
    }
    app.log.info({ signal: 'SIGHUP' }, 'reloading the configuration')
    running = reloadConfiguration(app, load, options).then(() => {
      running = undefined
      if (again) {
        again = false
        run()
      }
    })
  }
  process.on('SIGHUP', run)
  app.addHook('onClose', async () => { process.off('SIGHUP', run) })
}
