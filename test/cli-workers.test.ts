/**
 * check-config reads the configuration as the service does, but not WORKERS, which the service also refuses
 * before anything starts (exit 2): a deployment pipeline's check passed for an environment the service then
 * would not start in.
 */
import t from 'tap'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { EXIT, main, type CliIo } from '../src/cli/main.js'
import { jwksOf, makeKey } from './helpers/tokens.js'
import { tempDir } from './helpers/temp-dir.js'

async function checkConfig (path: string, env: NodeJS.ProcessEnv): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = { stdout: (s) => { stdout += s }, stderr: (s) => { stderr += s }, readStdin: async () => '', env }
  return { code: await main(['check-config', '--config', path], io), stdout, stderr }
}

t.test('check-config refuses a WORKERS value the service refuses', async (t) => {
  const doc = { issuers: [{ id: 'inline', issuer: 'https://idp.example.com', audiences: ['app'], jwks: jwksOf(makeKey('ES256')) }] }
  const path = join(tempDir(t, { 'config.yaml': stringify(doc) }), 'config.yaml')
  t.equal((await checkConfig(path, {})).code, EXIT.ok)
  t.equal((await checkConfig(path, { WORKERS: 'auto' })).code, EXIT.ok)
  t.equal((await checkConfig(path, { WORKERS: '4' })).code, EXIT.ok)
  for (const workers of ['0', ' 4', 'four', '1000']) {
    const r = await checkConfig(path, { WORKERS: workers })
    t.equal(r.code, EXIT.invalidConfig, `WORKERS=${JSON.stringify(workers)}`)
    t.match(r.stderr, /environment: WORKERS: expected a whole number from 1 to 999 or "auto"/)
  }
})
