/**
 * The service as a real process (src/server.ts): SIGHUP reloads the configuration file (a new issuer is
 * accepted, an invalid file is refused while the old configuration keeps serving), SIGTERM exits 0 within
 * the grace period, and an invalid configuration at start exits 2 with every problem printed.
 */
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { runNode, startNode } from './helpers/node-process.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'
import { tempDir } from './helpers/temp-dir.js'

const ISS_A = 'https://a.example.com'
const ISS_B = 'https://b.example.com'
const keyA = makeKey('ES256')
const keyB = makeKey('ES256')
const GRACE_SECONDS = 2

function configText (issuers: Array<Record<string, unknown>>): string {
  // Load shedding is not under test here: a busy machine must not turn these answers into 503s.
  return stringify({ server: { host: '127.0.0.1', port: 0, logLevel: 'info', shutdownGraceSeconds: GRACE_SECONDS }, loadShedding: { enabled: false }, issuers })
}

t.test('SIGHUP reloads the configuration file; SIGTERM exits 0 within the grace period', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'config.yaml')
  writeFileSync(file, configText([{ id: 'a', issuer: ISS_A, audiences: ['aud'], jwks: jwksOf(keyA) }]))

  const server = startNode('src/server.ts', ['--config', file])
  t.teardown(() => server.kill())
  const base = (await server.waitForLine(/Server listening at (http:\/\/127\.0\.0\.1:\d+)/))[1] as string
  const verify = async (token: string): Promise<{ status: number, body: Record<string, unknown> }> => {
    const res = await fetch(`${base}/verify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) })
    return { status: res.status, body: await res.json() as Record<string, unknown> }
  }
  const tokenA = mint(keyA, idTokenClaims(ISS_A, 'aud'))
  const tokenB = mint(keyB, idTokenClaims(ISS_B, 'aud'))
  t.equal((await verify(tokenA)).status, 200, 'issuer a is accepted')
  t.match(await verify(tokenB), { status: 401, body: { code: 'issuer_unknown' } }, 'issuer b is not configured yet')

  // A valid new file: issuer b replaces a, and a port change is reported as needing a restart.
  writeFileSync(file, configText([{ id: 'b', issuer: ISS_B, audiences: ['aud'], jwks: jwksOf(keyB) }]).replace('port: 0', 'port: 1'))
  let mark = server.output().length
  server.child.kill('SIGHUP')
  await server.waitForLine(/"msg":"configuration reloaded"/, { from: mark })
  t.match(server.output().slice(mark), /"settings":\["server\.port"\].*needs a restart/, 'the port change needs a restart')
  t.equal((await verify(tokenB)).status, 200, 'after SIGHUP the new issuer is accepted')
  t.match(await verify(tokenA), { status: 401, body: { code: 'issuer_unknown' } }, 'the removed issuer is refused')
  t.equal(server.child.exitCode, null, 'SIGHUP did not stop the process')

  // An invalid file: refused, logged with its problems, the running configuration keeps serving.
  writeFileSync(file, 'issuers:\n  - id: b\n    issuer: https://b.example.com\n    audiences: []\n')
  mark = server.output().length
  server.child.kill('SIGHUP')
  await server.waitForLine(/"msg":"configuration reload refused[^"]*"/, { from: mark })
  t.match(server.output().slice(mark), /issuers\[0\]\.audiences/, 'the problem is in the log line')
  t.equal((await verify(tokenB)).status, 200, 'the previous configuration keeps serving')

  // A token cache larger than V8's heap limit (at most ~4 GiB unless raised): refused like any invalid file.
  writeFileSync(file, configText([{ id: 'b', issuer: ISS_B, audiences: ['aud'], jwks: jwksOf(keyB) }]) + `tokenCache: { maxBytes: ${16 * 1024 ** 3} }\n`)
  mark = server.output().length
  server.child.kill('SIGHUP')
  await server.waitForLine(/"msg":"configuration reload refused[^"]*"/, { from: mark })
  t.match(server.output().slice(mark), /tokenCache\.maxBytes: 16384 MiB does not fit in this process's V8 heap/, 'the heap budget is checked on reload')
  t.equal((await verify(tokenB)).status, 200, 'the previous configuration keeps serving')

  server.child.kill('SIGTERM')
  let timer: NodeJS.Timeout | undefined
  const exit = await Promise.race([
    server.exited,
    new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), (GRACE_SECONDS + 20) * 1000) })
  ])
  clearTimeout(timer)
  t.same(exit, { code: 0, signal: null }, 'SIGTERM: exit code 0 within the grace bound')
})

t.test('an invalid configuration at start: exit code 2 and every problem printed', async (t) => {
  const dir = tempDir(t, {
    'bad.yaml': stringify({
      server: { port: 70000, colour: 'blue' },
      issuers: [
        { id: 'Bad Id', issuer: 'http://idp.example.com', audiences: [] },
        { id: 'ok', issuer: 'https://ok.example.com', audiences: ['x'], algorithms: ['none'] }
      ]
    })
  })
  const result = await runNode('src/server.ts', ['--config', join(dir, 'bad.yaml')])
  t.equal(result.code, 2)
  t.match(result.stderr, /invalid configuration, not starting/)
  for (const problem of [/server\.port/, /server\.colour: unknown option/, /issuers\[0\]\.id/, /issuers\[0\]\.issuer: .*https/, /issuers\[0\]\.audiences/, /issuers\[1\]\.algorithms\[0\]: "none" is never allowed/]) {
    t.match(result.stderr, problem, `printed: ${String(problem)}`)
  }
  t.equal(result.stdout, '', 'nothing listened, nothing logged')
})

t.test('a token cache that cannot fit in the heap: exit code 2 at start, unless NODE_OPTIONS raises the limit', async (t) => {
  const maxBytes = 16 * 1024 ** 3
  const dir = tempDir(t, { 'big.yaml': configText([{ id: 'a', issuer: ISS_A, audiences: ['aud'], jwks: jwksOf(keyA) }]) + `tokenCache: { maxBytes: ${maxBytes} }\n` })
  const refused = await runNode('src/server.ts', ['--config', join(dir, 'big.yaml')])
  t.equal(refused.code, 2)
  t.match(refused.stderr, /invalid configuration, not starting:\n {2}- tokenCache\.maxBytes: 16384 MiB does not fit in this process's V8 heap: its limit is [0-9]+ MiB/)
  t.match(refused.stderr, /NODE_OPTIONS=--max-old-space-size=16432 or more/, 'says what to set')
  t.equal(refused.stdout, '', 'nothing listened')

  // check-config makes the same check, under the limit the service would have.
  const checked = await runNode('src/cli.ts', ['check-config', '--config', join(dir, 'big.yaml')])
  t.equal(checked.code, 2, 'check-config: invalid configuration')
  t.match(checked.stderr, /tokenCache\.maxBytes: 16384 MiB does not fit/)
  const raised = await runNode('src/cli.ts', ['check-config', '--config', join(dir, 'big.yaml')], {
    env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --max-old-space-size=16432`.trim() }
  })
  t.equal(raised.code, 0, `with the limit raised the same file is valid: ${raised.stderr.slice(0, 300)}`)
})
