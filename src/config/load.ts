/**
 * Loads, validates and resolves the configuration (see src/config/schema.ts for the file format and
 * src/config/types.ts for the result).
 *
 * Validation is complete before anything runs and reports EVERY problem at once, each as
 * `<source>: <path>: <what was expected>`, e.g. `config.yaml: issuers[2].audiences: expected a non-empty
 * list of client ids`. The source is the file path, `environment` or `command line`.
 *
 * The parts: src/config/config-file.ts reads and parses the file, src/config/environment-mode.ts makes the
 * document of environment-only mode, src/config/schema-check.ts walks the schema and holds what every check
 * reports into, and the semantic checks are in src/config/server-checks.ts, url-check.ts, issuers.ts and the
 * modules of the other sections. Here are the entry points and resolve(), which runs them in order.
 */
import { defined, envValue, isRecord } from './document.js'
import { configPathFromArgv, readConfigFile, readConfigText } from './config-file.js'
import { ENV_ISSUER_VARS, ENVIRONMENT, environmentDocument } from './environment-mode.js'
import { check, describe, distance, intField, newCtx, report, type Ctx, type Schema } from './schema-check.js'
import { checkJwksCache, checkServer, jwksEntriesNeeded, serverFromEnv } from './server-checks.js'
import { checkUrl } from './url-check.js'
import { checkIssuer, resolveIssuer } from './issuers.js'
import { CALLER_KEYS_ENV, checkOperations, resolveOperations } from './operations.js'
import { checkForwardAuth, resolveForwardAuth } from './forward-auth.js'
import { checkRevocation, resolveRevocation } from './revocation.js'
import { inertSettings } from './inert-settings.js'
import { checkDecryptionCandidates, checkIssuerNames, checkProviderOptions, expandPresets, resolveProviderOptions, type ProviderExtras } from './provider-options.js'
import {
  ConfigFileSchema,
  FETCH_DEFAULTS,
  TOKEN_CACHE_DEFAULTS,
  JWKS_DEFAULTS,
  JwksCacheSchema,
  RATE_LIMIT_DEFAULTS,
  SERVER_DEFAULTS,
  type ConfigFile
} from './schema.js'
import type { Config, ServerConfig } from './types.js'

export { MAX_CONFIG_FILE_BYTES } from './config-file.js'

/** A configuration that cannot be used. `problems` has one self-contained line per problem. */
export class ConfigError extends Error {
  readonly problems: string[]

