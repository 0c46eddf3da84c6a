/**
 * The `oidc-verifier` command line: check-config resolves every issuer (discovery, JWKS, key checks) and
 * exits non-zero on any problem; verify verifies one token with the service's rules and explains a
 * rejection. Most cases call main() in-process against a local IdP server; the last tests run src/cli.ts as
 * a real child process (with the development issuer).
 */
import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { EXIT, main, MAX_STDIN_BYTES, type CliIo } from '../src/cli/main.js'
import { startDevIssuer } from '../src/dev/dev-issuer.js'
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js'
import { runNode } from './helpers/node-process.js'
import { b64, idTokenClaims, jwksOf, makeKey, mint, nowSeconds } from './helpers/tokens.js'
import { tempDir } from './helpers/temp-dir.js'

const es = makeKey('ES256')
const rs = makeKey('RS256')
const encKey = makeKey('RS256', { kid: 'enc-1', jwkExtras: { use: 'enc' } })
const shortRsa = makeKey('RS256', { kid: 'short-1', modulusLength: 1024 })
const inlineKey = makeKey('EdDSA')

/** A port nothing listens on: bound, then closed. */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

interface Captured { code: number, stdout: string, stderr: string }

/** The limits main() passed to readStdin (the real reader, src/cli.ts, is run in a child process below). */
const stdinLimits: number[] = []

async function cli (argv: string[], opts: { env?: NodeJS.ProcessEnv, stdin?: string } = {}): Promise<Captured> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = {
    stdout: (text) => { stdout += text },
    stderr: (text) => { stderr += text },
    readStdin: async (max) => {
      stdinLimits.push(max)
      const text = opts.stdin ?? ''
      if (Buffer.byteLength(text) > max) throw new Error(`standard input is longer than ${max} bytes; expected one token`)
      return text
    },
    env: opts.env ?? {}
  }
  const code = await main(argv, io)
  return { code, stdout, stderr }
}

/** An IdP with discovery and a JWKS holding one good key of each kind and two that are never usable. */
async function startIdp (t: Test): Promise<JwksServer> {
  const idp = await startJwksServer({ json: jwksOf(es, rs, encKey, shortRsa) })
  t.teardown(() => idp.close())
  idp.set({ json: { issuer: idp.url, jwks_uri: idp.jwksUrl } }, '/.well-known/openid-configuration')
  return idp
}

function writeConfig (t: Test, doc: unknown, name = 'config.yaml'): string {
  const dir = tempDir(t, { [name]: typeof doc === 'string' ? doc : stringify(doc) })
  return join(dir, name)
}

t.test('--help, --version and argument errors', async (t) => {
  const help = await cli(['--help'])
  t.equal(help.code, EXIT.ok)
  t.match(help.stdout, /oidc-verifier check-config \[--config PATH\]/)
  t.match(help.stdout, /oidc-verifier verify \[TOKEN \| -\]/)
  t.match(help.stdout, /Exit codes:/)
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  t.same(await cli(['--version']), { code: 0, stdout: `${pkg.version}\n`, stderr: '' })

  const usage: Array<[string[], RegExp]> = [
    [[], /a command is required/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['check-config', '--colour'], /Unknown option '--colour'/],
    [['check-config', 'extra'], /check-config takes no arguments/],
    [['verify'], /verify needs a token/],
    [['verify', 'a', 'b'], /verify takes one token/],
    [['verify', 'x', '--timeout', '1e3'], /--timeout: expected a whole number of seconds/],
    [['verify', 'x', '--max-age=-1'], /--max-age: expected a whole number of seconds/],
    [['verify', 'x', '--max-age', '-1'], /Option '--max-age' argument is ambiguous/],
    [['check-config', '--config', 'a.yaml', '--config', 'b.yaml'], /--config: given more than once/]
  ]
  for (const [argv, message] of usage) {
    const r = await cli(argv)
    t.equal(r.code, EXIT.usage, `${argv.join(' ')}: exit 64`)
    t.match(r.stderr, message, `${argv.join(' ')}: says why`)
    t.match(r.stderr, /--help/, 'points to --help')
    t.equal(r.stdout, '')
  }
})

