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
 * Only what RELOADABLE lists changes without a restart: what the Verifier owns, what routes read per request,
 * and the TLS certificates, read again from their files on every reload (src/http/tls-reload.ts). Any other
 * changed setting (host, port, turning TLS on or off, body limit, rate limit…) is logged as needing a restart
 * and keeps its running value. What a reload installs (fastify.verifierSlot.config) is the configuration in
 * force: the new values of reloadable settings, the running values of the others. So routes never read a
 * value that is not applied, and every reload compares against what runs: a change that waits for a restart
 * is reported by every reload until then, and a change back to the running value is no change.
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { ConfigError } from './config/load.js'
import type { Config } from './config/types.js'
import { callerLimitApplies, callersWithoutMax } from './http/route-rate-limit.js'
import { readCertificates, tlsListeners, useCertificates, type ListenerCertificates } from './http/tls-reload.js'
import type { IssuerStatus, Verifier } from './core/verifier.js'

/**
 * Settings a reload applies: everything the Verifier is built from, the log level, the sections that
 * routes read per request from fastify.verifierSlot.config (callers, forwardAuth), and the certificate files.
 * A new setting is read once at start unless it is listed here AND read through the slot (or applied here).
 */
export const RELOADABLE: readonly string[] = [
  'issuers', 'jwks', 'fetch', 'tokenCache', 'server.maxTokenBytes', 'server.logLevel', 'callers', 'forwardAuth',
  // Read per request by POST /verify/batch (its body limit, batch.maxBodyBytes, is fixed when the route is built).
  'batch.maxTokens',
  // Read again on every reload, changed or not, and put in use by the running listeners (src/http/tls-reload.ts).
  'server.tls.certFile', 'server.tls.keyFile', 'server.tls.clientCaFile', 'server.opsTls.certFile', 'server.opsTls.keyFile'
]
/**
 * Reloadable settings that a reload can change from one value to another, but not set or remove: with a
 * clientCaFile the listener asks for client certificates (requestCert), which is fixed when it is created.
 */
const CHANGED_NOT_SET = new Set(['server.tls.clientCaFile'])
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

/** A setting's place in the configuration, key by key ("server.port" is ['server', 'port']). */
type Path = readonly string[]

const dotted = (path: Path): string => path.join('.')

