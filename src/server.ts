/**
 * The production entry point: `node dist/server.js [--config PATH]` (npm start). The stop signals are
 * installed before anything else is loaded, so that a SIGTERM or SIGINT during start-up is logged and ends
 * the process with exit 0 instead of killing it silently (src/stop-signals.ts); then src/start.ts loads the
 * configuration and runs the service, or the cluster primary with `WORKERS=N`.
 */
import cluster from 'node:cluster'
import { ProcessStop } from './stop-signals.js'

const signals = new ProcessStop({ repeatForces: cluster.isPrimary, hangup: 'reload' })
const { start } = await import('./start.js')
await start(signals)
