/**
 * Traefik and Envoy cannot run here, so their side of the exchange is replayed exactly at the HTTP level,
 * from the shipped example configurations (examples/traefik, examples/envoy) and against the service
 * configured with examples/oidc-verifier.yaml: which headers each proxy sends, which statuses it honours,
 * which response headers reach the app and the client. The Kubernetes example is checked for consistency
 * with the tested files it embeds.
 *
 * The proxies' behaviour modelled here (and what to re-check when upgrading them):
 *   Traefik ForwardAuth (pkg/middlewares/auth/forward.go): GET to `address`; the client's headers minus
 *     hop-by-hop ones, only `authRequestHeaders` when set; X-Forwarded-For/-Method/-Proto/-Host/-Uri set by
 *     Traefik; a 2xx lets the request through with each `authResponseHeaders` header deleted from it and
 *     copied from the answer when present; any other answer is returned to the client as it is.
 *   Envoy ext_authz HTTP (ext_authz_http_impl.cc): the original method, path_prefix + original path and
 *     query, Host, Authorization and the `allowed_headers`, Content-Length 0; exactly 200 allows, with
 *     `allowed_upstream_headers` set on the request (overwriting) and x-envoy-auth-headers-to-remove
 *     removed from it; a 5xx is an error (403, or status_on_error, unless failure_mode_allow); any other
 *     status is returned to the client with its body and the `allowed_client_headers` (plus
 *     WWW-Authenticate, Location and Content-Length).
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { parse, parseAllDocuments } from 'yaml'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { buildApp } from '../src/app.js'
import { loadConfig, parseConfig } from '../src/config/load.js'
import { IDENTITY_HEADER_FIELDS } from '../src/config/types.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')

const examplePath = (name: string): URL => new URL(`../examples/${name}`, import.meta.url)
const exampleText = (name: string): string => readFileSync(examplePath(name), 'utf8')

type Doc = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
const verifierDoc = parse(exampleText('oidc-verifier.yaml')) as Doc
const traefik = parse(exampleText('traefik/dynamic.yml')) as Doc
const envoy = parse(exampleText('envoy/envoy.yaml')) as Doc

/** The example's settings with a test issuer instead of Google (no network here). */
function exampleConfig (forwardAuth: Doc = {}): ReturnType<typeof parseConfig> {
  return parseConfig({
    ...verifierDoc,
    server: { ...verifierDoc.server, logLevel: 'silent' },
    forwardAuth: { ...verifierDoc.forwardAuth, ...forwardAuth },
    issuers: [{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }]
  }, 'test', {})
}

const app = await buildApp(exampleConfig())
t.teardown(() => app.close())
const ourHeaders = Object.values(app.verifierSlot.config.forwardAuth.headers).sort()

const token = (groups: string[] = ['staff'], extra: Record<string, unknown> = {}): string => mint(key, idTokenClaims(ISS, AUD, { groups, ...extra }))

type Headers = Record<string, string>
const lower = (headers: Headers): Headers => Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
const responseHeaders = (res: LightMyRequestResponse): Headers =>
  Object.fromEntries(Object.entries(res.headers).filter(([, v]) => v !== undefined).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]))

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']

interface ClientRequest { method: string, host: string, uri: string, headers: Headers }
type Outcome = { allowed: true, upstream: Headers } | { allowed: false, status: number, headers: Headers, body: string }

// ---------------------------------------------------------------------------------------------------------
// Traefik
// ---------------------------------------------------------------------------------------------------------

