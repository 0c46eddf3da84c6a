/**
 * The development issuer and `npm run dev`: real discovery, JWKS and minting; the printed curl command
 * works; refuses NODE_ENV=production.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { connect, createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { buildApp } from '../src/app.js'
import { advertisedHost, DevIssuerRefused, startDevIssuer } from '../src/dev/dev-issuer.js'
import { configFor } from './helpers/config.js'
import { builtNodeArgs } from './helpers/node-process.js'

t.test('mints tokens the service verifies through discovery', async (t) => {
  const dev = await startDevIssuer({ env: {} })
  t.teardown(() => dev.close())
  const app = await buildApp(configFor([{ id: 'dev', issuer: dev.issuer, audiences: [dev.audience] }]))
  t.teardown(() => app.close())
  const token = await (await fetch(`${dev.issuer}/token?sub=alice&name=Alice&groups=x`)).text()
  const res = await app.inject({ method: 'POST', url: '/verify', headers: { authorization: `Bearer ${token}` } })
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.json().subject, 'alice')
  t.equal(res.json().user.name, 'Alice')
  t.equal(res.json().user.email, 'alice@example.test')
  const posted = await (await fetch(`${dev.issuer}/token`, { method: 'POST', body: JSON.stringify({ sub: 'bob', groups: ['admins'], alg: 'RS256', iss: 'https://evil' }) })).text()
  const res2 = await app.inject({ method: 'POST', url: '/verify', payload: { token: posted } })
  t.equal(res2.statusCode, 200)
  t.same(res2.json().groups, ['admins'])
  t.equal(res2.json().issuer.url, dev.issuer, 'iss cannot be overridden')
  t.equal(JSON.parse(Buffer.from(posted.split('.')[0] as string, 'base64url').toString()).alg, 'RS256')
  const bad = await fetch(`${dev.issuer}/token`, { method: 'POST', body: '[1,2' })
  t.equal(bad.status, 400)
  t.equal((await fetch(`${dev.issuer}/nope`)).status, 404)
})

t.test('a request target that is no URL path gets a 400, not a crash of the process', async (t) => {
  const dev = await startDevIssuer({ env: {} })
  t.teardown(() => dev.close())
  // Any page a browser shows can send this one (fetch('http://127.0.0.1:9400//[') is a valid URL, path "//["):
  // it threw out of the request handler, an uncaught exception that stopped all of `npm run dev`.
  const res = await fetch(`${dev.issuer}//[`, { signal: AbortSignal.timeout(5000) }).then((r) => r.status, (err: unknown) => String(err))
  t.equal(res, 400)
  t.equal((await fetch(`${dev.issuer}/jwks`)).status, 200, 'still serving')
})

t.test('a minted token is not marked cacheable; discovery and the JWKS are', async (t) => {
  const dev = await startDevIssuer({ env: {} })
  t.teardown(() => dev.close())
  t.equal((await fetch(`${dev.issuer}/token?sub=alice`)).headers.get('cache-control'), 'no-store', 'GET /token')
  t.equal((await fetch(`${dev.issuer}/token`, { method: 'POST', body: '{"sub":"bob"}' })).headers.get('cache-control'), 'no-store', 'POST /token')
  t.equal((await fetch(`${dev.issuer}/jwks`)).headers.get('cache-control'), 'public, max-age=300')
})

t.test('close() does not wait for a client that never finishes its request', async (t) => {
  const dev = await startDevIssuer({ env: {} })
  const socket = connect(Number(new URL(dev.issuer).port), '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  socket.on('error', () => {})
  await new Promise<void>((resolve) => socket.on('connect', resolve))
  socket.write('POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"sub"')
  await new Promise((resolve) => setTimeout(resolve, 100))
  // npm run dev closes the issuer after the service (nothing of its own is in flight then): a stalled client
  // held Ctrl-C for the whole grace period, then an exit 1 "killed by timeout".
  const started = Date.now()
  const closed = await Promise.race([dev.close().then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 3000))])
  t.ok(closed, 'closed')
  t.ok(Date.now() - started < 1000, 'at once')
})

t.test('an IPv6 address is named in brackets in the URLs printed and configured', async (t) => {
  t.equal(advertisedHost('::1'), '[::1]')
  t.equal(advertisedHost('fe80::1'), '[fe80::1]')
  t.equal(advertisedHost('::'), '127.0.0.1')
  const dev = await startDevIssuer({ host: '::1', env: {} }).catch((err: unknown) => err as Error)
  if (dev instanceof Error) {
    t.comment(`no IPv6 loopback here: ${dev.message}`)
    return
  }
  t.teardown(() => dev.close())
  t.match(dev.issuer, /^http:\/\/\[::1\]:\d+$/)
  const app = await buildApp(configFor([{ id: 'dev', issuer: dev.issuer, audiences: [dev.audience] }]))
  t.teardown(() => app.close())
  const token = await (await fetch(`${dev.issuer}/token?sub=alice`)).text()
  const res = await app.inject({ method: 'POST', url: '/verify', payload: { token } })
  t.equal(res.statusCode, 200, res.body)
})

t.test('refuses to run with NODE_ENV=production, however it is spelt', async (t) => {
  // In quotes too (`docker run --env-file` keeps those of NODE_ENV="production"), or after an invisible character.
  for (const value of ['production', 'Production', 'PRODUCTION', 'prod', ' production', 'production-eu', '"production"', "'prod'", '\u200bproduction']) {
    const err = await startDevIssuer({ env: { NODE_ENV: value } }).then(() => undefined, (e: unknown) => e)
    t.ok(err instanceof DevIssuerRefused, value)
    t.match((err as Error).message, /insecure/)
  }
  for (const value of ['development', 'test', '', 'preprod-like-staging']) {
    const issuer = await startDevIssuer({ env: { NODE_ENV: value } })
    await issuer.close()
    t.pass(`starts with NODE_ENV=${JSON.stringify(value)}`)
  }
})

const built = existsSync(new URL('../dist/dev.js', import.meta.url))

t.test('npm run dev prints a curl command that verifies a fresh token', async (t) => {
  t.ok(built, 'dist/dev.js exists (npm test builds first, in pretest)')
  const child = spawn(process.execPath, [...builtNodeArgs(), 'dist/dev.js'], { env: { ...process.env, NODE_ENV: 'development', PORT: '0', DEV_ISSUER_PORT: '0', LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] })
  t.teardown(() => { child.kill('SIGTERM') })
  let stderr = ''
  const command = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no curl command printed: ${stderr}`)), 20000)
    child.stderr.on('data', (d) => {
      stderr += String(d)
      const m = /curl -s (?:-X (\w+) )?(\S+\/verify) -H "Authorization: Bearer \$\(curl -s '([^']+)'\)"/.exec(stderr)
      // curl sends GET unless told otherwise (-X, or a body with -d): the request is rebuilt exactly so.
      if (m !== null) { clearTimeout(timer); resolve(`${m[1] ?? 'GET'} ${m[2]} ${m[3]}`) }
    })
  })
  t.match(stderr, /INSECURE/)
  const [method, verifyUrl, tokenUrl] = command.split(' ') as [string, string, string]
  const token = await (await fetch(tokenUrl)).text()
  // A 503 says "retry later" (a busy CI machine can make the service shed load just after start): retried.
  let res = await fetch(verifyUrl, { method, headers: { authorization: `Bearer ${token}` } })
  for (let i = 0; i < 10 && res.status === 503; i++) {
    await new Promise((resolve) => setTimeout(resolve, 1000 * Number(res.headers.get('retry-after') ?? 1)))
    res = await fetch(verifyUrl, { method, headers: { authorization: `Bearer ${token}` } })
  }
  const body = await res.text()
  t.equal(res.status, 200, body)
  t.equal((JSON.parse(body) as { subject: string }).subject, 'alice')
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  child.kill('SIGTERM')
  t.equal(await exit, 0, 'SIGTERM exits 0')
})

t.test('npm run dev refuses NODE_ENV=production', async (t) => {
  const child = spawn(process.execPath, [...builtNodeArgs(), 'dist/dev.js'], { env: { ...process.env, NODE_ENV: 'production', PORT: '0', DEV_ISSUER_PORT: '0' }, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d) => { stderr += String(d) })
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)))
  t.equal(code, 1)
  t.match(stderr, /insecure/)
  t.match(stderr, /NODE_ENV=production/)
})

/** Runs dist/dev.js to its exit (bounded): exit code and standard error. */
async function runDev (env: Record<string, string>): Promise<{ code: number | null, stderr: string }> {
  // Without the settings the service reads from this process's environment (OIDC_*, HOST, PORT…).
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(OIDC_|HOST$|PORT$|DEV_ISSUER_)/.test(name)))
  const child = spawn(process.execPath, [...builtNodeArgs(), 'dist/dev.js'], { env: { ...base, NODE_ENV: 'development', LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d) => { stderr += String(d) })
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)))
  clearTimeout(timer)
  return { code, stderr }
}

