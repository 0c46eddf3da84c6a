/**
 * Environment-only mode reads a handful of variables by name: a misspelt one was ignored, and the service
 * started without what it says (CALLER_KEY_HASH: no caller authentication at all; OIDC_ALGORITHM: every
 * algorithm). A variable a letter or two away from one the service reads is refused with the name meant,
 * as an unknown option in the file is.
 */
import t from 'tap'
import { ConfigError, loadConfig } from '../src/config/load.js'

const ISSUER = { OIDC_ISSUER: 'https://idp.example.com', OIDC_AUDIENCE: 'app' }
const HASH = 'a'.repeat(64)

function problemsOf (env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig({ argv: [], env })
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  throw new Error('expected a ConfigError')
}

const misspelt = (name: string, meant: string): string =>
  `environment: ${name}: not a variable oidc-verifier reads (did you mean ${meant}?); rename it, or unset it if it is not meant for oidc-verifier`

t.test('a misspelt caller keys variable does not leave the service open to every caller', async (t) => {
  t.same(problemsOf({ ...ISSUER, CALLER_KEY_HASH: `billing:${HASH}` }), [misspelt('CALLER_KEY_HASH', 'CALLER_KEY_HASHES')])
  t.same(problemsOf({ ...ISSUER, CALLER_KEYS_HASHES: `billing:${HASH}` }), [misspelt('CALLER_KEYS_HASHES', 'CALLER_KEY_HASHES')])
})

t.test('misspelt issuer variables are named', async (t) => {
  t.same(problemsOf({ ...ISSUER, OIDC_ALGORITHM: 'RS256' }), [misspelt('OIDC_ALGORITHM', 'OIDC_ALGORITHMS')])
  t.same(problemsOf({ ...ISSUER, OIDC_JWKS_URL: 'https://idp.example.com/jwks' }), [misspelt('OIDC_JWKS_URL', 'OIDC_JWKS_URI')])
  t.same(problemsOf({ ...ISSUER, OIDC_DECRYPTION_KEY_FILES: '/k.pem' }), [misspelt('OIDC_DECRYPTION_KEY_FILES', 'OIDC_DECRYPTION_KEY_FILE')])
  // Without OIDC_ISSUER the suggestion comes with the "no issuers" problem.
  const problems = problemsOf({ OIDC_ISUSER: 'https://idp.example.com', OIDC_AUDIENCE: 'app' })
  t.equal(problems.length, 2)
  t.match(problems[0], /^no issuers configured/)
  t.equal(problems[1], misspelt('OIDC_ISUSER', 'OIDC_ISSUER'))
})

t.test('a name we read in another letter case or with other separators is named too (Docker and Kubernetes take such names)', async (t) => {
  for (const name of ['CALLER-KEY-HASHES', 'caller_key_hashes', 'Caller.Key.Hashes', 'CALLER-KEY-HASH']) {
    t.same(problemsOf({ ...ISSUER, [name]: `billing:${HASH}` }), [misspelt(name, 'CALLER_KEY_HASHES')], name)
  }
  for (const name of ['oidc_algorithms', 'OIDC-ALGORITHMS', 'oidc-algorithm']) {
    t.same(problemsOf({ ...ISSUER, [name]: 'RS256' }), [misspelt(name, 'OIDC_ALGORITHMS')], name)
  }
})

t.test('variables of other software are left alone', async (t) => {
  const env = {
    ...ISSUER,
    CALLER_KEY_HASHES: `billing:${HASH}`,
    OIDC_ISSUER_URL: 'https://other.example.com', // another program's name for its own setting
    OIDC_VERIFIER_PORT: 'tcp://10.0.0.1:8080', // Kubernetes service links of a Service named oidc-verifier
    OIDC_VERIFIER_SERVICE_HOST: '10.0.0.1',
    OIDC_CLIENT_SECRET: 'x',
    CALLERID: 'x',
    oidc_client_id: 'x', // another program's, in lower case
    'caller-name': 'x'
  }
  t.equal(loadConfig({ argv: [], env }).callers.keys.length, 1)
})