/** Paths of settings whose values differ; lists and leaves are compared whole. */
function changedPaths (before: unknown, after: unknown, path: Path = []): Path[] {
  if (isPlainObject(before) && isPlainObject(after)) {
    const keys = new Set([...Object.keys(before), ...Object.keys(after)])
    return [...keys].sort().flatMap((key) => {
      if (path.length === 0 && NOT_SETTINGS.has(key)) return []
      return changedPaths(before[key], after[key], [...path, key])
    })
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [path]
}

/** Paths of settings whose values differ, such as "server.port"; values are never reported. */
export function changedSettings (before: unknown, after: unknown): string[] {
  return changedPaths(before, after).map(dotted)
}

function valueAt (config: unknown, path: Path): unknown {
  return path.reduce<unknown>((value, key) => isPlainObject(value) ? value[key] : undefined, config)
}

/** A copy of `config` with `value` at `path` (removed when undefined); only the objects on the path are copied. */
function withValueAt (config: Record<string, unknown>, path: Path, value: unknown): Record<string, unknown> {
  const [key, ...rest] = path
  if (key === undefined) return config
  const copy = { ...config }
  if (rest.length > 0) copy[key] = withValueAt(isPlainObject(config[key]) ? config[key] : {}, rest, value)
  else if (value === undefined) delete copy[key]
  else copy[key] = value
  return copy
}

/** Whether a reload applies this change (RELOADABLE; CHANGED_NOT_SET only from one value to another). */
function isReloadable (path: Path, running: Config, next: Config): boolean {
  const name = dotted(path)
  if (!RELOADABLE.some((r) => name === r || name.startsWith(`${r}.`))) return false
  return !CHANGED_NOT_SET.has(name) || (valueAt(running, path) !== undefined && valueAt(next, path) !== undefined)
}

/**
 * The configuration a reload installs: `next`, except at the paths of the changes that wait for a restart,
 * which keep the running value. Compared against by the next reload, and read by the routes per request.
 */
function inForce (running: Config, next: Config, pending: readonly Path[]): Config {
  const config = pending.reduce((patched, path) => withValueAt(patched, path, valueAt(running, path)), next as unknown as Record<string, unknown>)
  return config as unknown as Config
}

/**
 * Problems of callers' own limits under the running rateLimit: without a running rateLimit.max, each own
 * limit needs a max of its own, as at start. The new configuration may set rateLimit.max, but that waits.
 */
function callerLimitProblems (app: FastifyInstance, config: Config): string[] {
  if (!app.callerRateLimited) return []
  return callersWithoutMax(config).map((i) => `callers.keys[${i}].rateLimit.max: missing: the running rateLimit.max is not set ` +
    '(a change of rateLimit needs a restart), so this caller\'s limit needs its own max; set one, or restart instead of reloading')
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

  const running = slot.config
  const changed = changedPaths(running, next)
  const pending = changed.filter((path) => !isReloadable(path, running, next))
  const config = inForce(running, next, pending)
  const applied = changed.filter((path) => isReloadable(path, running, next)).map(dotted)
  const needsRestart = pending.map(dotted)
  // Callers' own limits are read per request, but only by routes built with a limit (src/http/route-rate-limit.ts).
  if (!app.callerRateLimited && callerLimitApplies(config)) needsRestart.push('callers.keys[].rateLimit')

  // Before anything changes: a reload that cannot apply everything it should applies nothing.
  const certificates = readCertificates(tlsListeners(app, config))
  const problems = [...callerLimitProblems(app, config), ...(certificates.ok ? [] : certificates.problems)]
  if (problems.length > 0 || !certificates.ok) return refused(problems, needsRestart)

  // Set first so that the new Verifier's logger is created at the new level; restored if refused.
  const previousLevel = app.log.level
  app.log.level = config.server.logLevel
  let verifier: Verifier
  try {
    verifier = slot.create(config)
    verifier.start()
  } catch (err) {
    app.log.level = previousLevel
    return refused([`cannot build a verifier from the new configuration: ${(err as Error).message}`], needsRestart)
  }
  const regressed = await waitForKeys(slot.current, verifier, options.readyTimeoutMs ?? 2 * config.fetch.timeoutMs, () => slot.closed)
  if (regressed.length > 0) {
    verifier.close()
    app.log.level = previousLevel
    return refused(regressed.map((s) => `issuers: ${s.id} (${s.issuer}) has usable keys now but got none under the new configuration` +
      (s.lastError === null ? '' : `: ${s.lastError}`)), needsRestart)
  }

  const retired = slot.swap(verifier, config)
  const notReady = verifier.status().filter((s) => !s.ready).map((s) => s.id)
  log.info({ issuers: verifier.issuerIds, changed: applied, notReady, source: next.source }, 'configuration reloaded')
  renewCertificates(log, certificates.read)
  if (needsRestart.length > 0) {
    log.warn({ settings: needsRestart }, `configuration reloaded, but ${needsRestart.join(', ')} changed and needs a restart to take effect; the running value is kept`)
  }
  return { outcome: 'applied', problems: [], needsRestart, retired }
}

/** Puts the certificates read for the reload in use, and says which listeners serve which certificate now. */
function renewCertificates (log: FastifyBaseLogger, read: readonly ListenerCertificates[]): void {
  if (read.length === 0) return
  const failed = useCertificates(read)
  for (const { listener, err } of failed) {
    log.error({ listener: listener.name, setting: listener.setting, err }, `the ${listener.name} listener could not take the certificate read from ${listener.setting}; it keeps serving the previous one`)
  }
  const renewed = read.filter((r) => !failed.some((f) => f.listener === r.listener))
  if (renewed.length === 0) return
  log.info({
    listeners: renewed.map(({ listener, certificate }) => ({ listener: listener.name, setting: listener.setting, ...certificate }))
  }, `TLS certificates read again from their files: ${renewed.map((r) => r.listener.name).join(' and ')} listener${renewed.length === 1 ? '' : 's'}; new connections get them`)
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
