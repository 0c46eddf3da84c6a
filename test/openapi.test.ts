/**
 * openapi.yaml is the public contract: its error codes equal the code table, its paths equal the routes,
 * its request schema equals the route's, and real responses from every route validate against it.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { buildApp } from '../src/app.js'
import { ALL_ERROR_CODES } from '../src/errors.js'
import { VerifyBody } from '../src/http/schemas.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

interface OpenApi { paths: Record<string, Record<string, { responses: Record<string, unknown> }>>, components: { schemas: Record<string, Record<string, unknown>> } }
const spec = parse(readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')) as OpenApi

t.test('error codes in openapi.yaml equal the code table', async (t) => {
  const enumCodes = spec.components.schemas.ErrorCode?.enum as string[]
  t.same([...enumCodes].sort(), [...ALL_ERROR_CODES].sort())
  const described = String(spec.components.schemas.ErrorCode?.description)
  for (const code of ALL_ERROR_CODES) t.match(described, code, `${code} is described`)
})

t.test('the request schema is the route\'s', async (t) => {
  const strip = (s: unknown): unknown => JSON.parse(JSON.stringify(s, (k, v) => (k === 'description' || k === '$id' || k === '~kind') ? undefined : v))
  const fromCode = strip(VerifyBody) as Record<string, unknown>
  const fromSpec = strip(spec.components.schemas.VerifyRequest) as Record<string, unknown>
  t.same(fromCode.properties, fromSpec.properties)
  t.equal(fromCode.additionalProperties, fromSpec.additionalProperties)
  t.same(fromCode.required ?? [], fromSpec.required ?? [])
})

const key = makeKey('ES256')
const ISS = 'https://idp.example.com'
const issuers = [{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]
// Revocation is off by default; its routes are part of the contract too.
const app = await buildApp(configFor(issuers, { revocation: { enabled: true } }))
const limited = await buildApp(configFor(issuers, { rateLimit: { max: 1, windowSeconds: 60 } }))
t.teardown(() => app.close())
t.teardown(() => limited.close())

t.test('every route is in openapi.yaml and every path there is served', async (t) => {
  await app.ready()
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const method of Object.keys(methods)) {
      const res = await app.inject({ method: method.toUpperCase() as 'GET', url: path, payload: method === 'post' ? {} : undefined })
      t.not(res.statusCode, 404, `${method} ${path} is served`)
    }
  }
  const tree = app.printRoutes({ commonPrefix: false, method: 'GET' }) + app.printRoutes({ commonPrefix: false, method: 'POST' })
  // printRoutes nests a route under its parent ("/verify", then "/batch" one level down): rebuild full paths
  // from the depth; a wildcard route ("*") is documented with a path parameter ("/forward-auth/{path}").
  const documented = Object.keys(spec.paths).map((p) => p.replace(/\{[^}]+\}/g, '*'))
  const parents: string[] = []
  for (const line of tree.split('\n')) {
    const m = /^([│ ]*)[└├]── (\S+)/.exec(line)
    if (m === null) continue
    const depth = (m[1] as string).length / 4
    const parent = parents[depth - 1] ?? ''
    const segment = m[2] as string
    const path = segment === '*' && !parent.endsWith('/') ? `${parent}/*` : parent + segment
    parents[depth] = path
    parents.length = depth + 1
    if (path !== '/' && path !== '*') t.ok(documented.includes(path), `${path} is documented`)
  }
})

t.test('real responses validate against openapi.yaml', async (t) => {
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  ajv.addSchema({ $id: 'openapi', components: spec.components }, 'openapi')
  const check = (path: string, method: string, status: number, body: unknown): void => {
    const op = spec.paths[path]?.[method]
    const entry = (op?.responses[String(status)] ?? op?.responses.default) as Record<string, unknown> | undefined
    t.ok(entry, `${method} ${path} documents ${status}`)
    if (entry === undefined) return
    const resolved = typeof entry.$ref === 'string'
      ? (spec.components as unknown as Record<string, Record<string, unknown>>).responses?.[(entry.$ref).split('/').pop() as string] as Record<string, unknown>
      : entry
    const schema = ((resolved.content as Record<string, { schema: Record<string, unknown> }>)['application/json'])?.schema as Record<string, unknown>
    const ref = typeof schema.$ref === 'string' ? `openapi${schema.$ref}` : undefined
    const validate = ref === undefined ? ajv.compile(schema) : ajv.getSchema(ref)
    t.ok(validate?.(body), `${method} ${path} ${status}: ${JSON.stringify(validate?.errors ?? [])}`)
  }
  const cases: Array<{ method: 'GET' | 'POST', url: string, path: string, payload?: unknown, headers?: Record<string, string> }> = [
    { method: 'GET', url: '/healthz', path: '/healthz' },
    { method: 'GET', url: '/readyz', path: '/readyz' },
    { method: 'POST', url: '/verify', path: '/verify', payload: { token: mint(key, idTokenClaims(ISS, 'aud')) } },
    { method: 'POST', url: '/verify', path: '/verify', payload: { token: 'garbage' } },
    { method: 'POST', url: '/verify', path: '/verify', payload: { token: 5 } },
    { method: 'POST', url: '/verify', path: '/verify', payload: 'x=1', headers: { 'content-type': 'text/plain' } },
    { method: 'POST', url: '/verify', path: '/verify', payload: { token: 'a'.repeat(70000) } },
    { method: 'POST', url: '/verify', path: '/verify', payload: { token: 'x' } }
  ]
  const seen = new Set<number>()
  for (const c of cases) {
    const target = c === cases.at(-1) ? limited : app
    if (target === limited) await limited.inject({ method: 'POST', url: '/verify', payload: { token: 'x' } })
    const res = await target.inject({ method: c.method, url: c.url, payload: c.payload as never, headers: c.headers })
    seen.add(res.statusCode)
    check(c.path, c.method.toLowerCase(), res.statusCode, res.json())
  }
  t.ok(seen.has(200) && seen.has(400) && seen.has(401) && seen.has(413) && seen.has(415) && seen.has(429), `statuses covered: ${[...seen].join(',')}`)
})
