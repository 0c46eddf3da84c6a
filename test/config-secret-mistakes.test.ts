/**
 * Secrets that can never match, accepted silently: every token or caller was then refused with a reason that
 * points elsewhere (signature_invalid, caller_key_invalid), and check-config said the configuration was fine.
 *   - a client secret with a line break or spaces around it: a Kubernetes Secret made from a file that ends in a
 *     newline, or a YAML block scalar (clientSecret: |), which keeps one. The provider signs with the secret
 *     alone, so no HS* token verifies.
 *   - a caller key hash that is the SHA-256 of nothing: printf %s "$KEY" | sha256sum with $KEY unset. An empty
 *     X-Api-Key is refused as missing, so that caller can never authenticate.
 */
import t from 'tap'
import { ConfigError, loadConfig } from '../src/config/load.js'

const SECRET = 'k'.repeat(40)
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

function problemsOf (text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    loadConfig({ argv: ['--config', 'c.yaml'], env, readFile: () => text })
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  throw new Error('expected a ConfigError')
}

const HS = 'issuers:\n  - id: a\n    issuer: https://idp.example.com\n    audiences: [app]\n    algorithms: [HS256]\n'

t.test('a client secret with surrounding whitespace is refused, without quoting it', async (t) => {
  const fromEnv = problemsOf(HS + '    clientSecretEnv: OIDC_SECRET\n', { OIDC_SECRET: `${SECRET}\n` })
  t.same(fromEnv, ['c.yaml: issuers[0].clientSecretEnv: expected the value of OIDC_SECRET without a line break or spaces at its start or end ' +
    '(a file it was made from ended in a newline?); the provider signs with the secret alone, so no HS* token would verify'])
  const block = problemsOf(HS + `    clientSecret: |\n      ${SECRET}\n`)
  t.same(block, ['c.yaml: issuers[0].clientSecret: expected a secret without a line break or spaces at its start or end ' +
    '(a YAML block scalar "|" keeps a final newline: use "|-" or a quoted string); the provider signs with the secret alone, so no HS* token would verify'])
  t.notMatch([...fromEnv, ...block].join('\n'), SECRET)
  // Inside, spaces are the secret's own.
  t.doesNotThrow(() => loadConfig({ argv: ['--config', 'c.yaml'], env: {}, readFile: () => HS + `    clientSecret: "${SECRET} ${SECRET}"\n` }))
})

t.test('a caller key hash of the empty key is refused', async (t) => {
  const base = 'issuers:\n  - id: a\n    issuer: https://idp.example.com\n    audiences: [app]\ncallers:\n  keys:\n    - id: billing\n'
  const expected = 'is the SHA-256 of an empty key (the key\'s variable was unset or empty when it was hashed), which no request can present; ' +
    'expected the hash of the caller\'s key: printf %s "$KEY" | sha256sum'
  t.same(problemsOf(base + `      sha256: ${EMPTY_SHA256}\n`), [`c.yaml: callers.keys[0].sha256: ${expected}`])
  t.same(problemsOf(base + '      sha256Env: BILLING_SHA256\n', { BILLING_SHA256: EMPTY_SHA256.toUpperCase() }), [`c.yaml: callers.keys[0].sha256Env: the value of BILLING_SHA256 ${expected}`])
  try {
    loadConfig({ argv: [], env: { OIDC_ISSUER: 'https://idp.example.com', OIDC_AUDIENCE: 'app', CALLER_KEY_HASHES: `billing:${EMPTY_SHA256}` } })
    t.fail('accepted')
  } catch (err) {
    t.same((err as ConfigError).problems, [`environment: CALLER_KEY_HASHES (item 1): ${expected}`])
  }
})