async function traefikForwardAuth (target: FastifyInstance, middleware: string, client: ClientRequest): Promise<Outcome> {
  const fa = traefik.http.middlewares[middleware].forwardAuth as Doc
  const address = new URL(fa.address)
  let headers = lower(client.headers)
  for (const hop of HOP_BY_HOP) delete headers[hop]
  const only = (fa.authRequestHeaders ?? []) as string[]
  if (only.length > 0) headers = Object.fromEntries(Object.entries(headers).filter(([k]) => only.some((h) => h.toLowerCase() === k)))
  Object.assign(headers, {
    host: address.host,
    'x-forwarded-for': '203.0.113.7',
    'x-forwarded-method': client.method,
    'x-forwarded-proto': 'https',
    'x-forwarded-host': client.host,
    'x-forwarded-uri': client.uri
  })
  const res = await target.inject({ method: 'GET', url: address.pathname + address.search, headers })
  if (res.statusCode < 200 || res.statusCode >= 300) return { allowed: false, status: res.statusCode, headers: responseHeaders(res), body: res.body }
  const upstream = lower(client.headers)
  const answer = responseHeaders(res)
  for (const name of fa.authResponseHeaders as string[]) {
    const k = name.toLowerCase()
    delete upstream[k]
    if (answer[k] !== undefined) upstream[k] = answer[k]
  }
  return { allowed: true, upstream }
}

/** Traefik's headers middleware: customRequestHeaders, where "" removes the header. */
function traefikHeaders (middleware: string, upstream: Headers): Headers {
  const out = { ...upstream }
  for (const [name, value] of Object.entries(traefik.http.middlewares[middleware].headers.customRequestHeaders as Headers)) {
    if (value === '') delete out[name.toLowerCase()]
    else out[name.toLowerCase()] = value
  }
  return out
}

/** Through a router of the example: its middlewares in order, as Traefik chains them. */
async function throughTraefikRouter (target: FastifyInstance, router: string, client: ClientRequest): Promise<Outcome> {
  let upstream = lower(client.headers)
  for (const mw of traefik.http.routers[router].middlewares as string[]) {
    const def = traefik.http.middlewares[mw] as Doc
    if (def.forwardAuth !== undefined) {
      const outcome = await traefikForwardAuth(target, mw, { ...client, headers: upstream })
      if (!outcome.allowed) return outcome
      upstream = outcome.upstream
    } else {
      upstream = traefikHeaders(mw, upstream)
    }
  }
  return { allowed: true, upstream }
}

t.test('the Traefik example matches the service', async (t) => {
  for (const [name, def] of Object.entries(traefik.http.middlewares as Record<string, Doc>)) {
    if (def.forwardAuth === undefined) continue
    const address = new URL(def.forwardAuth.address)
    t.equal(address.pathname, '/forward-auth', `${name}: the forward-auth path`)
    t.equal(address.port, String(verifierDoc.server.port), `${name}: the verifier's port`)
    t.same([...def.forwardAuth.authResponseHeaders].map((h: string) => h.toLowerCase()).sort(), ourHeaders, `${name}: every identity header is copied`)
    t.equal(def.forwardAuth.trustForwardHeader, false, `${name}: the client's X-Forwarded-* are not trusted`)
    const res = await app.inject({ method: 'GET', url: address.pathname + address.search })
    t.equal(res.statusCode, 401, `${name}: its query is a valid requirement (not requirement_invalid)`)
  }
})

t.test('Traefik: a good token reaches the app with the identity, replacing the client\'s copies, without the token', async (t) => {
  const outcome = await throughTraefikRouter(app, 'app', {
    method: 'POST',
    host: 'app.example.com',
    uri: '/orders?x=1',
    headers: { Authorization: `Bearer ${token(['staff'], { email: undefined })}`, 'X-Auth-Groups': 'admins', 'X-Auth-Email': 'ceo@example.com', 'X-Auth-Identity': 'forged' }
  })
  t.ok(outcome.allowed)
  if (!outcome.allowed) return
  t.equal(outcome.upstream['x-auth-subject'], 'user-123')
  t.equal(outcome.upstream['x-auth-groups'], 'staff')
  t.equal(outcome.upstream['x-auth-email'], '', 'the client\'s email is replaced by the empty one')
  t.equal(outcome.upstream['x-auth-identity'], '')
  t.notOk('authorization' in outcome.upstream, 'the strip-token middleware removes the token')
  for (const h of ourHeaders) t.ok(h in outcome.upstream, `${h} reaches the app`)
})

