/**
 * Configuration reload (SIGHUP) without dropping requests in flight.
 *
 * The new configuration is read from the same source as at start and validated completely; an invalid one
 * is refused with a log line and the running one keeps serving. A valid one builds a new Verifier, which is
 * started and given time to load its keys before it is swapped in: a request never meets a Verifier that is
 * still discovering an issuer that was serving a moment ago. If such an issuer gets no usable keys under the
 * new configuration within the bound, the reload is refused too (the old Verifier still has its keys, stale
 * or not). The replaced Verifier is closed once the requests that began using it before the swap are done.
 *
 * What a reload applies, what waits for a restart and the configuration in force afterwards are decided first
 * (src/reload-plan.ts). A reload that changes none of the settings the Verifier is built from keeps the
 * running Verifier (its keys and cache), so that renewing certificates or rotating caller keys never waits
 * for, nor is refused by, an identity provider. The TLS certificates are read again from their files on
 * every reload (src/http/tls-reload.ts); a listener whose TLS settings wait for a restart keeps its
 * certificate when its running files cannot be read, instead of refusing the reload.
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { heapLimitBytes } from './config/heap-budget.js'
import { logConfigWarnings, newWarnings } from './config/inert-settings.js'
import { ConfigError } from './config/load.js'
import type { Config } from './config/types.js'
import { callersWithoutMax } from './http/route-rate-limit.js'
import {
  keptUntilRestartMessage, noteWaitingForRestart, putInUse, readCertificates, tlsListeners, type ListenerCertificates, type TlsFile, type TlsListener
} from './http/tls-reload.js'
import type { IssuerStatus, Verifier } from './core/verifier.js'
import { callerAuthenticationProblems, inForceProblems, keptUntilRestart, planReload, renamedIssuers, type ReloadPlan } from './reload-plan.js'

export { changedSettings, RELOADABLE } from './reload-plan.js'

/** How often the new Verifier's key status is looked at while waiting for it. */
const READY_POLL_MS = 50

export interface ReloadResult {
  outcome: 'applied' | 'refused'
  /** Why the reload was refused; empty when applied. */
  problems: string[]
  /** Changed settings that were not applied (they need a restart), as paths such as "server.port". */
  needsRestart: string[]
  /** Resolves when the replaced Verifier has been closed (immediately when refused, or when the Verifier was kept). */
  retired: Promise<void>
}

export interface ReloadOptions {
  /**
   * How long the new Verifier may take to load the keys of issuers that had keys before. Default: twice
   * the new configuration's fetch timeout (discovery, then the JWKS).
   */
  readyTimeoutMs?: number
  /** V8's heap limit the configuration in force must fit in (src/config/heap-budget.ts); default: this process's. */
  heapLimitBytes?: number
  /**
   * Called after each reload on SIGHUP that was applied (a cluster worker tells the primary what it runs), with
   * when the reload began (Date.now()).
   */
  onApplied?: (startedAt: number) => void
  /** Called after each reload on SIGHUP that was refused (a cluster worker tells the primary the reload is over). */
  onRefused?: (startedAt: number) => void
}

/**
 * Problems of callers' own limits under the running rateLimit: without a running rateLimit.max, each own
 * limit needs a max of its own, as at start. The new configuration may set rateLimit.max, but that waits.
 */
function callerLimitProblems (config: Config): string[] {
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
    // An issuer that has keys now, whose provider asked not to be asked again until after the deadline
    // (Retry-After, taken over from the running Verifier), cannot get keys in time: no reason to wait for it.
    const settled = statuses.every((s) => s.ready || (!readyBefore.has(s.issuer) && s.lastError !== null) ||
      (readyBefore.has(s.issuer) && next.keysAskedToWaitUntil(s.id) >= deadline))
    if (settled || Date.now() >= deadline || cancelled()) return regressed
    await sleep(READY_POLL_MS)
  }
}

/** The files of a listener that only the running configuration names, kept because their change waits for a restart. */
function waitingFiles (plan: ReloadPlan, next: Config, listener: TlsListener): TlsFile[] {
  return (Object.keys(listener.tls) as TlsFile[]).filter((file) => keptUntilRestart(plan, next, `${listener.setting}.${file}`))
}