t.test('a usage error describes an argument that may be a token, never quotes it', async (t) => {
  const token = 'eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLmNvbSIsInN1YiI6ImFkYSJ9.c2lnbmF0dXJl'
  const cases: Array<[string[], RegExp]> = [
    [[token], /unknown command an argument of 94 characters/],
    [['check-config', token], /check-config takes no arguments, got an argument of 94 characters/],
    [['verify', '--timeout', token, '-'], /--timeout: expected a whole number of seconds, got an argument of 94 characters/],
    [['verify', '--max-age', token, '-'], /--max-age: expected a whole number of seconds/],
    [[`--${token}`], /Unknown option '<an argument of 96 characters>'/],
    [['verify', `--timeout=${token}`, '-'], /--timeout: expected a whole number of seconds/]
  ]
  for (const [argv, message] of cases) {
    const r = await cli(argv)
    t.equal(r.code, EXIT.usage)
    t.match(r.stderr, message)
    for (const part of token.split('.')) t.notOk(r.stderr.includes(part), `${message.source}: no part of the token`)
  }
})

t.test('check-config: an invalid configuration exits 2 with every problem', async (t) => {
  const path = writeConfig(t, { server: { port: -1 }, issuers: [{ id: 'x', issuer: 'ftp://idp', audiences: [], audience: 'y' }] })
  const r = await cli(['check-config', '--config', path])
  t.equal(r.code, EXIT.invalidConfig)
  for (const p of [/server\.port/, /issuers\[0\]\.issuer/, /issuers\[0\]\.audiences/, /issuers\[0\]\.audience: unknown option/]) t.match(r.stderr, p)
  const none = await cli(['check-config'])
  t.equal(none.code, EXIT.invalidConfig, 'no configuration at all')
  t.match(none.stderr, /no issuers configured/)
  const missing = await cli(['verify', 'x', '--config', '/nonexistent/oidc.yaml'])
  t.equal(missing.code, EXIT.invalidConfig)
  t.match(missing.stderr, /cannot read the file: no such file/)
})

t.test('check-config: every issuer resolved, usable keys counted, unusable keys explained', async (t) => {
  const idp = await startIdp(t)
  const path = writeConfig(t, {
    issuers: [
      { id: 'discovered', issuer: idp.url, audiences: ['a'] },
      { id: 'direct', issuer: 'https://direct.example.com', audiences: ['a'], jwksUri: idp.jwksUrl, algorithms: ['RS256'] },
      { id: 'inline', issuer: 'https://inline.example.com', audiences: ['a'], jwks: jwksOf(inlineKey) }
    ]
  })
  const r = await cli(['check-config', '--config', path])
  t.equal(r.code, EXIT.ok, r.stderr)
  t.match(r.stdout, `configuration: ${path} (valid)`)
  const lines = r.stdout.split('\n')
  t.match(lines.find((l) => l.startsWith('discovered')), new RegExp(`discovered\\s+${idp.url}\\s+discovery\\s+${idp.jwksUrl}\\s+2\\s+ok \\(warnings\\)`))
  t.match(lines.find((l) => l.startsWith('direct')), new RegExp(`direct\\s+https://direct.example.com\\s+jwksUri\\s+${idp.jwksUrl}\\s+2\\s+ok`))
  t.match(lines.find((l) => l.startsWith('inline')), /inline\s+https:\/\/inline.example.com\s+inline\s+-\s+1\s+ok$/)
  t.match(r.stdout, /warning: key "enc-1" is never used: use is not "sig"/)
  t.match(r.stdout, /warning: key "short-1" is never used: RSA modulus is shorter than 2048 bits/)
  t.match(r.stdout, /3 issuers: 3 ok, 0 with problems/)

  const strict = await cli(['check-config', '--config', path, '--strict'])
  t.equal(strict.code, EXIT.failed, '--strict: unusable keys are problems')
  t.match(strict.stdout, /problem: key "enc-1" is never used/)

  const json = await cli(['check-config', '--config', path, '--json'])
  t.equal(json.code, EXIT.ok)
  const parsed = JSON.parse(json.stdout) as { ok: boolean, source: string, issuers: Array<Record<string, unknown>> }
  t.equal(parsed.ok, true)
  t.match(parsed.issuers[0], { id: 'discovered', source: 'discovery', jwksUri: idp.jwksUrl, usableKeys: 2, rejectedKeys: [{ kid: 'enc-1' }, { kid: 'short-1' }] })
  // t.match on a list checks its leading elements only: the lengths make them exact.
  t.same(parsed.issuers[0]?.problems, [], 'no problems')
  t.equal((parsed.issuers[0]?.rejectedKeys as unknown[] | undefined)?.length, 2, 'exactly those two keys rejected')
})

