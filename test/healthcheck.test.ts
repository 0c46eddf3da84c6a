/**
 * The container health check (src/healthcheck.ts, src/health/probe.ts): where it probes, what counts as
 * healthy, and that a refusing, hanging, redirecting or failing server makes it fail within its timeout.
 */
import { execFile, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { SERVER_DEFAULTS } from '../src/config/schema.js'
import { DEFAULT_HOST, DEFAULT_PORT, probe, probeUrl } from '../src/health/probe.js'
import { makeTestPki } from './helpers/certs.js'
import { isLoopbackHost } from '../src/net/fetch-json.js'
import { configFor } from './helpers/config.js'
import { builtNodeArgs, builtScript, ROOT, TS_LOADER } from './helpers/node-process.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

const execFileAsync = promisify(execFile)

async function listen (server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

/** A server under test's control; every socket is destroyed on close so nothing keeps tap alive. */
function rawServer (handler: Parameters<typeof createServer>[1]): Server {
  const sockets = new Set<Socket>()
  const server = createServer(handler)
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)) })
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return server
}

async function runScript (args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null, out: string }> {
  const child = spawn(process.execPath, [...builtNodeArgs(), join(ROOT, builtScript('src/healthcheck.ts')), ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  return { code, out }
}

const key = makeKey('ES256')
let app: FastifyInstance
let appPort = 0
t.before(async () => {
  app = await buildApp(configFor([{ id: 'main', issuer: 'https://idp.example.com', audiences: ['a'], jwks: jwksOf(key) }]))
  await app.listen({ host: '127.0.0.1', port: 0 })
  appPort = (app.server.address() as AddressInfo).port
})
t.teardown(async () => { await app.close() })

t.test('probeUrl: where the server listens, from the same configuration', async (t) => {
  const envIssuer = { OIDC_ISSUER: 'https://accounts.google.com', OIDC_AUDIENCE: 'x' }
  t.equal((await probeUrl(undefined, { env: {} })).href, 'http://127.0.0.1:8080/healthz', 'no configuration: the default port')
  t.equal((await probeUrl('/readyz', { env: { ...envIssuer, PORT: '9123' } })).href, 'http://127.0.0.1:9123/readyz')
  t.equal((await probeUrl(undefined, { env: { ...envIssuer, HOST: '0.0.0.0' } })).href, 'http://127.0.0.1:8080/healthz', 'wildcard → loopback')
  t.equal((await probeUrl(undefined, { env: { ...envIssuer, HOST: '::' } })).href, 'http://127.0.0.1:8080/healthz')
  t.equal((await probeUrl(undefined, { env: { ...envIssuer, HOST: '::1' } })).href, 'http://[::1]:8080/healthz')
  const file = 'server:\n  host: 0.0.0.0\n  port: 9555\nissuers:\n  - { id: g, issuer: "https://accounts.google.com", audiences: [x] }\n'
  t.equal((await probeUrl(undefined, { env: { OIDC_VERIFIER_CONFIG: '/etc/v/config.yaml' }, readFile: () => file })).href,
    'http://127.0.0.1:9555/healthz', 'the config file\'s port')
  t.equal((await probeUrl(undefined, { env: { OIDC_VERIFIER_CONFIG: '/etc/v/config.yaml', PORT: '7000' }, readFile: () => file })).href,
    'http://127.0.0.1:7000/healthz', 'PORT overrides the file, as it does for the server')
  const warnings: string[] = []
  t.equal((await probeUrl(undefined, { env: { OIDC_VERIFIER_CONFIG: '/nope.yaml', PORT: '7001' }, readFile: () => { throw Object.assign(new Error('x'), { code: 'ENOENT' }) }, warn: (m) => warnings.push(m) })).href,
    'http://127.0.0.1:7001/healthz', 'an unreadable configuration falls back to PORT')
  t.equal(warnings.length, 1, 'and says so')
  t.match(warnings[0], /^OIDC_VERIFIER_CONFIG could not be loaded \(.*\); probing HOST\/PORT instead$/)
  const secretless = 'issuers:\n  - { id: g, issuer: "https://accounts.google.com", audiences: [x], clientSecretEnv: G_SECRET, algorithms: [HS256] }\n'
  await probeUrl(undefined, { env: { OIDC_VERIFIER_CONFIG: '/etc/v/config.yaml' }, readFile: () => secretless, warn: (m) => warnings.push(m) })
  t.match(warnings[1], /could not be loaded \(.*issuers\[0\]\.clientSecretEnv.*G_SECRET.*\)/, 'the first problem, naming the setting and the variable missing here')
  await probeUrl(undefined, { env: { OIDC_VERIFIER_CONFIG: '/etc/v/config.yaml' }, readFile: () => file, warn: (m) => warnings.push(m) })
  t.equal(warnings.length, 2, 'nothing to say when it loads')
  const ops = 'server:\n  port: 9555\n  opsPort: 9090\nissuers:\n  - { id: g, issuer: "https://accounts.google.com", audiences: [x] }\n'
  t.equal((await probeUrl('/readyz', { env: { OIDC_VERIFIER_CONFIG: '/c.yaml' }, readFile: () => ops })).href, 'http://127.0.0.1:9090/readyz', 'the ops port serves health')
  const opsHost = ops.replace('opsPort: 9090', 'opsPort: 9090\n  opsHost: 127.0.0.2')
  t.equal((await probeUrl(undefined, { env: { OIDC_VERIFIER_CONFIG: '/c.yaml' }, readFile: () => opsHost })).href, 'http://127.0.0.2:9090/healthz', 'on opsHost')
  t.equal((await probeUrl(undefined, { env: { PORT: 'eighty' } })).href, 'http://127.0.0.1:8080/healthz', 'a bad PORT is ignored')
  t.equal((await probeUrl('/readyz', { env: { HEALTHCHECK_URL: 'https://127.0.0.1:8443/healthz', PORT: '1' } })).href, 'https://127.0.0.1:8443/healthz', 'HEALTHCHECK_URL wins')
})

t.test('probeUrl: without a configuration file the loader is not imported (an exec probe stays small)', async (t) => {
  t.equal(DEFAULT_HOST, SERVER_DEFAULTS.host, 'the probe\'s default host is the server\'s')
  t.equal(DEFAULT_PORT, SERVER_DEFAULTS.port, 'the probe\'s default port is the server\'s')
  // A plain node with only the TypeScript loader: tap's own hooks (in this process's execArgv) load YAML themselves.
  const probeImports = async (...args: string[]): Promise<{ url: string, yamlLoaded: boolean }> => {
    const { stdout } = await execFileAsync(process.execPath, [TS_LOADER, 'test/helpers/probe-imports.ts', ...args], {
      cwd: ROOT, env: { PATH: process.env.PATH }, timeout: 30_000
    })
    return JSON.parse(stdout) as { url: string, yamlLoaded: boolean }
  }
  t.same(await probeImports(JSON.stringify({ OIDC_ISSUER: 'https://accounts.google.com', OIDC_AUDIENCE: 'x', PORT: '9124' })),
    { url: 'http://127.0.0.1:9124/healthz', yamlLoaded: false }, 'environment only: HOST and PORT, no loader')
  const file = 'server:\n  port: 9556\nissuers:\n  - { id: g, issuer: "https://accounts.google.com", audiences: [x] }\n'
  t.same(await probeImports(JSON.stringify({ OIDC_VERIFIER_CONFIG: '/etc/v/config.yaml' }), file),
    { url: 'http://127.0.0.1:9556/healthz', yamlLoaded: true }, 'a configuration file is read with the loader (the detector works)')
})

t.test('probeUrl: refuses odd paths and URLs', async (t) => {
  for (const bad of ['healthz', '//evil.example/x', '/a b', '/x?y=1', '/x#y', `/${'a'.repeat(300)}`, '/\u0000']) {
    await t.rejects(probeUrl(bad, { env: {} }), { name: 'ProbeTargetError' }, JSON.stringify(bad.slice(0, 20)))
  }
  for (const bad of ['not a url', 'file:///etc/passwd', 'ftp://127.0.0.1/']) {
    await t.rejects(probeUrl(undefined, { env: { HEALTHCHECK_URL: bad } }), { name: 'ProbeTargetError' }, bad)
  }
})

t.test('probe: 2xx is healthy, anything else is not', async (t) => {
  t.same(await probe(new URL(`http://127.0.0.1:${appPort}/healthz`)), { ok: true, status: 200 })
  t.same(await probe(new URL(`http://127.0.0.1:${appPort}/no-such-route`)), { ok: false, status: 404 })

  const status = rawServer((req, res) => {
    const code = Number(req.url?.slice(1))
    res.writeHead(code, code === 302 ? { location: `http://127.0.0.1:${appPort}/healthz` } : {})
    // 503: a body that never ends. A probe that waited for it would time out instead of reporting the status.
    if (code === 503) res.write('x'.repeat(100_000))
    else res.end('x')
  })
  const port = await listen(status)
  t.same(await probe(new URL(`http://127.0.0.1:${port}/503`), 2000), { ok: false, status: 503 }, 'the status line is enough: the body is not waited for')
  t.same(await probe(new URL(`http://127.0.0.1:${port}/302`)), { ok: false, status: 302 }, 'redirects are not followed')
  t.same(await probe(new URL(`http://127.0.0.1:${port}/500`)), { ok: false, status: 500 })
})

t.test('probe: refused, hanging and garbage servers fail within the timeout', async (t) => {
  const closed = rawServer(() => {})
  const closedPort = await listen(closed)
  await new Promise<void>((resolve) => closed.close(() => resolve()))
  const refused = await probe(new URL(`http://127.0.0.1:${closedPort}/healthz`), 2000)
  t.equal(refused.ok, false)
  t.equal(refused.error, 'ECONNREFUSED')

  const hanging = rawServer(() => { /* never answers */ })
  const hangingPort = await listen(hanging)
  const slow = await probe(new URL(`http://127.0.0.1:${hangingPort}/healthz`), 200)
  t.same(slow, { ok: false, error: 'no answer within 200 ms' })

  const garbage = rawServer(() => {})
  garbage.on('connection', (socket: Socket) => { socket.end('this is not HTTP\r\n\r\n') })
  const garbagePort = await listen(garbage)
  const bad = await probe(new URL(`http://127.0.0.1:${garbagePort}/healthz`), 2000)
  t.equal(bad.ok, false)
  t.type(bad.error, 'string')
})

t.test('a TLS listener is probed over https (its certificate is not checked on loopback)', async (t) => {
  const pki = makeTestPki()
  t.teardown(() => pki.remove())
  const file = `server:\n  port: 9443\n  tls: { certFile: ${pki.serverCert}, keyFile: ${pki.serverKey} }\nissuers:\n  - { id: g, issuer: "https://accounts.google.com", audiences: [x] }\n`
  const url = await probeUrl(undefined, { env: { OIDC_VERIFIER_CONFIG: '/c.yaml' }, readFile: (path) => path === '/c.yaml' ? file : readFileSync(path, 'utf8') })
  t.equal(url.href, 'https://127.0.0.1:9443/healthz')
  const opsFile = `server:\n  port: 9443\n  opsPort: 9444\n  opsTls: { certFile: ${pki.serverCert}, keyFile: ${pki.serverKey} }\nissuers:\n  - { id: g, issuer: "https://accounts.google.com", audiences: [x] }\n`
  const opsUrl = await probeUrl(undefined, { env: { OIDC_VERIFIER_CONFIG: '/c.yaml' }, readFile: (path) => path === '/c.yaml' ? opsFile : readFileSync(path, 'utf8') })
  t.equal(opsUrl.href, 'https://127.0.0.1:9444/healthz', 'an ops listener with opsTls too')

  const server = createHttpsServer({ cert: pki.pem.serverCert, key: readFileSync(pki.serverKey) }, (_req, res) => { res.writeHead(200); res.end() })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const port = (server.address() as AddressInfo).port
  t.same(await probe(new URL(`https://127.0.0.1:${port}/healthz`)), { ok: true, status: 200 })
  // What counts as loopback for that: addresses and localhost, never a DNS name that merely starts with 127.
  for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '[::1]']) t.ok(isLoopbackHost(new URL(`https://${host}/`).hostname), host)
  for (const host of ['127.attacker.example', '127.0.0.1.nip.io', 'localhost.example']) t.notOk(isLoopbackHost(new URL(`https://${host}/`).hostname), host)
})

t.test('the script: exit 0 when healthy, 1 when not, 2 on a usage error', async (t) => {
  const healthy = await runScript([], { PORT: String(appPort) })
  t.equal(healthy.code, 0, healthy.out)
  t.match(healthy.out, `GET http://127.0.0.1:${appPort}/healthz: status 200`)

  const closed = rawServer(() => {})
  const closedPort = await listen(closed)
  await new Promise<void>((resolve) => closed.close(() => resolve()))
  const down = await runScript([], { HEALTHCHECK_URL: `http://127.0.0.1:${closedPort}/healthz` })
  t.equal(down.code, 1)
  t.match(down.out, 'ECONNREFUSED')

  const usage = await runScript(['healthz'], {})
  t.equal(usage.code, 2)
  t.match(usage.out, 'expected a path')
})
