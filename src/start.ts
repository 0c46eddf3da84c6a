/**
 * What `node dist/server.js` runs once its stop signals are in place (src/server.ts): the configuration is
 * validated completely before anything listens; every problem is printed and the exit code is 2.
 * `WORKERS=N` (or `auto`: one per core) runs N workers behind the one port (src/cluster-primary.ts).
 */
import cluster from 'node:cluster'
import { availableParallelism } from 'node:os'
import { parseWorkers, runPrimary } from './cluster-primary.js'
import { withinHeapBudget } from './config/heap-budget.js'
import { clusterLog, LOG_LEVEL } from './cluster-log.js'
import { askStartConfig, serveStartConfig, workerConfig } from './cluster-start-config.js'
import { ConfigError, loadConfig, type LoadConfigOptions } from './config/load.js'
import type { Config } from './config/types.js'
import { runService } from './run.js'
import type { ProcessStop } from './stop-signals.js'

/**
 * A cluster worker's configuration: what the primary started from, with the file as it is now applied as a reload
 * would (src/cluster-start-config.ts). From the file alone when the primary started from the environment, did not
 * answer, or its text no longer resolves (a file it names is gone).
 */
async function workerStartConfig (loadWith: (opts: Pick<LoadConfigOptions, 'configText'>) => Config, load: () => Config): Promise<Config> {
  const text = await askStartConfig()
  if (typeof text !== 'string') return load()
  let atStart: Config
  try {
    atStart = loadWith({ configText: text })
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    clusterLog(`worker ${process.pid}: the configuration the service started with no longer resolves (${err.problems[0] ?? '?'}); starting from the file as it is`, LOG_LEVEL.warn)
    return load()
  }
  return workerConfig(atStart, load, clusterLog)
}

export async function start (signals: ProcessStop): Promise<void> {
  try {
    // Also on reload: a cache that cannot fit in V8's heap is a configuration problem (src/config/heap-budget.ts).
    const loadWith = (opts: Pick<LoadConfigOptions, 'configText' | 'onConfigText'>): Config =>
      withinHeapBudget(loadConfig({ argv: process.argv.slice(2), env: process.env, ...opts }))
    const load = (): Config => loadWith({})
    const workers = parseWorkers(process.env.WORKERS, availableParallelism())
    if (workers instanceof Error) {
      process.stderr.write(`oidc-verifier: ${workers.message}\n`)
      process.exit(2)
    }
    if (workers > 1 && cluster.isPrimary) {
      // Validate before forking, so an invalid configuration fails once, with every problem, exit code 2.
      let startText: string | undefined
      const config = loadWith({ onConfigText: (text) => { startText = text } })
      // A worker started later (a replacement) starts from this text, not from the file as it is then.
      serveStartConfig(startText)
      const relay = config.revocation.enabled && config.revocation.store === 'memory'
      runPrimary(workers, config.server.shutdownGraceSeconds, relay ? { relayRevocations: config.revocation.maxEntries } : {}, signals)
    } else {
      await runService(cluster.isWorker ? await workerStartConfig(loadWith, load) : load(), signals, undefined, load)
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