t.test('check-config: problems make the exit code 1, each named per issuer', async (t) => {
  const idp = await startIdp(t)
  idp.set({ json: { issuer: 'https://someone-else.example.com', jwks_uri: idp.jwksUrl } }, '/liar/.well-known/openid-configuration')
  idp.set({ status: 500 }, '/down')
  idp.set({ json: { keys: [] } }, '/empty')
  idp.set({ json: jwksOf(es) }, '/ec-only')
  idp.set({ body: '<html>oops</html>', contentType: 'text/html' }, '/html')
  const port = await closedPort()
  const path = writeConfig(t, {
    fetch: { timeoutMs: 2000 },
    issuers: [
      { id: 'good', issuer: idp.url, audiences: ['a'] },
      { id: 'unreachable', issuer: `http://127.0.0.1:${port}`, audiences: ['a'] },
      { id: 'liar', issuer: `${idp.url}/liar`, audiences: ['a'] },
      { id: 'down', issuer: 'https://down.example.com', audiences: ['a'], jwksUri: `${idp.url}/down` },
      { id: 'empty', issuer: 'https://empty.example.com', audiences: ['a'], jwksUri: `${idp.url}/empty` },
      { id: 'mismatch', issuer: 'https://mismatch.example.com', audiences: ['a'], jwksUri: `${idp.url}/ec-only`, algorithms: ['RS256', 'PS256'] },
      { id: 'html', issuer: 'https://html.example.com', audiences: ['a'], jwksUri: `${idp.url}/html` }
    ]
  })
  const r = await cli(['check-config', '--config', path])
  t.equal(r.code, EXIT.failed)
  const block = (id: string): string => {
    const lines = r.stdout.split('\n')
    const start = lines.findIndex((l) => l.startsWith(`${id} `))
    const end = lines.findIndex((l, i) => i > start && !l.startsWith('    '))
    return lines.slice(start, end).join('\n')
  }
  t.match(block('good'), /\sok/)
  t.match(block('unreachable'), /PROBLEM\n\s+problem: Discovery for issuer http:\/\/127\.0\.0\.1:\d+ failed: .*ECONNREFUSED/)
  t.match(block('liar'), /problem: .*names issuer "https:\/\/someone-else\.example\.com", expected exactly/)
  t.match(block('down'), /problem: GET .*\/down answered HTTP 500/)
  t.match(block('empty'), /\s0\s+PROBLEM\n\s+problem: the JWKS has no usable signature key/)
  t.match(block('mismatch'), /problem: no usable key fits the allowed algorithms \(RS256, PS256\); the keys are: EC P-256 ES256/)
  t.match(block('html'), /problem: GET .*\/html: body is not JSON/)
  t.match(r.stdout, /7 issuers: 1 ok, 6 with problems/)
  t.notMatch(r.stdout, /oops/, 'response bodies are never quoted')
})

t.test('verify: a good token prints the normalized identity', async (t) => {
  const idp = await startIdp(t)
  const path = writeConfig(t, { issuers: [{ id: 'idp', issuer: idp.url, audiences: ['app'] }] })
  const token = mint(es, idTokenClaims(idp.url, 'app', { groups: ['admins'] }))

  for (const [how, argv, stdin] of [['argument', ['verify', token], undefined], ['stdin', ['verify', '-'], `  ${token}\n`]] as const) {
    const r = await cli([...argv, '--config', path], { stdin })
    t.equal(r.code, EXIT.ok, `${how}: ${r.stderr}`)
    const identity = JSON.parse(r.stdout) as Record<string, unknown>
    t.match(identity, { issuer: { id: 'idp', url: idp.url }, subject: 'user-123', audiences: ['app'], user: { email: 'user@example.com', emailVerified: true } }, how)
    const warned = r.stderr.includes('lands in the shell history and the process list')
    t.equal(warned, how === 'argument', `${how}: ${how === 'argument' ? 'a note on stderr about the argument' : 'no note'}`)
  }
  const viaEnv = await cli(['verify', token], { env: { OIDC_ISSUER: idp.url, OIDC_AUDIENCE: 'app' } })
  t.equal(viaEnv.code, EXIT.ok, 'the single-issuer environment works as for the service')
})