/**
 * The certificates of every TLS listener, read and checked before anything changes. A listener whose files
 * cannot be used refuses the reload, unless every file that failed is one only the running configuration
 * names, kept in force because its change waits for a restart (TLS or client certificates turned off): the
 * operator may well have removed it with the change. That listener keeps what it serves until the restart
 * (`held`, logged) rather than block every reload. A file the new configuration names refuses as ever.
 */
function listenerCertificates (app: FastifyInstance, plan: ReloadPlan, next: Config): { read: ListenerCertificates[], problems: string[], held: Array<{ listener: TlsListener, problems: string[] }> } {
  const read: ListenerCertificates[] = []
  const problems: string[] = []
  const held: Array<{ listener: TlsListener, problems: string[] }> = []
  for (const listener of tlsListeners(app, plan.config)) {
    const result = readCertificates([listener])
    if (result.ok) {
      read.push(...result.read)
      continue
    }
    if (!result.problems.every((p) => keptUntilRestart(plan, next, p.setting))) {
      problems.push(...result.problems.map(String))
      continue
    }
    // The files read stop at the first that fails: the others, which the new configuration names too, must
    // still be usable (checked without the kept ones), or the reload is refused for them.
    const waiting = waitingFiles(plan, next, listener)
    if (!waiting.includes('certFile') && !waiting.includes('keyFile')) {
      const rest = readCertificates([{ ...listener, tls: { certFile: listener.tls.certFile, keyFile: listener.tls.keyFile } }])
      if (!rest.ok) {
        problems.push(...rest.problems.map(String))
        continue
      }
    }
    held.push({ listener, problems: result.problems.map(String) })
  }
  return { read, problems, held }
}

/** Per app, the last reload called: each waits for the one before, whose result it is planned against. */
const lastReload = new WeakMap<FastifyInstance, Promise<ReloadResult>>()

/**
 * Reloads the configuration of a running app (built by buildApp). `load` reads it from the same source as at
 * start. Never throws: every outcome is logged and returned. Reloads of one app never overlap: one called
 * while another runs starts when it is done, so that the last one called is the configuration in force.
 */
export async function reloadConfiguration (app: FastifyInstance, load: () => Config, options: ReloadOptions = {}): Promise<ReloadResult> {
  const before = lastReload.get(app)
  const now = async (): Promise<ReloadResult> => await reloadNow(app, load, options)
  const reload = before === undefined ? now() : before.then(now, now)
  lastReload.set(app, reload)
  try {
    return await reload
  } finally {
    if (lastReload.get(app) === reload) lastReload.delete(app)
  }
}