  constructor (problems: string[]) {
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`
    super(`invalid configuration (${count}):\n${problems.map((p) => `  ${p}`).join('\n')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

export interface LoadConfigOptions {
  /** Command line arguments (default: process.argv.slice(2)); `--config PATH` or `--config=PATH`. */
  argv?: string[]
  /** Environment (default: process.env). */
  env?: NodeJS.ProcessEnv
  /** Reads a file as UTF-8 text (default: fs.readFileSync). */
  readFile?: (path: string) => string
  /**
   * The configuration file's text, used instead of reading the file (a cluster worker resolves the text its
   * primary started from). Files the configuration names (keys, certificates) are still read.
   */
  configText?: string
  /** Called with the configuration file's text as read (the cluster primary keeps it for its workers). */
  onConfigText?: (text: string) => void
}

/**
 * Resolves the configuration from `--config PATH` (or OIDC_VERIFIER_CONFIG), or else from the
 * environment-only single-issuer variables, then applies HOST, PORT and LOG_LEVEL. Throws ConfigError
 * listing every problem found.
 */
export function loadConfig (opts: LoadConfigOptions = {}): Config {
  const argv = opts.argv ?? process.argv.slice(2)
  const env = opts.env ?? process.env
  const readFile = opts.readFile ?? readConfigText
  const problems: string[] = []

  const fromArgv = configPathFromArgv(argv, problems)
  const configPath = fromArgv ?? envValue(env, 'OIDC_VERIFIER_CONFIG')

  if (configPath !== undefined) {
    const single = [...Object.values(ENV_ISSUER_VARS), CALLER_KEYS_ENV].filter((name) => envValue(env, name) !== undefined)
    if (single.length > 0) {
      const via = fromArgv !== undefined ? '--config' : 'OIDC_VERIFIER_CONFIG'
      problems.push(`${ENVIRONMENT}: ${single.join(', ')}: ambiguous: environment-only issuer settings cannot be combined with a config file (${configPath}, from ${via}); configure the issuers in the file, or unset ${single.length === 1 ? 'it' : 'them'}`)
    }
    const given = opts.configText
    const doc = readConfigFile(configPath, (path) => {
      const text = given ?? readFile(path)
      opts.onConfigText?.(text)
      return text
    }, problems)
    if (doc === undefined) {
      serverFromEnv(env, problems) // still report the environment's problems
      throw new ConfigError(problems)
    }
    const config = resolve(doc, newCtx(configPath, env, false, readFile), problems)
    if (config === undefined || problems.length > 0) throw new ConfigError(problems)
    return config
  }

  if (envValue(env, 'OIDC_ISSUER') === undefined) {
    if (problems.length === 0) {
      problems.push('no issuers configured: pass --config PATH (or set OIDC_VERIFIER_CONFIG) to load a YAML or JSON ' +
        'configuration file, or set OIDC_ISSUER and OIDC_AUDIENCE (optionally OIDC_JWKS_URI, OIDC_ALGORITHMS, ' +
        'OIDC_ISSUER_ID) to verify tokens of a single issuer')
    }
    misspeltVariables(env, problems)
    serverFromEnv(env, problems)
    throw new ConfigError(problems)
  }

  misspeltVariables(env, problems)
  const config = resolve(environmentDocument(env), newCtx(ENVIRONMENT, env, true, readFile), problems)
  if (config === undefined || problems.length > 0) throw new ConfigError(problems)
  return config
}

/** The variables environment-only mode reads by name. */
const ENV_MODE_VARS: readonly string[] = [...Object.values(ENV_ISSUER_VARS), CALLER_KEYS_ENV, 'OIDC_VERIFIER_CONFIG']

/**
 * Environment-only mode: a variable a letter or two away from one it reads is a misspelling, which would
 * otherwise be ignored and the service run without it (CALLER_KEY_HASH: no caller authentication at all;
 * OIDC_ALGORITHM: every algorithm). Only OIDC_* and CALLER_* names: the environment holds other software's too.
 * Letter case and the separator do not count ("caller-key-hashes", "OIDC.ISSUER": Docker and Kubernetes take
 * such names), as variable names are exact: the spelling we read is the only one that does anything.
 */
function misspeltVariables (env: NodeJS.ProcessEnv, problems: string[]): void {
  for (const name of Object.keys(env)) {
    if (ENV_MODE_VARS.includes(name) || envValue(env, name) === undefined) continue
    const spelled = name.toUpperCase().replace(/[-.]/g, '_')
    if (!/^(OIDC|CALLER)_/.test(spelled)) continue
    const meant = ENV_MODE_VARS.find((known) => distance(spelled, known) <= 2)
    if (meant !== undefined) {
      problems.push(`${ENVIRONMENT}: ${name}: not a variable oidc-verifier reads (did you mean ${meant}?); rename it, or unset it if it is not meant for oidc-verifier`)
    }
  }
}

/**
 * Validates a parsed configuration document (the file's content) and resolves it with defaults and the
 * environment (HOST, PORT, LOG_LEVEL overrides; clientSecretEnv lookups). `source` names the document in
 * messages and becomes `Config.source`. Throws ConfigError listing every problem found.
 */
export function parseConfig (doc: unknown, source: string, env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = []
  const config = resolve(doc, newCtx(source, env, false), problems)
  if (config === undefined || problems.length > 0) throw new ConfigError(problems)
  return config
}

/** Validates everything, reporting into ctx.problems; the resolved Config only when there was no problem. */
function resolve (input: unknown, ctx: Ctx, problems: string[]): Config | undefined {
  // Presets fill in options first: the result is validated like an issuer written out by hand.
  const doc = expandPresets(input)
  check(ConfigFileSchema as unknown as Schema, doc, [], ctx)

  const secrets = new Map<number, string>()
  const extras = new Map<number, ProviderExtras>()
  if (isRecord(doc)) {
    checkServer(doc.server, ctx)
    checkJwksCache(doc.jwks, ctx)
    checkOperations(doc, ctx.env, (path, text) => { report(ctx, path, text) })
    checkForwardAuth(doc, (path, text) => { report(ctx, path, text) })
    checkRevocation(doc, ctx.env, (path, text) => { report(ctx, path, text) })
    if (Array.isArray(doc.issuers)) {
      const ids = new Map<string, number>()
      doc.issuers.forEach((issuer: unknown, i) => {
        if (!isRecord(issuer)) return
        if (typeof issuer.id === 'string') {
          const first = ids.get(issuer.id)
          if (first !== undefined) report(ctx, ['issuers', i, 'id'], `duplicate id ${describe(issuer.id)} (also issuers[${first}].id); expected unique ids`)
          else ids.set(issuer.id, i)
        }
        const secret = checkIssuer(issuer, i, ctx)
        if (secret !== undefined) secrets.set(i, secret)
        extras.set(i, checkProviderOptions(issuer, {
          report: (path, text) => { report(ctx, ['issuers', i, ...path], text) },
          checkUrl: (value, path) => checkUrl(value, ['issuers', i, ...path], ctx),
          readFile: ctx.readFile
        }))
      })
      checkIssuerNames(doc.issuers, (path, text) => { report(ctx, path, text) })
      checkDecryptionCandidates(doc.issuers, extras, (path, text) => { report(ctx, path, text) })
      // A jwks.maxEntries set by hand must hold every key set at once (the default grows with the issuers).
      const { needed, urls, discovered } = jwksEntriesNeeded(doc.issuers)
      const maxEntries = isRecord(doc.jwks) && doc.jwks.maxEntries !== undefined ? intField(doc.jwks, JwksCacheSchema as unknown as Schema, 'maxEntries', JWKS_DEFAULTS.maxEntries) : undefined
      if (maxEntries !== undefined && maxEntries < needed) {
        report(ctx, ['jwks', 'maxEntries'], `expected at least ${needed}: one per JWKS URL (${urls}), and one more per provider found by discovery ` +
          `(${discovered}), for the new key set while a moved jwks_uri is followed; got ${maxEntries} (leave it out for a bound that follows the issuers)`)
      }
    }
  }
  // Stable sort: within a section or an issuer, shape problems come before the semantic ones.
  problems.push(...ctx.reports.sort((a, b) => a.rank - b.rank).map((r) => r.text))
  const serverEnv = serverFromEnv(ctx.env, problems)
  // PORT overrides server.port after the file's checks: the two listeners must still differ.
  const opsPort = isRecord(doc) && isRecord(doc.server) ? doc.server.opsPort : undefined
  if (serverEnv.port !== undefined && typeof opsPort === 'number' && opsPort !== 0 && opsPort === serverEnv.port) {
    problems.push(`${ENVIRONMENT}: PORT: expected a port other than server.opsPort (${opsPort}) of ${ctx.source}`)
  }
  if (problems.length > 0) return undefined

  // Everything conforms: build the resolved configuration.
  const file = doc as ConfigFile
  const server: ServerConfig = {
    ...SERVER_DEFAULTS,
    ...defined(file.server),
    ...serverEnv,
    trustProxy: Array.isArray(file.server?.trustProxy) ? [...file.server.trustProxy] : (file.server?.trustProxy ?? SERVER_DEFAULTS.trustProxy)
  } as ServerConfig
  return {
    server,
    rateLimit: { ...RATE_LIMIT_DEFAULTS, ...defined(file.rateLimit) },
    jwks: { ...JWKS_DEFAULTS, maxEntries: Math.max(JWKS_DEFAULTS.maxEntries, jwksEntriesNeeded(file.issuers).needed), ...defined(file.jwks) },
    fetch: { ...FETCH_DEFAULTS, ...defined(file.fetch) },
    tokenCache: { ...TOKEN_CACHE_DEFAULTS, ...defined(file.tokenCache) },
    ...resolveOperations(file, ctx.env),
    ...resolveForwardAuth(file),
    revocation: resolveRevocation(file, ctx.env),
    issuers: file.issuers.map((issuer, i) => ({
      ...resolveIssuer(issuer, secrets.get(i)),
      ...resolveProviderOptions(issuer, extras.get(i), server.maxTokenBytes)
    })),
    source: ctx.source,
    warnings: inertSettings(input, doc)
  }
}