t.test('verify: rejections print code, message, hint and what the token says', async (t) => {
  const idp = await startIdp(t)
  const path = writeConfig(t, { issuers: [{ id: 'idp', issuer: idp.url, audiences: ['app'] }] })
  const now = nowSeconds()

  const expired = await cli(['verify', mint(es, idTokenClaims(idp.url, 'app', { iat: now - 7200, exp: now - 3600 })), '--config', path])
  t.equal(expired.code, EXIT.failed)
  t.equal(expired.stdout, '')
  // The note about a token given as an argument, then the report.
  t.match(expired.stderr, /^oidc-verifier: note: a token given as an argument [^\n]+\ntoken rejected: token_expired \(HTTP 401 from the service\)/)
  t.match(expired.stderr, /message: The token has expired\./)
  t.match(expired.stderr, /hint: +The user must log in again/)
  t.match(expired.stderr, /claim: +exp/)
  t.match(expired.stderr, /exp +\d+ \(\d{4}-\d\d-\d\dT[^,]+, 3\d{3} s ago\)/)
  t.notMatch(expired.stderr, /user@example\.com/, 'personal claims are not shown')

  const stranger = await cli(['verify', mint(es, idTokenClaims('https://stranger.example.com/', 'app')), '--config', path])
  t.equal(stranger.code, EXIT.failed)
  t.match(stranger.stderr, /issuer_unknown/)
  t.match(stranger.stderr, /iss +"https:\/\/stranger\.example\.com\/"/)
  t.match(stranger.stderr, new RegExp(`configured issuers:\\n  idp: ${idp.url}  audiences: app`))
  t.notMatch(stranger.stderr, /near:/, 'another host is not near')
  const slashed = await cli(['verify', mint(es, idTokenClaims(`${idp.url}/`, 'app')), '--config', path])
  t.match(slashed, { code: EXIT.failed, stderr: /issuer_unknown[\s\S]*near: +issuer idp, differs by trailing_slash/ }, 'a near miss is named')

  const json = await cli(['verify', mint(es, idTokenClaims(idp.url, 'other-app')), '--config', path, '--json'])
  t.equal(json.code, EXIT.failed)
  t.match(JSON.parse(json.stdout), { code: 'audience_mismatch', status: 401, issuer: 'idp', claim: 'aud', message: String, hint: String })

  const nonce = await cli(['verify', mint(es, idTokenClaims(idp.url, 'app', { nonce: 'n-1' })), '--config', path, '--nonce', 'n-2'])
  t.match(nonce, { code: EXIT.failed, stderr: /nonce_mismatch/ }, '--nonce is checked like the request field')
  const maxAge = await cli(['verify', mint(es, idTokenClaims(idp.url, 'app', { auth_time: now - 600 })), '--config', path, '--max-age', '60'])
  t.match(maxAge, { code: EXIT.failed, stderr: /authentication_too_old/ }, '--max-age is checked')

  const unknownKid = await cli(['verify', mint(makeKey('ES256'), idTokenClaims(idp.url, 'app')), '--config', path])
  t.match(unknownKid, { code: EXIT.failed, stderr: /key_not_found[\s\S]*keys: +discovery, fresh, 2 usable, from http/ }, 'the key state is shown')
})

t.test('verify: hostile input is answered, never crashes, never reaches the terminal raw', async (t) => {
  const idp = await startIdp(t)
  const path = writeConfig(t, { issuers: [{ id: 'idp', issuer: idp.url, audiences: ['app'] }] })
  const cases: Array<[string, string, RegExp]> = [
    ['garbage', 'not-a-token', /token_malformed/],
    ['empty segments', '..', /token_malformed/],
    ['too large', `${b64({ alg: 'ES256' })}.${'A'.repeat(40000)}.sig`, /token_too_large/],
    ['alg none', `${b64({ alg: 'none' })}.${b64(idTokenClaims(idp.url, 'app'))}.`, /algorithm_not_allowed|token_malformed/],
    ['tampered', (() => { const [h, , s] = mint(es, idTokenClaims(idp.url, 'app')).split('.'); return `${h}.${b64(idTokenClaims(idp.url, 'app', { sub: 'admin' }))}.${s}` })(), /signature_invalid/],
    ['terminal escapes', mint(es, idTokenClaims(`https://evil.example.com/\u001b[2J\u009b31m\u202e`, 'app')), /issuer_unknown/]
  ]
  for (const [name, token, code] of cases) {
    const r = await cli(['verify', token, '--config', path])
    t.equal(r.code, EXIT.failed, name)
    t.match(r.stderr, code, name)
    t.notOk(['\u001b', '\u009b', '\u202e'].some((c) => r.stderr.includes(c)), `${name}: no raw control characters`)
  }
  stdinLimits.length = 0
  await cli(['verify', '-', '--config', path], { stdin: 'x.y.z' })
  t.same(stdinLimits, [MAX_STDIN_BYTES], 'standard input is read with its limit')
  const blank = await cli(['verify', '-', '--config', path], { stdin: ' \n' })
  t.match(blank, { code: EXIT.usage, stderr: /no token on standard input/ })
})

