import { ConfigError, parseConfig } from '../../src/config/load.js'
import type { Config, JwksCacheConfig } from '../../src/config/types.js'

/**
 * A validated Config for tests: quiet logs, the given issuers, anything else overridable. Load shedding is
 * off unless a test configures `loadShedding`: it reacts to the event loop of the whole test process and to
 * the machine's load (a busy CI machine would make any test answer 503 overloaded).
 */
export function configFor (issuers: Array<Record<string, unknown>>, extra: Record<string, unknown> = {}): Config {
  const server = { logLevel: 'silent', ...(extra.server as Record<string, unknown> | undefined) }
  const loadShedding = extra.loadShedding ?? { enabled: false }
  return parseConfig({ ...extra, server, loadShedding, issuers }, 'test', {})
}

/** The problems a configuration document is refused for ([] when it is valid); other errors are thrown. */
export function configProblems (doc: Record<string, unknown>, env: NodeJS.ProcessEnv = {}, source = 'c.yaml'): string[] {
  try {
    parseConfig(doc, source, env)
    return []
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
}

/**
 * A JWKS cache's settings for tests that drive one directly with a fake clock: backoffs long enough that no retry
 * timer fires while a test moves the clock.
 */
export const JWKS_CACHE_TEST_CONFIG: JwksCacheConfig = {
  rediscoverySeconds: 86400,
  maxEntries: 10,
  defaultFreshnessSeconds: 600,
  minFreshnessSeconds: 60,
  maxFreshnessSeconds: 3600,
  staleIfErrorSeconds: 3600,
  unknownKidCooldownSeconds: 5,
  unknownKidRefreshesPerMinute: 4,
  backoffInitialSeconds: 30,
  backoffMaxSeconds: 300
}