t.test('Traefik: 401 and 403 reach the client as the service answered them', async (t) => {
  const missing = await throughTraefikRouter(app, 'app', { method: 'GET', host: 'app.example.com', uri: '/', headers: {} })
  t.notOk(missing.allowed)
  if (!missing.allowed) {
    t.equal(missing.status, 401)
    t.equal(missing.headers['www-authenticate'], 'Bearer')
    t.equal(JSON.parse(missing.body).code, 'token_missing')
  }
  const notAdmin = await throughTraefikRouter(app, 'app-admin', { method: 'GET', host: 'app.example.com', uri: '/admin/x', headers: { Authorization: `Bearer ${token()}` } })
  t.notOk(notAdmin.allowed)
  if (!notAdmin.allowed) {
    t.equal(notAdmin.status, 403)
    t.equal(JSON.parse(notAdmin.body).code, 'requirement_not_met')
  }
  const admin = await throughTraefikRouter(app, 'app-admin', { method: 'GET', host: 'app.example.com', uri: '/admin/x', headers: { Authorization: `Bearer ${token(['admins'])}` } })
  t.ok(admin.allowed)
  // The verifier's own rule (examples/oidc-verifier.yaml) guards /admin even through the plain router.
  const byRule = await throughTraefikRouter(app, 'app', { method: 'GET', host: 'app.example.com', uri: '/Admin/../admin/x', headers: { Authorization: `Bearer ${token()}` } })
  t.notOk(byRule.allowed)
  if (!byRule.allowed) t.equal(byRule.status, 403)
})

t.test('Traefik: the token cookie passes authRequestHeaders; other client headers do not reach the verifier', async (t) => {
  const outcome = await throughTraefikRouter(app, 'app', {
    method: 'GET',
    host: 'app.example.com',
    uri: '/',
    headers: { Cookie: `theme=dark; ${verifierDoc.forwardAuth.tokenCookie}=${token()}`, 'X-Original-URI': '/admin' }
  })
  t.ok(outcome.allowed, 'X-Original-URI is filtered out by authRequestHeaders, the cookie carries the token')
})

// ---------------------------------------------------------------------------------------------------------
// Envoy
// ---------------------------------------------------------------------------------------------------------

const extAuthz = (): Doc => {
  const hcm = envoy.static_resources.listeners[0].filter_chains[0].filters[0].typed_config
  return hcm.http_filters.find((f: Doc) => f.name === 'envoy.filters.http.ext_authz').typed_config
}

interface Matcher { exact?: string, prefix?: string }
const matches = (patterns: Matcher[] | undefined, name: string): boolean =>
  (patterns ?? []).some((p) => (p.exact !== undefined && p.exact === name) || (p.prefix !== undefined && name.startsWith(p.prefix)))

async function envoyCheck (target: FastifyInstance, client: { method: string, path: string, host: string, headers: Headers }): Promise<Outcome> {
  const cfg = extAuthz()
  const http = cfg.http_service
  const always = ['authorization']
  const headers = Object.fromEntries(Object.entries(lower(client.headers)).filter(([k]) => always.includes(k) || matches(cfg.allowed_headers?.patterns, k)))
  headers.host = client.host
  headers['content-length'] = '0'
  const res = await target.inject({ method: client.method as 'GET', url: http.path_prefix + client.path, headers })
  const answer = responseHeaders(res)
  if (res.statusCode >= 500) {
    // An error: denied with status_on_error (403 by default), since failure_mode_allow is false.
    return { allowed: false, status: cfg.status_on_error?.code ?? 403, headers: {}, body: '' }
  }
  if (res.statusCode === 200) {
    const upstream = lower(client.headers)
    for (const [k, v] of Object.entries(answer)) {
      if (matches(http.authorization_response.allowed_upstream_headers.patterns, k)) upstream[k] = v
    }
    for (const k of (answer['x-envoy-auth-headers-to-remove'] ?? '').split(',').map((s) => s.trim()).filter(Boolean)) delete upstream[k]
    return { allowed: true, upstream }
  }
  const toClient = Object.fromEntries(Object.entries(answer).filter(([k]) =>
    ['www-authenticate', 'location', 'content-length'].includes(k) || matches(http.authorization_response.allowed_client_headers.patterns, k)))
  return { allowed: false, status: res.statusCode, headers: toClient, body: res.body }
}