t.test('verify: an unreachable issuer is "undecided" (exit 3) with the reason', async (t) => {
  const port = await closedPort()
  const issuer = `http://127.0.0.1:${port}`
  const path = writeConfig(t, { fetch: { timeoutMs: 1000 }, issuers: [{ id: 'gone', issuer, audiences: ['app'] }] })
  const r = await cli(['verify', mint(es, idTokenClaims(issuer, 'app')), '--config', path, '--timeout', '2'])
  t.equal(r.code, EXIT.undecided)
  t.match(r.stderr, /token rejected: keys_unavailable \(HTTP 503/)
  t.match(r.stderr, /keys: +discovery, discovering, 0 usable/)
  t.match(r.stderr, /error: +Discovery for issuer http:\/\/127\.0\.0\.1:\d+ failed: .*ECONNREFUSED/)
})

t.test('verify: --timeout bounds the wait for keys, even while a fetch (of a longer fetch.timeoutMs) is under way', async (t) => {
  const idp = await startIdp(t)
  idp.set({ json: jwksOf(es), delayMs: 8000 })
  const path = writeConfig(t, { fetch: { timeoutMs: 20000 }, issuers: [{ id: 'slow', issuer: idp.url, audiences: ['app'], jwksUri: idp.jwksUrl }] })
  const started = Date.now()
  const r = await cli(['verify', mint(es, idTokenClaims(idp.url, 'app')), '--config', path, '--timeout', '1'])
  const elapsed = Date.now() - started
  t.equal(r.code, EXIT.undecided)
  t.match(r.stderr, /token rejected: keys_unavailable \(HTTP 503/)
  t.match(r.stderr, /keys: +jwksUri, missing, 0 usable/)
  t.ok(elapsed < 6000, `gave up at --timeout, not when the JWKS answered 8 s later (${elapsed} ms)`)
})

t.test('the real command: child processes against the development issuer and a local IdP', async (t) => {
  const dev = await startDevIssuer({ port: 0, env: {} })
  t.teardown(() => dev.close())
  const idp = await startIdp(t)
  const dir = tempDir(t, {
    'good.yaml': stringify({ issuers: [{ id: 'dev', issuer: dev.issuer, audiences: [dev.audience] }, { id: 'idp', issuer: idp.url, audiences: ['app'] }] }),
    'bad.yaml': 'issuers:\n  - id: dev\n    audiences: [x]\n'
  })
  const good = join(dir, 'good.yaml')
  const now = nowSeconds()
  // Few processes (each one compiles the sources); the in-process tests above cover the other cases.
  const [check, bad, valid, expired, huge] = await Promise.all([
    runNode('src/cli.ts', ['check-config', '--config', good]),
    runNode('src/cli.ts', ['check-config', '--config', join(dir, 'bad.yaml')]),
    runNode('src/cli.ts', ['verify', '-', '--config', good], { input: `${await dev.mint({ sub: 'alice', name: 'Alice' })}\n` }),
    runNode('src/cli.ts', ['verify', mint(es, idTokenClaims(idp.url, 'app', { iat: now - 100, exp: now - 50 })), '--config', good]),
    runNode('src/cli.ts', ['verify', '-', '--config', good], { input: 'x'.repeat(MAX_STDIN_BYTES + 1) })
  ])
  t.equal(huge.code, 1, 'an oversized standard input is refused')
  t.match(huge.stderr, new RegExp(`standard input is longer than ${MAX_STDIN_BYTES} bytes`))
  t.equal(huge.stdout, '')
  t.equal(check.code, 0, check.stderr)
  t.match(check.stdout, new RegExp(`dev\\s+${dev.issuer}\\s+discovery\\s+${dev.issuer}/jwks\\s+2\\s+ok`))
  t.match(bad, { code: 2, stderr: /issuers\[0\]\.issuer/ })
  t.equal(valid.code, 0, valid.stderr)
  t.match(JSON.parse(valid.stdout), { issuer: { id: 'dev' }, subject: 'alice', user: { name: 'Alice' } })
  t.match(expired, { code: 1, stdout: '', stderr: /token rejected: token_expired/ })
})

t.test('src/cli.ts is an executable script', async (t) => {
  t.match(readFileSync(new URL('../src/cli.ts', import.meta.url), 'utf8'), /^#!\/usr\/bin\/env node\n/, 'the shebang tsc keeps in dist/cli.js')
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { bin: Record<string, string> }
  t.same(pkg.bin, { 'oidc-verifier': 'dist/cli.js' })
})
