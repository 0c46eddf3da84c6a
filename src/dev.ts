/**
 * `npm run dev`: the service with a built-in development issuer, so it does something real with no setup.
 * Prints a ready-to-paste curl command that mints a fresh token and verifies it. Never for production.
 */
import { parseConfig, ConfigError } from './config/load.js'
import { advertisedHost, DevIssuerRefused, startDevIssuer } from './dev/dev-issuer.js'
import { listenProblem } from './listen-problem.js'
import { ProcessStop } from './stop-signals.js'

/** The development issuer's port when DEV_ISSUER_PORT is unset. */
const DEFAULT_DEV_ISSUER_PORT = 9400

const signals = new ProcessStop({ repeatForces: true, hangup: 'stop' }) // SIGHUP stops npm run dev (it never reloads)
const env = process.env
try {
  const issuerPort = env.DEV_ISSUER_PORT === undefined || env.DEV_ISSUER_PORT === '' ? String(DEFAULT_DEV_ISSUER_PORT) : env.DEV_ISSUER_PORT
  if (!/^[0-9]{1,5}$/.test(issuerPort) || Number(issuerPort) > 65535) {
    throw new ConfigError([`DEV_ISSUER_PORT: expected a port number from 0 to 65535, got ${JSON.stringify(issuerPort.slice(0, 20))}`])
  }
  const devIssuer = await startDevIssuer({
    // DEV_ISSUER_HOST=0.0.0.0 only in the dev container (Dockerfile "dev" stage), published on the host's loopback.
    ...(env.DEV_ISSUER_HOST !== undefined && env.DEV_ISSUER_HOST !== '' ? { host: env.DEV_ISSUER_HOST } : {}),
    port: Number(issuerPort),
    env
  }).catch((err: unknown) => { throw listenProblem(err, ['DEV_ISSUER_HOST', 'DEV_ISSUER_PORT'], 'the development issuer could not listen') })
  const config = parseConfig({
    issuers: [{ id: 'dev', issuer: devIssuer.issuer, audiences: [devIssuer.audience], algorithms: ['ES256', 'RS256'] }]
  }, 'development issuer', env)
  // The service is loaded only now: a bad DEV_ISSUER_PORT above fails without it, as fast as a typo should.
  const { runService } = await import('./run.js')
  const app = await runService(config, signals, async () => { await devIssuer.close() })
    .catch((err: unknown) => { throw listenProblem(err, ['HOST', 'PORT'], 'the service could not listen') })
  // The commands below are for right now: wait (a few seconds at most) until the issuer's keys are loaded.
  for (let i = 0; i < 50 && !app.verifier.ready; i++) await new Promise((resolve) => setTimeout(resolve, 100))
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.server.port
  const base = `http://${advertisedHost(config.server.host)}:${port}`
  process.stderr.write([
    '',
    'oidc-verifier development mode: INSECURE, the development issuer mints tokens for anyone who asks.',
    `  issuer:   ${devIssuer.issuer}   (audience "${devIssuer.audience}")`,
    `  service:  ${base}`,
    '',
    'Verify a fresh token:',
    `  curl -s -X POST ${base}/verify -H "Authorization: Bearer $(curl -s '${devIssuer.issuer}/token?sub=alice&name=Alice')"`,
    '',
    'Mint with your own claims:',
    `  curl -s -X POST ${devIssuer.issuer}/token -d '{"sub":"bob","groups":["admins"]}'`,
    ''
  ].join('\n') + '\n')
} catch (err) {
  if (err instanceof DevIssuerRefused) {
    process.stderr.write(`oidc-verifier: ${err.message}\n`)
    process.exit(1)
  }
  if (err instanceof ConfigError) {
    process.stderr.write(`oidc-verifier: invalid configuration:\n${err.problems.map((p) => `  - ${p}`).join('\n')}\n`)
    process.exit(2)
  }
  process.stderr.write(`oidc-verifier: ${(err as Error).message}\n`)
  process.exit(1)
}

