/**
 * Route schemas compiled once per process (src/http/schema-compilers.ts): a second instance takes the functions
 * the first compiled for the same schema objects, and only for the same shared schemas and compiler options.
 */
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Ajv } from 'ajv'
import { schemaCompilations, sharedSchemaCompilers } from '../src/http/schema-compilers.js'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'

const Body = { type: 'object', required: ['n'], properties: { n: { type: 'integer' } }, additionalProperties: false }
const Answer = { type: 'object', properties: { n: { type: 'integer' }, extra: { type: 'string' } }, additionalProperties: false }

interface Compiled { validate: unknown, serialize: unknown }

/** An instance with one route under the given schemas; its handler hands out the route's compiled functions. */
async function instance (t: Test, options: FastifyServerOptions, body: object = Body, answer: object = Answer, seen: Compiled[] = []): Promise<FastifyInstance> {
  const app = Fastify({ ...options, schemaController: sharedSchemaCompilers })
  app.post('/x', { schema: { body, response: { 200: answer } } }, async (request, reply) => {
    seen.push({ validate: request.getValidationFunction('body'), serialize: reply.getSerializationFunction('200') })
    return request.body
  })
  await app.ready()
  t.teardown(async () => { await app.close() })
  return app
}

async function routeFunctions (t: Test, options: FastifyServerOptions, body: object = Body, answer: object = Answer): Promise<{ app: FastifyInstance, compiled: Compiled }> {
  const seen: Compiled[] = []
  const app = await instance(t, options, body, answer, seen)
  const res = await app.inject({ method: 'POST', url: '/x', payload: { n: 2 } })
  t.equal(res.statusCode, 200, res.body)
  t.equal(seen.length, 1)
  t.type(seen[0]?.validate, 'function')
  t.type(seen[0]?.serialize, 'function')
  return { app, compiled: seen[0] as Compiled }
}

t.test('a second instance takes the functions compiled for the same schema objects, and they still check', async (t) => {
  const a = await routeFunctions(t, {})
  const b = await routeFunctions(t, {})
  t.equal(b.compiled.validate, a.compiled.validate, 'the same validator')
  t.equal(b.compiled.serialize, a.compiled.serialize, 'the same serializer')
  for (const app of [a.app, b.app]) {
    const bad = await app.inject({ method: 'POST', url: '/x', payload: { n: 'one' } })
    t.equal(bad.statusCode, 400, 'a body the schema refuses is refused by either instance')
    t.match(bad.json(), { message: /body\/n must be integer/ })
    const extra = await app.inject({ method: 'POST', url: '/x', payload: { n: 2, x: 1 } })
    t.same(extra.json(), { n: 2 }, 'a member the schema does not name is removed (removeAdditional, Fastify\'s default)')
    const ok = await app.inject({ method: 'POST', url: '/x', payload: { n: 3 } })
    t.same(ok.json(), { n: 3 })
  }
})

t.test('a schema made anew (equal content, another object) is compiled again, by its instance', async (t) => {
  const a = await routeFunctions(t, {}, structuredClone(Body), structuredClone(Answer))
  const b = await routeFunctions(t, {}, structuredClone(Body), structuredClone(Answer))
  t.not(b.compiled.validate, a.compiled.validate)
  t.not(b.compiled.serialize, a.compiled.serialize)
})

t.test('another ajv configuration compiles its own validator, and it is the one used', async (t) => {
  const strict = await routeFunctions(t, { ajv: { customOptions: { coerceTypes: false } } })
  const coercing = await routeFunctions(t, { ajv: { customOptions: { coerceTypes: true } } })
  t.not(coercing.compiled.validate, strict.compiled.validate)
  const again = await routeFunctions(t, { ajv: { customOptions: { coerceTypes: true } } })
  t.equal(again.compiled.validate, coercing.compiled.validate, 'the same configuration shares it again')
  t.equal((await strict.app.inject({ method: 'POST', url: '/x', payload: { n: '5' } })).statusCode, 400)
  const coerced = await coercing.app.inject({ method: 'POST', url: '/x', payload: { n: '5' } })
  t.same(coerced.json(), { n: 5 }, 'coerced by the coercing instance only')
})