t.test('the Envoy example matches the service', async (t) => {
  const cfg = extAuthz()
  t.equal(cfg.http_service.path_prefix, '/forward-auth/envoy')
  t.equal(cfg.failure_mode_allow, false, 'fail closed')
  const cluster = envoy.static_resources.clusters.find((c: Doc) => c.name === cfg.http_service.server_uri.cluster)
  t.equal(cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value, verifierDoc.server.port, 'the verifier\'s port')
  const upstream = (cfg.http_service.authorization_response.allowed_upstream_headers.patterns as Matcher[]).map((p) => p.exact).sort()
  t.same(upstream, ourHeaders, 'every identity header is set on the request to the app')
  t.ok(matches(cfg.http_service.authorization_response.allowed_client_headers.patterns, 'www-authenticate'))
  t.ok(matches(cfg.allowed_headers.patterns, 'cookie'), 'the token cookie reaches the verifier')
  t.equal(verifierDoc.forwardAuth.stripToken, true, 'the example verifier strips the token for Envoy')
})

t.test('Envoy: a good token reaches the app with the identity and without the token; the method and query are the app\'s', async (t) => {
  for (const method of ['GET', 'POST', 'DELETE', 'HEAD', 'OPTIONS']) {
    const outcome = await envoyCheck(app, {
      method,
      path: '/orders/7?group=nope&audience=x',
      host: 'app.example.com',
      headers: { authorization: `Bearer ${token()}`, 'x-auth-subject': 'root', 'x-auth-roles': 'owner', 'content-type': 'application/json' }
    })
    t.ok(outcome.allowed, method)
    if (!outcome.allowed) continue
    t.equal(outcome.upstream['x-auth-subject'], 'user-123')
    t.equal(outcome.upstream['x-auth-roles'], '', 'the client\'s roles are overwritten with the empty list')
    t.notOk('authorization' in outcome.upstream, 'x-envoy-auth-headers-to-remove: authorization')
    for (const h of ourHeaders) t.ok(h in outcome.upstream, `${h} reaches the app`)
  }
})

t.test('Envoy: 401 and 403 reach the client with WWW-Authenticate and the body; a cookie works too', async (t) => {
  const missing = await envoyCheck(app, { method: 'GET', path: '/', host: 'app.example.com', headers: {} })
  t.notOk(missing.allowed)
  if (!missing.allowed) {
    t.equal(missing.status, 401)
    t.equal(missing.headers['www-authenticate'], 'Bearer')
    t.equal(JSON.parse(missing.body).code, 'token_missing')
    t.type(missing.headers['x-request-id'], 'string')
  }
  const admin = await envoyCheck(app, { method: 'GET', path: '/admin/users', host: 'app.example.com', headers: { cookie: `id_token=${token()}` } })
  t.notOk(admin.allowed)
  if (!admin.allowed) {
    t.equal(admin.status, 403)
    t.equal(admin.headers['www-authenticate'], 'Bearer error="insufficient_scope"')
  }
  const cookie = `x=1; id_token=${token(['admins'])}`
  const adminOk = await envoyCheck(app, { method: 'GET', path: '/admin/users', host: 'app.example.com', headers: { cookie } })
  t.ok(adminOk.allowed)
  if (adminOk.allowed) t.equal(adminOk.upstream.cookie, cookie, 'the Cookie header is left to the app (its other cookies)')
})

t.test('Envoy: keys unavailable is denied either way (401 by default; a 503 becomes Envoy\'s 403)', async (t) => {
  const failing = async (): Promise<never> => { throw new Error('IdP down') }
  for (const [status, seen] of [[401, 401], [503, 403]] as const) {
    const down = await buildApp(parseConfig({
      ...verifierDoc,
      server: { logLevel: 'silent' },
      forwardAuth: { ...verifierDoc.forwardAuth, keysUnavailableStatus: status },
      issuers: [{ id: 'main', issuer: ISS, audiences: [AUD], jwksUri: 'https://idp.example.com/jwks' }]
    }, 'test', {}), { fetcher: failing as never, startVerifier: false })
    const outcome = await envoyCheck(down, { method: 'GET', path: '/', host: 'app.example.com', headers: { authorization: `Bearer ${token()}` } })
    t.notOk(outcome.allowed)
    if (!outcome.allowed) t.equal(outcome.status, seen, `keysUnavailableStatus ${status}`)
    await down.close()
  }
})

