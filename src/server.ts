/**
 * The production entry point: `node dist/server.js [--config PATH]` (npm start). The configuration is
 * validated completely before anything listens; every problem is printed and the exit code is 2.
 */
import { ConfigError, loadConfig } from './config/load.js'
import type { Config } from './config/types.js'
import { runService } from './run.js'

try {
  const load = (): Config => loadConfig({ argv: process.argv.slice(2), env: process.env })
  await runService(load(), undefined, load)
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`oidc-verifier: invalid configuration, not starting:\n${err.problems.map((p) => `  - ${p}`).join('\n')}\n`)
    process.exit(2)
  }
  process.stderr.write(`oidc-verifier: failed to start: ${(err as Error).message}\n`)
  process.exit(1)
}
