/**
 * A cluster primary (src/cluster-primary.ts, two workers) for the signal tests of test/cluster-primary-signals.test.ts.
 * Its workers run a few lines of plain JavaScript (no service, no TypeScript loader), chosen by WORKER_MODE:
 * - `slow-handlers`: the worker installs its SIGHUP and SIGTERM handlers only after 400 ms (a worker still loading
 *   its modules), then says so to the primary (and prints it), and says it has started 200 ms later; each SIGHUP it
 *   gets is printed.
 * - `started`: starts at once, and stops (exit 0) on SIGTERM.
 * - `stops-before-start`: has its handlers at once (exit 0 on SIGTERM) and never says it has started.
 */
import cluster from 'node:cluster'
import { runPrimary } from '../../src/cluster-primary.js'

const STARTED = 'process.send({ type: "oidc-verifier:started" }, () => {})'
const WORKERS: Record<string, string> = {
  'slow-handlers': `setTimeout(() => {
    process.on('SIGHUP', () => { console.log('worker ' + process.pid + ' got SIGHUP') })
    process.on('SIGTERM', () => process.exit(0))
    process.send({ type: 'handlers-in-place' }, () => { console.log('worker ' + process.pid + ' has its handlers') })
    setTimeout(() => { ${STARTED} }, 200)
  }, 400); setInterval(() => {}, 1000)`,
  started: `process.on('SIGTERM', () => process.exit(0)); ${STARTED}; setInterval(() => {}, 1000)`,
  'stops-before-start': `process.on('SIGTERM', () => process.exit(0)); setInterval(() => {}, 1000)`
}
const worker = WORKERS[process.env.WORKER_MODE ?? '']
if (worker === undefined) throw new Error(`WORKER_MODE: one of ${Object.keys(WORKERS).join(', ')}`)
// `node -e CODE <this file>`: node runs CODE, the file is only an argument.
cluster.setupPrimary({ execArgv: ['-e', worker] })
runPrimary(2, 0)
