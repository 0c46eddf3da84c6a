/**
 * What a configuration reload (src/reload.ts) would do with a new configuration, decided before anything
 * changes: which settings changed, which of them a reload applies (RELOADABLE) and which wait for a restart,
 * and the configuration in force afterwards: the new values of the applied settings, the running values of
 * the others. Routes read the configuration in force per request, and the next reload compares against it,
 * so a change that waits for a restart is reported by every reload until then, and a change back to the
 * running value is no change.
 *
 * Mixing new and running values can break rules the configuration check enforces between settings (a new
 * server.maxTokenBytes against the running server.bodyLimit, a new token cache beside the running revocation
 * list in V8's heap): inForceProblems() checks the configuration in force against them.
 */
import { heapBudgetProblem } from './config/heap-budget.js'
import type { Config } from './config/types.js'

/**
 * Settings a reload applies: everything the Verifier is built from, the log level, the sections that
 * routes read per request from fastify.verifierSlot.config (callers, forwardAuth), and the certificate files.
 * A new setting is read once at start unless it is listed here AND read through the slot (or applied by the
 * reload).
 */
export const RELOADABLE: readonly string[] = [
  'issuers', 'jwks', 'fetch', 'tokenCache', 'server.maxTokenBytes', 'server.logLevel', 'callers', 'forwardAuth',
  // Read per request by POST /verify/batch (its body limit, batch.maxBodyBytes, is fixed when the route is built).
  'batch.maxTokens',
  // Read per request by /readyz.
  'server.readiness',
  // Read again on every reload, changed or not, and put in use by the running listeners (src/http/tls-reload.ts).
  'server.tls.certFile', 'server.tls.keyFile', 'server.tls.clientCaFile', 'server.opsTls.certFile', 'server.opsTls.keyFile'
]

/**
 * The reloadable settings a Verifier is built from (src/core/verifier.ts; server.signatureChecks too, but it
 * needs a restart). A reload that changes none of them keeps the running Verifier, with its keys and its
 * cache: nothing to wait for, and nothing an unreachable provider can block (certificates, caller keys, the
 * log level: the Verifier's logger is a pino child without a level of its own, so it follows the app's).
 */
export const VERIFIER_INPUTS: readonly string[] = ['issuers', 'jwks', 'fetch', 'tokenCache', 'server.maxTokenBytes']

/**
 * Reloadable settings that a reload can change from one value to another, but not set or remove: with a
 * clientCaFile the listener asks for client certificates (requestCert), which is fixed when it is created.
 */
const CHANGED_NOT_SET = new Set(['server.tls.clientCaFile'])
/** Never compared: where the configuration came from, and its warnings (src/config/inert-settings.ts), are not settings. */
const NOT_SETTINGS = new Set(['source', 'warnings'])

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A setting's place in the configuration, key by key ("server.port" is ['server', 'port']). */
type Path = readonly string[]

const dotted = (path: Path): string => path.join('.')

const under = (name: string, prefixes: readonly string[]): boolean => prefixes.some((p) => name === p || name.startsWith(`${p}.`))

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
  if (!under(name, RELOADABLE)) return false
  return !CHANGED_NOT_SET.has(name) || (valueAt(running, path) !== undefined && valueAt(next, path) !== undefined)
}

export interface ReloadPlan {
  /** The configuration in force after the reload. */
  config: Config
  /** Changed settings the reload applies, as paths such as "issuers" or "server.tls.certFile". */
  applied: string[]
  /** Changed settings that keep their running value until a restart. */
  pending: string[]
  /** Whether the Verifier must be rebuilt (a setting it is built from changed). */
  rebuildsVerifier: boolean
}

export function planReload (running: Config, next: Config): ReloadPlan {
  const changed = changedPaths(running, next)
  const pendingPaths = changed.filter((path) => !isReloadable(path, running, next))
  const config = pendingPaths.reduce((patched, path) => withValueAt(patched, path, valueAt(running, path)), next as unknown as Record<string, unknown>) as unknown as Config
  const applied = changed.filter((path) => isReloadable(path, running, next)).map(dotted)
  return { config, applied, pending: pendingPaths.map(dotted), rebuildsVerifier: applied.some((name) => under(name, VERIFIER_INPUTS)) }
}

