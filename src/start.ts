/**
 * What `node dist/server.js` runs once its stop signals are in place (src/server.ts): the configuration is
 * validated completely before anything listens; every problem is printed and the exit code is 2.
 * `WORKERS=N` (or `auto`: one per core) runs N workers behind the one port (src/cluster-primary.ts).
 */
import cluster from 'node:cluster'
import { availableParallelism } from 'node:os'
import { parseWorkers, reportStarted, runPrimary } from './cluster-primary.js'
import { withinHeapBudget } from './config/heap-budget.js'
import { clusterLog, LOG_LEVEL } from './cluster-log.js'
import { serveWorkerReadiness, WorkerReadinessReporter } from './cluster-readiness.js'
import { ClusterMetrics, serveClusterMetrics } from './metrics/cluster-metrics.js'
import { askStartConfig, reportApplied, reportRefused, serveStartConfig, workerConfig } from './cluster-start-config.js'
import { ConfigError, loadConfig, type LoadConfigOptions } from './config/load.js'
import type { Config } from './config/types.js'
import { listenProblem } from './listen-problem.js'
import { ownReadiness } from './http/routes/health.js'
import type { ProcessStop } from './stop-signals.js'

/**
 * The service itself (Fastify, the verifier, the routes), imported only by a process that runs it: a worker, or
 * the one process without WORKERS. The cluster primary never serves, and without it starts faster and holds
 * less (~0.35 s of CPU and ~15 MB of RSS less, measured on the build).
 */
const service = async (): Promise<typeof import('./run.js')> => await import('./run.js')

type LoadWith = (opts: Pick<LoadConfigOptions, 'configText' | 'onConfigText'>) => Config

/**
 * A cluster worker: starts with what the other workers run (src/cluster-start-config.ts), and after each reload it
 * applies tells the primary the text it read, for the workers that start after it.
 */
async function startWorker (signals: ProcessStop, loadWith: LoadWith): Promise<void> {
  let lastText: string | undefined
  const load = (): Config => loadWith({ onConfigText: (text) => { lastText = text } })
  const answer = await askStartConfig()
  if (answer === undefined) clusterLog(`worker ${process.pid}: the primary did not say what the other workers run; starting from the file as it is`, LOG_LEVEL.warn)
  const config = answer === undefined ? load() : workerConfig(answer, { fromText: (text) => loadWith({ configText: text }), now: load, log: clusterLog })
  const { runService } = await service()
  const app = await runService(config, signals, undefined, load, {
    onApplied: (startedAt) => { reportApplied(lastText, startedAt) },
    onRefused: (startedAt) => { reportRefused(startedAt) }
  })
  // Once stopping (the listener closed), nothing more is said: the primary counts the worker out when it exits.
  app.workersReadiness = new WorkerReadinessReporter(() => app.server.listening ? ownReadiness(app).ready : undefined)
  // /metrics answers for every worker of the host; this worker answers the primary for its own.
  if (app.metrics !== undefined) app.metrics.joinCluster(new ClusterMetrics(app.metrics.registry))
  reportStarted()
}

export async function start (signals: ProcessStop): Promise<void> {
  try {
    // Also on reload: a cache that cannot fit in V8's heap is a configuration problem (src/config/heap-budget.ts).
    const loadWith: LoadWith = (opts) => withinHeapBudget(loadConfig({ argv: process.argv.slice(2), env: process.env, ...opts }))
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
      // A worker started later (a replacement) starts with what the others run, not with the file as it is then.
      const served = serveStartConfig(config, startText)
      serveWorkerReadiness(workers)
      serveClusterMetrics()
      const relay = config.revocation.enabled && config.revocation.store === 'memory'
      runPrimary(workers, config.server.shutdownGraceSeconds, {
        ...(relay ? { relayRevocations: config.revocation.maxEntries } : {}),
        onReload: served.reloadAsked
      }, signals)
    } else {
      if (cluster.isWorker) await startWorker(signals, loadWith)
      else {
        const config = load() // an invalid configuration fails before the service is even loaded
        await (await service()).runService(config, signals, undefined, load)
      }
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`oidc-verifier: invalid configuration, not starting:\n${err.problems.map((p) => `  - ${p}`).join('\n')}\n`)
      process.exit(2)
    }
    const problem = listenProblem(err, ['server.host (HOST)', 'server.port (PORT), or server.opsPort'], 'the service could not listen')
    process.stderr.write(`oidc-verifier: failed to start: ${(problem as Error).message}\n`)
    process.exit(1)
  }
}
