/**
 * A cluster primary (src/cluster-primary.ts, two workers) whose workers say they have started, then exit with
 * status 3 at once: a crash loop after the service has served, run as a child process by test/cluster.test.ts.
 * With CRASH_BEFORE_LISTENING=1 they exit before that (a port they cannot have). The workers run one line of
 * plain JavaScript, without the TypeScript loader, so the loop is quick: a worker that loads the whole service
 * under the test's loader takes seconds, long enough for ten restarts to spread past a minute.
 */
import cluster from 'node:cluster'
import { runPrimary } from '../../src/cluster-primary.js'

const WORKER = process.env.CRASH_BEFORE_LISTENING === '1'
  ? 'process.exit(3)'
  : 'process.send({ type: "oidc-verifier:started" }, () => setTimeout(() => process.exit(3), 20))'
// `node -e CODE <this file>`: node runs CODE, the file is only an argument.
cluster.setupPrimary({ execArgv: ['-e', WORKER] })
runPrimary(2, 1)
