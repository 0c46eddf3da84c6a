/**
 * `oidc-verifier verify`'s --audience and --nonce are POST /verify's audience and nonce, validated as the
 * service validates them: an audience no issuer is configured for, or an empty nonce, is the operator's
 * mistake (a usage error), not a token rejected with a hint to change the configuration.
 */
import t from 'tap'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { EXIT, main, type CliIo } from '../src/cli/main.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'
import { tempDir } from './helpers/temp-dir.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')

async function cli (argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = { stdout: (s) => { stdout += s }, stderr: (s) => { stderr += s }, readStdin: async () => '', env: {} }
  return { code: await main(argv, io), stdout, stderr }
}

const dir = tempDir(t, { 'config.yaml': stringify({ issuers: [{ id: 'idp', issuer: ISS, audiences: ['app'], jwks: jwksOf(key) }] }) })
const config = join(dir, 'config.yaml')
const token = mint(key, idTokenClaims(ISS, 'app'))

t.test('the checks as given are honoured', async (t) => {
  t.equal((await cli(['verify', token, '--config', config, '--audience', 'app'])).code, EXIT.ok)
})

t.test('an audience that is not configured is a usage error, as the service\'s 400 request_invalid', async (t) => {
  const r = await cli(['verify', token, '--config', config, '--audience', 'ap'])
  t.equal(r.code, EXIT.usage, r.stderr)
  t.match(r.stderr, /--audience: .*not a configured audience/)
  t.notMatch(r.stderr, /audience_mismatch/, 'the token is not blamed')
})

t.test('an empty nonce is a usage error, as the service refuses an empty nonce', async (t) => {
  const r = await cli(['verify', mint(key, idTokenClaims(ISS, 'app', { nonce: '' })), '--config', config, '--nonce', ''])
  t.equal(r.code, EXIT.usage, r.stderr)
  t.match(r.stderr, /--nonce: /)
})