async function reloadNow (app: FastifyInstance, load: () => Config, options: ReloadOptions): Promise<ReloadResult> {
  const slot = app.verifierSlot
  const log = app.log.child({ component: 'reload' })
  const refused = (problems: string[], needsRestart: string[] = []): ReloadResult => {
    log.error({ problems, ...(needsRestart.length > 0 ? { needsRestart } : {}) },
      `configuration reload refused (${problems.length === 1 ? '1 problem' : `${problems.length} problems`}); the previous configuration keeps serving`)
    return { outcome: 'refused', problems, needsRestart, retired: Promise.resolve() }
  }

  let next: Config
  try {
    next = load()
  } catch (err) {
    return refused(err instanceof ConfigError ? err.problems : [`cannot read the configuration: ${(err as Error).message}`])
  }

  // The app closed (a stop) before or while this reload ran: nothing is applied, and it is no error.
  const abandoned = (): ReloadResult => {
    log.info('configuration reload abandoned: the service is stopping')
    return { outcome: 'refused', problems: ['the service is stopping'], needsRestart: [], retired: Promise.resolve() }
  }
  if (slot.closed) return abandoned()
  const running = slot.config
  const plan = planReload(running, next)
  const { config, applied } = plan
  const needsRestart = plan.pending

  // Before anything changes: a reload that cannot apply everything it should applies nothing.
  const certificates = listenerCertificates(app, plan, next)
  const problems = [...callerAuthenticationProblems(running, next), ...inForceProblems(plan, options.heapLimitBytes ?? heapLimitBytes()), ...callerLimitProblems(config), ...certificates.problems]
  if (problems.length > 0) return refused(problems, needsRestart)

  // undefined: nothing the Verifier is built from changed, and the running one stays, keys and cache with it.
  let verifier: Verifier | undefined
  if (plan.rebuildsVerifier) {
    try {
      verifier = slot.create(config)
      // The keys and jwks_uri the running one has are used as they are, and a provider that asked to wait (Retry-After)
      // is not asked again: a reload asks no provider for what it has.
      verifier.takeOver(slot.current)
      verifier.start()
    } catch (err) {
      return refused([`cannot build a verifier from the new configuration: ${(err as Error).message}`], needsRestart)
    }
    const regressed = await waitForKeys(slot.current, verifier, options.readyTimeoutMs ?? 2 * config.fetch.timeoutMs, () => slot.closed)
    if (slot.closed) {
      // Closed while the new Verifier waited for keys: it is not swapped in (nothing would close it), and the wait's
      // end says nothing about the keys.
      verifier.close()
      return abandoned()
    }
    if (regressed.length > 0) {
      verifier.close()
      return refused(regressed.map((s) => `issuers: ${s.id} (${s.issuer}) has usable keys now but got none under the new configuration` +
        (s.lastError === null ? '' : `: ${s.lastError}`)), needsRestart)
    }
  }

  // Every logger of the app (the Verifier's, the requests') is a pino child without a level of its own: this
  // sets theirs too, kept Verifier or new.
  app.log.level = config.server.logLevel
  // Once the replaced Verifier is closed, nothing counts for the issuers and callers dropped. Those of the
  // configuration in force then: a later reload may have configured them again meanwhile.
  const retired = (verifier === undefined ? slot.reconfigure(config) : slot.swap(verifier, config))
    .then(async () => {
      const inForce = slot.config
      await app.metrics?.forgetRemoved({ issuers: new Set(inForce.issuers.map((i) => i.id)), callers: new Set(inForce.callers.keys.map((c) => c.id)) })
    })
    .catch((err: unknown) => { log.error({ err }, 'dropping the metrics of the issuers and callers the reload removed failed') })
  // The configuration is in force from here on: whatever fails below (a log destination that throws) is logged
  // and the reload is still applied, so that a cluster primary records the text its replacement workers start
  // with. Each step runs whatever an earlier one did.
  runEach(log, [
    () => {
      const current = slot.current
      const notReady = current.status().filter((s) => !s.ready).map((s) => s.id)
      // keySetsTakenOver: the JWKS a rebuilt Verifier uses as the running one had them, without asking their providers.
      const rebuilt = verifier === undefined ? { verifier: 'kept' } : { verifier: 'rebuilt', keySetsTakenOver: verifier.keySetsTakenOver }
      log.info({ issuers: current.issuerIds, changed: applied, notReady, ...rebuilt, source: next.source }, 'configuration reloaded')
    },
    () => { renewCertificates(log, certificates.read) },
    () => {
      for (const listener of tlsListeners(app, config)) {
        noteWaitingForRestart(listener.server, waitingFiles(plan, next, listener).map((file) => `${listener.setting}.${file}`))
      }
    },
    () => {
      for (const { listener, problems } of certificates.held) log.warn({ listener: listener.name, setting: listener.setting, problems }, keptUntilRestartMessage(listener))
    },
    () => { warnRenamedIssuers(app, log, running, config) },
    () => {
      if (needsRestart.length === 0) return
      log.warn({ settings: needsRestart }, `configuration reloaded, but ${needsRestart.join(', ')} changed and needs a restart to take effect; the running value is kept`)
    },
    // Settings the new file writes but that do nothing: only those the running configuration did not have (its own
    // were logged when it was installed, at start or by an earlier reload).
    () => { logConfigWarnings(log, newWarnings(running.warnings, next.warnings)) }
  ])
  return { outcome: 'applied', problems: [], needsRestart, retired }
}

/** Runs every step; a step that throws is logged (if the log itself still works) and the next one runs. */
function runEach (log: FastifyBaseLogger, steps: ReadonlyArray<() => void>): void {
  for (const step of steps) {
    try {
      step()
    } catch (err) {
      try {
        log.error({ err }, 'configuration reloaded and in force, but a step after it failed (the reload still counts as applied)')
      } catch {
        // The log is what failed: nothing more can be said.
      }
    }
  }
}

