import { parseConfig } from '../../src/config/load.js'
import type { Config } from '../../src/config/types.js'

/** A validated Config for tests: quiet logs, the given issuers, anything else overridable. */
export function configFor (issuers: Array<Record<string, unknown>>, extra: Record<string, unknown> = {}): Config {
  const server = { logLevel: 'silent', ...(extra.server as Record<string, unknown> | undefined) }
  return parseConfig({ ...extra, server, issuers }, 'test', {})
}
