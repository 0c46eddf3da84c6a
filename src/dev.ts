/**
 * `npm run dev`: the service with a built-in development issuer, so it does something real with no setup.
 * Prints a ready-to-paste curl command that mints a fresh token and verifies it. Never for production.
 */
import { parseConfig, ConfigError } from './config/load.js'
import { advertisedHost, DevIssuerRefused, startDevIssuer } from './dev/dev-issuer.js'
import { runService } from './run.js'

const env = process.env
try {
  const devIssuer = await startDevIssuer({
    // DEV_ISSUER_HOST=0.0.0.0 only in the dev container (Dockerfile "dev" stage), published on the host's loopback.
    ...(env.DEV_ISSUER_HOST !== undefined && env.DEV_ISSUER_HOST !== '' ? { host: env.DEV_ISSUER_HOST } : {}),
    port: env.DEV_ISSUER_PORT === undefined || env.DEV_ISSUER_PORT === '' ? 9400 : Number(env.DEV_ISSUER_PORT),
    env
  })
  const config = parseConfig({
    issuers: [{ id: 'dev', issuer: devIssuer.issuer, audiences: [devIssuer.audience], algorithms: ['ES256', 'RS256'] }]
  }, 'development issuer', env)
  const app = await runService(config, async () => { await devIssuer.close() })
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
  throw err
}