/**
 * Whether the value in force at `path` (a file of server.tls, say) is the running one, kept because its change
 * waits for a restart: the new configuration names another value, or none.
 */
export function keptUntilRestart (plan: ReloadPlan, next: Config, path: string): boolean {
  const keys = path.split('.')
  return plan.pending.some((name) => under(path, [name])) && valueAt(plan.config, keys) !== valueAt(next, keys)
}

/**
 * The rules between settings that the configuration check enforces (src/config/load.ts), checked again on the
 * configuration in force, where a new value meets a running one; and the heap budget (src/config/heap-budget.ts),
 * which counts the running revocation list beside a new token cache. Each problem says what to do.
 */
export function inForceProblems (plan: ReloadPlan, heapLimitBytes: number): string[] {
  const { config, pending, applied } = plan
  const problems: string[] = []
  // Only what this reload changes: a rule the running configuration already breaks is not the reload's doing.
  if (applied.includes('server.maxTokenBytes')) {
    const { maxTokenBytes, bodyLimit } = config.server
    const waiting = (setting: string): string => pending.includes(setting) ? ` (the new ${setting} waits for a restart: restart to apply both)` : ''
    if (maxTokenBytes >= bodyLimit) {
      problems.push(`server.maxTokenBytes: expected less than the running server.bodyLimit (${bodyLimit}), got ${maxTokenBytes}${waiting('server.bodyLimit')}`)
    }
    if (config.batch.maxBodyBytes <= maxTokenBytes) {
      problems.push(`server.maxTokenBytes: expected less than the running batch.maxBodyBytes (${config.batch.maxBodyBytes}), got ${maxTokenBytes}${waiting('batch.maxBodyBytes')}`)
    }
  }
  const heap = heapBudgetProblem(config, heapLimitBytes)
  if (heap !== undefined) {
    const revocation = pending.filter((name) => under(name, ['revocation']))
    // The loaded file alone fits (server.ts checks it): what does not is a new cache beside the running list.
    problems.push(revocation.length === 0
      ? heap
      : `${heap}. Counted with the running revocation list (${revocation.join(', ')} changed, and waits for a restart): ` +
        'lower tokenCache.maxBytes to reload now, or restart to apply the new revocation settings')
  }
  return problems
}

/**
 * A reload that would turn caller authentication off: the running configuration has caller keys and the new one
 * none (a `callers` section dropped or commented out by mistake would open every route to any caller at once).
 * Refused, never applied: turning authentication off takes a restart. Checked too when a cluster worker starts
 * from the file as it is now (src/cluster-start-config.ts), against the keys the service started with.
 */
export function callerAuthenticationProblems (running: Config, next: Config): string[] {
  if (running.callers.keys.length === 0 || next.callers.keys.length > 0) return []
  return [`callers.keys: the new configuration has no caller keys, which would turn caller authentication off (every route open to any caller); ` +
    `a reload does not do that: restore the keys (to rotate them, list the new ones beside the old), or restart the service to run without them`]
}

/** An issuer whose configured id a reload changes while tokens of one of its issuer URLs stay accepted. */
export interface RenamedIssuer {
  /** The issuer URL both configurations name (as issuer or one of issuerAliases). */
  issuer: string
  from: string
  to: string
}

/**
 * Issuers the new configuration renames: an id of the running configuration that is gone, and a new id for
 * the same issuer URL, as issuer or alias on either side (a provider that moved, its old URL kept as an alias).
 * Revocations are kept by issuer id (src/revocation/), so those recorded under the old id no longer apply to
 * the issuer's tokens under the new one.
 */
export function renamedIssuers (running: Config, next: Config): RenamedIssuer[] {
  const runningIds = new Set(running.issuers.map((i) => i.id))
  const nextIds = new Set(next.issuers.map((i) => i.id))
  const spellings = (i: Config['issuers'][number]): string[] => [i.issuer, ...(i.issuerAliases ?? [])]
  const added = next.issuers.filter((i) => !runningIds.has(i.id))
  return running.issuers.filter((i) => !nextIds.has(i.id)).flatMap((gone) => {
    const old = spellings(gone)
    return added.flatMap((i) => {
      const shared = spellings(i).find((url) => old.includes(url))
      return shared === undefined ? [] : [{ issuer: shared, from: gone.id, to: i.id }]
    })
  })
}