t.test('shared schemas (addSchema) are part of what is compared', async (t) => {
  const RefBody = { type: 'object', properties: { n: { $ref: 'n#' } } }
  const build = async (n: object): Promise<{ app: FastifyInstance, validate: unknown }> => {
    const seen: Compiled[] = []
    const app = Fastify({ schemaController: sharedSchemaCompilers })
    app.addSchema({ $id: 'n', ...n })
    app.post('/x', { schema: { body: RefBody } }, async (request) => {
      seen.push({ validate: request.getValidationFunction('body'), serialize: undefined })
      return { ok: true }
    })
    await app.ready()
    t.teardown(async () => { await app.close() })
    await app.inject({ method: 'POST', url: '/x', payload: { n: 1 } })
    return { app, validate: seen[0]?.validate }
  }
  const integers = await build({ type: 'integer' })
  const strings = await build({ type: 'string' })
  t.not(strings.validate, undefined)
  t.not(strings.validate, integers.validate)
  t.equal((await integers.app.inject({ method: 'POST', url: '/x', payload: { n: 1 } })).statusCode, 200)
  t.equal((await integers.app.inject({ method: 'POST', url: '/x', payload: { n: 'a' } })).statusCode, 400)
  t.equal((await strings.app.inject({ method: 'POST', url: '/x', payload: { n: 'a' } })).statusCode, 200)
  t.equal((await strings.app.inject({ method: 'POST', url: '/x', payload: { n: {} } })).statusCode, 400)
  t.equal((await integers.app.inject({ method: 'POST', url: '/x', payload: { n: {} } })).statusCode, 400)
})

t.test('ajv plugins (functions, which cannot be compared) leave each instance its own compilers', async (t) => {
  let applied = 0
  const plugin = (ajv: Ajv): Ajv => {
    applied++
    return ajv.addKeyword({ keyword: 'even', type: 'integer', validate: (_schema: unknown, data: number) => data % 2 === 0 })
  }
  const EvenBody = { type: 'object', properties: { n: { type: 'integer', even: true } } }
  const a = await routeFunctions(t, { ajv: { plugins: [plugin] } }, EvenBody)
  const b = await routeFunctions(t, { ajv: { plugins: [plugin] } }, EvenBody)
  t.not(b.compiled.validate, a.compiled.validate)
  t.equal(applied, 2, 'each instance made its own ajv with the plugin')
  t.equal((await b.app.inject({ method: 'POST', url: '/x', payload: { n: 3 } })).statusCode, 400, 'and the plugin is in force')
})

t.test('options that JSON cannot say whole (a format given as a RegExp) leave each instance its own compilers', async (t) => {
  const CodeBody = { type: 'object', properties: { n: { type: 'integer' }, code: { type: 'string', format: 'code' } } }
  const as = await routeFunctions(t, { ajv: { customOptions: { formats: { code: /^a+$/ } } } }, CodeBody)
  const bs = await routeFunctions(t, { ajv: { customOptions: { formats: { code: /^b+$/ } } } }, CodeBody)
  t.not(bs.compiled.validate, as.compiled.validate, 'JSON.stringify writes both formats as {}: not taken as equal')
  t.equal((await as.app.inject({ method: 'POST', url: '/x', payload: { code: 'aaa' } })).statusCode, 200)
  t.equal((await as.app.inject({ method: 'POST', url: '/x', payload: { code: 'bbb' } })).statusCode, 400)
  t.equal((await bs.app.inject({ method: 'POST', url: '/x', payload: { code: 'bbb' } })).statusCode, 200)
  t.equal((await bs.app.inject({ method: 'POST', url: '/x', payload: { code: 'aaa' } })).statusCode, 400)
})

t.test('serializer options are part of what is compared', async (t) => {
  const Rounded = { type: 'object', properties: { n: { type: 'integer' } } }
  const floor = await routeFunctions(t, { serializerOpts: { rounding: 'floor' } }, Body, Rounded)
  const ceil = await routeFunctions(t, { serializerOpts: { rounding: 'ceil' } }, Body, Rounded)
  t.not(ceil.compiled.serialize, floor.compiled.serialize)
  t.equal((floor.compiled.serialize as (v: unknown) => string)({ n: 1.5 }), '{"n":1}')
  t.equal((ceil.compiled.serialize as (v: unknown) => string)({ n: 1.5 }), '{"n":2}')
})

t.test('the service: a second app compiles none of its route schemas again and answers as the first', async (t) => {
  const config = configFor([{ id: 'a', issuer: 'https://idp.example', audiences: ['x'], jwksUri: 'https://idp.example/jwks' }])
  const answers: string[] = []
  const compiled: number[] = []
  for (let i = 0; i < 2; i++) {
    const app = await buildApp(config)
    await app.ready()
    compiled.push(schemaCompilations())
    t.teardown(async () => { await app.close() })
    const bad = await app.inject({ method: 'POST', url: '/verify', payload: { token: 5 } })
    t.equal(bad.statusCode, 400)
    const health = await app.inject({ method: 'GET', url: '/healthz' })
    t.same(health.json(), { status: 'ok' })
    answers.push(JSON.stringify({ ...bad.json(), requestId: undefined }))
  }
  t.ok((compiled[0] ?? 0) > 0)
  t.equal(compiled[1], compiled[0], 'the second app compiled nothing')
  t.equal(answers[1], answers[0], 'the same refusal from the shared validator')
})
