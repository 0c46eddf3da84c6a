/**
 * A cluster primary (src/cluster-primary.ts, two workers) whose workers exit with status 3 as soon as they
 * start: a crash loop, run as a child process by test/cluster.test.ts. The workers run one line of plain
 * JavaScript, without the TypeScript loader, so the loop is quick: a worker that loads the whole service
 * under the test's loader takes seconds, long enough for ten restarts to spread past a minute.
 */
import cluster from 'node:cluster'
import { runPrimary } from '../../src/cluster-primary.js'

// `node -e CODE <this file>`: node runs CODE, the file is only an argument.
cluster.setupPrimary({ execArgv: ['-e', 'process.exit(3)'] })
runPrimary(2, 1)