t.test('npm run dev: a bad DEV_ISSUER_PORT or a port in use is one line naming the setting, not a stack', async (t) => {
  for (const port of ['abc', '70000', '-1', '80 80']) {
    const { code, stderr } = await runDev({ PORT: '0', DEV_ISSUER_PORT: port })
    t.equal(code, 2, `DEV_ISSUER_PORT=${port}: exit 2`)
    t.match(stderr, /DEV_ISSUER_PORT: expected a port number from 0 to 65535/)
    t.notMatch(stderr, /\n\s+at /, 'no stack trace')
  }
  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { taken.close() })
  const port = String((taken.address() as AddressInfo).port)
  const issuerPort = await runDev({ PORT: '0', DEV_ISSUER_PORT: port })
  t.equal(issuerPort.code, 1)
  t.match(issuerPort.stderr, /the development issuer could not listen: .*EADDRINUSE.*set DEV_ISSUER_PORT to a free one/)
  t.notMatch(issuerPort.stderr, /\n\s+at /, 'no stack trace')
  const servicePort = await runDev({ HOST: '127.0.0.1', PORT: port, DEV_ISSUER_PORT: '0' })
  t.equal(servicePort.code, 1)
  t.match(servicePort.stderr, /the service could not listen: .*EADDRINUSE.*set PORT to a free one/)
  t.notMatch(servicePort.stderr, /\n\s+at /, 'no stack trace')
  // An address no interface has (TEST-NET-1, RFC 5737).
  const address = await runDev({ HOST: '192.0.2.1', PORT: '0', DEV_ISSUER_PORT: '0' })
  t.equal(address.code, 1)
  t.match(address.stderr, /the service could not listen: .*EADDRNOTAVAIL.*check HOST/)
  const name = await runDev({ PORT: '0', DEV_ISSUER_HOST: 'nosuch.invalid', DEV_ISSUER_PORT: '0' })
  t.equal(name.code, 1)
  t.match(name.stderr, /the development issuer could not listen: .*(ENOTFOUND|EAI_AGAIN).*check DEV_ISSUER_HOST/)
})

t.test("README's curl examples send the method their route accepts", async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  // The service's POST-only routes; curl sends GET unless told -X POST or given a body (-d).
  const commands = readme.replace(/\\\n\s*/g, ' ').split('\n').filter((line) => /curl -s .*http:\/\/127\.0\.0\.1:8080\/(verify|introspect)/.test(line))
  t.ok(commands.length >= 4, 'the examples are found')
  for (const command of commands) t.match(command, /-X POST| -d /, command)
})
