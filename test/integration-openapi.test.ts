/**
 * openapi.yaml for /forward-auth, /introspect and /verify/batch: the request schemas are the routes', and
 * real responses (every status these routes give) validate against the documented ones.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { Ajv2020 } from 'ajv/dist/2020.js'
import { buildApp } from '../src/app.js'
import { IntrospectBody } from '../src/http/routes/introspect.js'
import { BatchVerifyBody } from '../src/http/routes/verify-batch.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

type Doc = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
const spec = parse(readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')) as Doc

const strip = (s: unknown): Doc => JSON.parse(JSON.stringify(s, (k, v) => (k === 'description' || k === '$id' || k === '~kind') ? undefined : v))

t.test('the request schemas are the routes\'', async (t) => {
  for (const [code, name] of [[BatchVerifyBody, 'BatchVerifyRequest'], [IntrospectBody, 'IntrospectionRequest']] as const) {
    const fromCode = strip(code)
    const fromSpec = strip(spec.components.schemas[name])
    t.same(fromCode.properties, fromSpec.properties, name)
    t.same(fromCode.additionalProperties, fromSpec.additionalProperties, name)
    t.same(fromCode.required ?? [], fromSpec.required ?? [], name)
  }
})

t.test('every identity header the service sets is documented', async (t) => {
  const documented = Object.keys(spec.components.responses.ForwardAuthAllowed.headers).map((h) => h.toLowerCase())
  const key = makeKey('ES256')
  const app = await buildApp(configFor([{ id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(key) }], { forwardAuth: { stripToken: true } }))
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'GET', url: '/forward-auth', headers: { authorization: `Bearer ${mint(key, idTokenClaims('https://idp.example.com', 'aud'))}` } })
  t.equal(res.statusCode, 200)
  for (const name of Object.keys(res.headers).filter((h) => h.startsWith('x-auth-') || h.startsWith('x-envoy-') || h === 'cache-control')) {
    t.ok(documented.includes(name), `${name} is documented`)
  }
})

t.test('real responses validate against openapi.yaml', async (t) => {
  const ISS = 'https://idp.example.com'
  const key = makeKey('ES256')
  const issuers = [{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]
  // Compiling the contract blocks the event loop for a while: no load shedding here (tested elsewhere).
  const calm = { loadShedding: { enabled: false } }
  const app = await buildApp(configFor(issuers, { ...calm, batch: { maxTokens: 2 } }))
  const fiveOhThree = await buildApp(configFor([{ id: 'down', issuer: ISS, audiences: ['aud'], jwksUri: 'https://idp.example.com/jwks' }], { ...calm, forwardAuth: { keysUnavailableStatus: 503 } }),
    { fetcher: (async () => { throw new Error('down') }) as never, startVerifier: false })
  t.teardown(() => app.close())
  t.teardown(() => fiveOhThree.close())

  const ajv = new Ajv2020({ strict: false, allErrors: true })
  ajv.addSchema({ $id: 'openapi', components: spec.components }, 'openapi')
  const resolve = (entry: Doc): Doc => typeof entry.$ref === 'string' ? spec.components.responses[entry.$ref.split('/').pop() as string] : entry

  const good = mint(key, idTokenClaims(ISS, 'aud', { groups: ['a'] }))
  const form = { 'content-type': 'application/x-www-form-urlencoded' }
  const cases: Array<{ target?: typeof app, method: 'GET' | 'POST', url: string, path: string, payload?: string | object, headers?: Record<string, string> }> = [
    { method: 'GET', url: '/forward-auth', path: '/forward-auth', headers: { authorization: `Bearer ${good}` } },
    { method: 'GET', url: '/forward-auth', path: '/forward-auth' },
    { method: 'GET', url: '/forward-auth?group=b', path: '/forward-auth', headers: { authorization: `Bearer ${good}` } },
    { method: 'GET', url: '/forward-auth?nope=1', path: '/forward-auth' },
    { target: fiveOhThree, method: 'GET', url: '/forward-auth', path: '/forward-auth', headers: { authorization: `Bearer ${good}` } },
    { method: 'GET', url: '/forward-auth/x/y?group=a', path: '/forward-auth/{path}', headers: { authorization: `Bearer ${good}` } },
    { method: 'GET', url: '/forward-auth/%zz', path: '/forward-auth/{path}' },
    { method: 'GET', url: '/forward-auth/envoy/x/y?z=1', path: '/forward-auth/envoy/{path}', headers: { authorization: `Bearer ${good}` } },
    { method: 'GET', url: '/forward-auth/envoy/x?nope=1', path: '/forward-auth/envoy/{path}' },
    { method: 'POST', url: '/introspect', path: '/introspect', payload: `token=${good}`, headers: form },
    { method: 'POST', url: '/introspect', path: '/introspect', payload: 'token=bad', headers: form },
    { method: 'POST', url: '/introspect', path: '/introspect', payload: 'x=1', headers: form },
    { method: 'POST', url: '/introspect', path: '/introspect', payload: { token: good } },
    { method: 'POST', url: '/introspect', path: '/introspect', payload: `token=${'a'.repeat(70000)}`, headers: form },
    { target: fiveOhThree, method: 'POST', url: '/introspect', path: '/introspect', payload: `token=${good}`, headers: form },
    { method: 'POST', url: '/verify/batch', path: '/verify/batch', payload: { tokens: [good, 'bad'] } },
    { target: fiveOhThree, method: 'POST', url: '/verify/batch', path: '/verify/batch', payload: { tokens: [good] } },
    { method: 'POST', url: '/verify/batch', path: '/verify/batch', payload: { tokens: [good, good, good] } },
    { method: 'POST', url: '/verify/batch', path: '/verify/batch', payload: 'x', headers: { 'content-type': 'text/plain' } }
  ]
  const seen = new Set<string>()
  for (const c of cases) {
    const res = await (c.target ?? app).inject({ method: c.method, url: c.url, payload: c.payload as never, headers: c.headers })
    seen.add(`${c.path} ${res.statusCode}`)
    const op = spec.paths[c.path]?.[c.method.toLowerCase()]
    const entry = op?.responses[String(res.statusCode)] as Doc | undefined
    t.ok(entry, `${c.method} ${c.path} documents ${res.statusCode}`)
    if (entry === undefined) continue
    const content = resolve(entry).content?.['application/json']
    if (content === undefined) {
      t.equal(res.body, '', `${c.path} ${res.statusCode}: no body, as documented`)
      continue
    }
    const schema = content.schema as Doc
    const validate = typeof schema.$ref === 'string' ? ajv.getSchema(`openapi${schema.$ref}`) : ajv.compile(schema)
    t.ok(validate?.(res.json()), `${c.method} ${c.url.slice(0, 40)} ${res.statusCode}: ${JSON.stringify(validate?.errors ?? [])}`)
  }
  t.ok(seen.has('/forward-auth 503') && seen.has('/introspect 413') && seen.has('/verify/batch 400'), [...seen].join(', '))
})