// ---------------------------------------------------------------------------------------------------------
// The example verifier configuration and Kubernetes
// ---------------------------------------------------------------------------------------------------------

t.test('examples/oidc-verifier.yaml loads as it is', async (t) => {
  const config = loadConfig({ argv: ['--config', examplePath('oidc-verifier.yaml').pathname], env: {} })
  t.equal(config.forwardAuth.tokenCookie, 'id_token')
  t.equal(config.forwardAuth.rules.length, 1)
  t.same(IDENTITY_HEADER_FIELDS.map((f) => config.forwardAuth.headers[f]).sort(), ourHeaders)
})

t.test('the Kubernetes sidecar example embeds the tested files and is consistent', async (t) => {
  const docs = parseAllDocuments(exampleText('kubernetes/sidecar.yaml')).map((d) => {
    t.same(d.errors, [], 'valid YAML')
    return d.toJS() as Doc
  })
  const configMap = docs.find((d) => d.kind === 'ConfigMap')!
  const deployment = docs.find((d) => d.kind === 'Deployment')!
  const service = docs.find((d) => d.kind === 'Service')!
  t.equal(configMap.data['oidc-verifier.yaml'], exampleText('oidc-verifier.yaml'), 'the verifier configuration is the example\'s')
  t.equal(configMap.data['oidc-verifier.conf'], exampleText('nginx/oidc-verifier.conf'), 'the nginx server is the tested one')
  t.equal(configMap.data['oidc-verifier-auth-request.conf'], exampleText('nginx/oidc-verifier-auth-request.conf'))

  const pod = deployment.spec.template.spec
  const containers = Object.fromEntries([...(pod.initContainers ?? []), ...pod.containers as Doc[]].map((c: Doc) => [c.name, c]))
  const verifier = containers['oidc-verifier']!
  t.equal(verifier.restartPolicy, 'Always', 'a native sidecar: ready before nginx starts')
  t.ok((pod.initContainers as Doc[]).includes(verifier))
  const env = Object.fromEntries((verifier.env as Doc[]).map((e) => [e.name, e.value]))
  t.equal(env.HOST, '127.0.0.1', 'the verifier listens on loopback only')
  t.equal(Number(env.PORT), verifierDoc.server.port)
  t.notOk(verifier.ports, 'no verifier port is exposed')
  const configArg = (verifier.command as string[])[(verifier.command as string[]).indexOf('--config') + 1]
  const mount = (verifier.volumeMounts as Doc[]).find((m) => m.mountPath === configArg)
  t.ok(mount, 'the --config file is mounted')
  t.equal(mount?.subPath, 'oidc-verifier.yaml')
  t.same(verifier.livenessProbe.exec.command, ['node', 'dist/healthcheck.js', '/healthz'])
  t.same(verifier.readinessProbe.exec.command, ['node', 'dist/healthcheck.js', '/readyz'])
  t.equal(verifier.securityContext.readOnlyRootFilesystem, true)

  const nginx = containers.nginx!
  const listen = /listen (\d+);/.exec(configMap.data['oidc-verifier.conf'])![1]
  t.equal(nginx.ports[0].containerPort, Number(listen), 'nginx\'s port is the server\'s listen port')
  t.equal(service.spec.ports[0].targetPort, nginx.ports[0].name, 'the Service reaches nginx only')
  t.match(configMap.data['oidc-verifier.conf'], `server 127.0.0.1:${verifierDoc.server.port};`, 'nginx asks the sidecar on loopback')
  t.ok((nginx.volumeMounts as Doc[]).some((m) => m.mountPath === '/etc/nginx/oidc-verifier-auth-request.conf'), 'the include is where nginx resolves it')
})