/**
 * Revocations are kept by issuer id: an id the reload renames (same issuer URL, or one kept as an alias) leaves those recorded under the
 * old one behind, and the sessions and users they revoked are accepted again. They are not carried over: with
 * the redis store, replicas that have not reloaded yet keep recording logouts under the old id (a copy made now
 * would miss them), and copies would take room in revocation.maxEntries that each replica would count again.
 * A warning per renamed issuer says so, with how many revocations this process holds under the old id.
 */
function warnRenamedIssuers (app: FastifyInstance, log: FastifyBaseLogger, running: Config, inForce: Config): void {
  const store = app.revocations
  if (store === undefined) return
  const held = store.list.countByIssuer()
  for (const { issuer, from, to } of renamedIssuers(running, inForce)) {
    const revocationsHeld = held.get(from) ?? 0
    log.warn({ issuer, from, to, revocationsHeld },
      `issuer id renamed from "${from}" to "${to}" (same issuer ${issuer}): revocations are kept by issuer id, so the ` +
      `${revocationsHeld} recorded under "${from}" no longer apply and the sessions and users they revoked are accepted again ` +
      `until their tokens expire; with a shared store, processes still running the old configuration record logouts under "${from}" ` +
      `until they reload. Restore the id "${from}" to apply them again, or, if none may come back, revoke every token of "${to}" ` +
      `issued until now (POST /revocations {"issuer": "${to}", "all": true})`)
  }
}

/** Puts the certificates read for the reload in use, and says which listeners serve which certificate now. */
function renewCertificates (log: FastifyBaseLogger, read: readonly ListenerCertificates[]): void {
  const renewed = putInUse(log, read)
  if (renewed.length === 0) return
  log.info({
    listeners: renewed.map(({ listener, certificate }) => ({ listener: listener.name, setting: listener.setting, ...certificate }))
  }, `TLS certificates read again from their files: ${renewed.map((r) => r.listener.name).join(' and ')} listener${renewed.length === 1 ? '' : 's'}; new connections get them`)
}

/**
 * Reloads on SIGHUP until the app closes. Reloads never overlap: a SIGHUP during a reload runs one more
 * reload after it, so the last signal always wins. Call it before the app is ready (it adds an onClose hook).
 * A reload that throws, or a callback that does (a cluster worker's message to a primary that is gone), is
 * logged and ends that reload: never an unhandled rejection (which would end the process), and never a reload
 * left running forever, which would leave every later SIGHUP unanswered.
 */
export function reloadOnSighup (app: FastifyInstance, load: () => Config, options: ReloadOptions = {}): void {
  let running: Promise<void> | undefined
  let again = false
  // Once the app begins to close (a SIGTERM's drain, or app.close()), no reload starts: one would read the file, fetch
  // keys and change the configuration under requests being drained, or run after the close.
  let closing = false
  const run = (): void => {
    if (closing) return
    if (running !== undefined) {
      again = true
      return
    }
    app.log.info({ signal: 'SIGHUP' }, 'reloading the configuration')
    const startedAt = Date.now()
    running = reloadConfiguration(app, load, options).then((result) => {
      // A reload the close overtook (its new Verifier closed unused) is nobody's news.
      if (closing && result.outcome === 'refused') return
      if (result.outcome === 'applied') options.onApplied?.(startedAt)
      else options.onRefused?.(startedAt)
    }, (err: unknown) => {
      app.log.error({ err, signal: 'SIGHUP' }, 'configuration reload failed with an unexpected error; send SIGHUP again, or restart if it recurs')
      options.onRefused?.(startedAt)
    }).catch((err: unknown) => {
      app.log.error({ err, signal: 'SIGHUP' }, 'unexpected error after a configuration reload')
    }).finally(() => {
      running = undefined
      if (again) {
        again = false
        run()
      }
    })
  }
  process.on('SIGHUP', run)
  app.addHook('preClose', (done) => {
    closing = true
    process.off('SIGHUP', run)
    done()
  })

}
