/**
 * What `node dist/server.js` runs once its stop signals are in place (src/server.ts): the configuration is
 * validated completely before anything listens; every problem is printed and the exit code is 2.
 * `WORKERS=N` (or `auto`: one per core) runs N workers behind the one port (src/cluster-primary.ts).
 */
import cluster from 'node:cluster'
import { availableParallelism } from 'node:os'
import { parseWorkers, runPrimary } from './cluster-primary.js'
import { withinHeapBudget } from './config/heap-budget.js'
import { ConfigError, loadConfig } from './config/load.js'
import type { Config } from './config/types.js'
import { runService } from './run.js'
import type { ProcessStop } from './stop-signals.js'

export async function start (signals: ProcessStop): Promise<void> {
  try {
    // Also on reload: a cache that cannot fit in V8's heap is a configuration problem (src/config/heap-budget.ts).
    const load = (): Config => withinHeapBudget(loadConfig({ argv: process.argv.slice(2), env: process.env }))
    const workers = parseWorkers(process.env.WORKERS, availableParallelism())
    if (workers instanceof Error) {
      process.stderr.write(`oidc-verifier: ${workers.message}\n`)
      process.exit(2)
    }
    if (workers > 1 && cluster.isPrimary) {
      // Validate before forking, so an invalid configuration fails once, with every problem, exit code 2.
      const config = load()
      const relay = config.revocation.enabled && config.revocation.store === 'memory'
      runPrimary(workers, config.server.shutdownGraceSeconds, relay ? { relayRevocations: config.revocation.maxEntries } : {}, signals)
    } else {
      await runService(load(), signals, undefined, load)
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`oidc-verifier: invalid configuration, not starting:\n${err.problems.map((p) => `  - ${p}`).join('\n')}\n`)
      process.exit(2)
    }
    process.stderr.write(`oidc-verifier: failed to start: ${(err as Error).message}\n`)
    process.exit(1)
  }
}
