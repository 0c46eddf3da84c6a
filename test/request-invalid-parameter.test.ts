/**
 * A 400 request_invalid names the part of the request at fault (`parameter`): body.token for a token that is no
 * string, query.audience for a check written in the query, body.audience for an audience no issuer has,
 * header.authorization for another scheme, body for a body that cannot be read. Only names the route defines
 * are repeated: a field the request made up is never echoed (the answer says body alone). The request's log
 * line carries the same field.
 */
import t from 'tap'
import { Writable } from 'node:stream'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { loggerOptions } from '../src/logger.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')
const lines: Array<Record<string, unknown>> = []
const sink = new Writable({ write (chunk: Buffer, _enc, cb) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); cb() } })
const config = configFor([{ id: 'main', issuer: ISS, audiences: ['client-a', 'client-b'], jwks: jwksOf(key) }], { server: { logLevel: 'info' } })
const app = await buildApp(config, { loggerInstance: pino(loggerOptions(config.server.logLevel), sink) })
t.teardown(() => app.close())

const FORM = { 'content-type': 'application/x-www-form-urlencoded' }
const token = mint(key, idTokenClaims(ISS, 'client-a'))

interface Case { name: string, method?: 'POST' | 'GET', url: string, payload?: string | Record<string, unknown>, headers?: Record<string, string>, parameter: string }

const cases: Case[] = [
  { name: 'a token that is no string', url: '/verify', payload: { token: 5 }, parameter: 'body.token' },
  { name: 'a nonce that is no string', url: '/verify', payload: { token, nonce: ['n'] }, parameter: 'body.nonce' },
  { name: 'a mode the route does not know', url: '/verify', payload: { token, mode: 'saml' }, parameter: 'body.mode' },
  { name: 'an unconfigured audience', url: '/verify', payload: { token, audience: 'client-z' }, parameter: 'body.audience' },
  { name: 'a check in the query', url: '/verify?maxAge=60', payload: { token }, parameter: 'query.maxAge' },
  { name: 'the audience in the query', url: '/verify?x=1&audience=client-b', payload: { token }, parameter: 'query.audience' },
  { name: 'another Authorization scheme', url: '/verify', headers: { authorization: 'Basic dXNlcjpwYXNz' }, parameter: 'header.authorization' },
  { name: 'a body that is no JSON', url: '/verify', payload: '{"token": ', headers: { 'content-type': 'application/json' }, parameter: 'body' },
  { name: 'a batch item that is no string', url: '/verify/batch', payload: { tokens: [token, 7] }, parameter: 'body.tokens' },
  { name: 'a batch without tokens', url: '/verify/batch', payload: { mode: 'id_token' }, parameter: 'body.tokens' },
  { name: 'an introspection asking for a nonce', url: '/introspect', payload: `token=${token}&nonce=n`, headers: FORM, parameter: 'body.nonce' },
  { name: 'an introspection with a repeated field', url: '/introspect', payload: `token=${token}&token=${token}`, headers: FORM, parameter: 'body' },
  { name: 'an introspection for an unconfigured audience', url: '/introspect', payload: `token=${token}&audience=client-z`, headers: FORM, parameter: 'body.audience' }
]

t.test('each refusal names its parameter, in the answer and the log line', async (t) => {
  for (const c of cases) {
    lines.length = 0
    const res = await app.inject({ method: c.method ?? 'POST', url: c.url, payload: c.payload, headers: c.headers })
    const body = res.json()
    t.same([res.statusCode, body.code, body.parameter], [400, 'request_invalid', c.parameter], c.name)
    t.match(body.hint, /"parameter" field/, `${c.name}: the hint explains the field`)
    const line = lines.find((l) => l.requestId === body.requestId || l.reqId === body.requestId)
    t.equal(line?.parameter, c.parameter, `${c.name}: the log line names it`)
  }
})

t.test('a field the request made up is never repeated', async (t) => {
  const made = ['sneaky<script>', 'a~1b', '__proto__x', 'x'.repeat(200)]
  for (const name of made) {
    const res = await app.inject({ method: 'POST', url: '/verify', payload: `{"token": "${token}", ${JSON.stringify(name)}: 1}`, headers: { 'content-type': 'application/json' } })
    const body = res.json()
    t.same([res.statusCode, body.code, body.parameter], [400, 'request_invalid', 'body'], name.slice(0, 20))
    t.notOk(res.body.includes(name), 'the name is not in the answer')
  }
  // An unknown field whose value is of a declared field's type, in a union body (a body or nothing).
  const odd = await app.inject({ method: 'POST', url: '/verify', payload: { token, tokenn: 'x' } })
  t.same([odd.statusCode, odd.json().parameter], [400, 'body'])
})

t.test('other refusals carry no parameter', async (t) => {
  const missing = await app.inject({ method: 'POST', url: '/verify', payload: {} })
  t.same([missing.statusCode, missing.json().code], [400, 'token_missing'])
  t.notOk('parameter' in missing.json())
  const bad = await app.inject({ method: 'POST', url: '/verify', payload: { token: token + 'x' } })
  t.equal(bad.statusCode, 401)
  t.notOk('parameter' in bad.json())
})

t.test('fromFrameworkError: which parameter a schema failure names, and which framework errors are request_invalid', async (t) => {
  const { fromFrameworkError } = await import('../src/http/error-reply.js')
  const schema = { body: { anyOf: [{ oneOf: [{ allOf: [{ properties: { deep: {} } }] }] }, { properties: { token: {} } }, { type: 'null' }] } }
  const named = (validation: unknown[], context = 'body'): unknown => fromFrameworkError({ validation, validationContext: context }, schema).details.parameter
  t.equal(named([{ instancePath: '/token', keyword: 'type' }]), 'body.token')
  t.equal(named([{ instancePath: '/deep/0', keyword: 'type' }]), 'body.deep', 'a name declared through nested anyOf/oneOf/allOf')
  // A schema that lets undeclared members through (additionalProperties: a schema) fails at their path: never echoed.
  t.equal(named([{ instancePath: '/made<up>', keyword: 'type' }]), 'body', 'an undeclared member is not repeated')
  t.equal(named([{ instancePath: '/made<up>', keyword: 'type' }, { instancePath: '', keyword: 'required', params: { missingProperty: 'token' } }]), 'body.token', 'the first declared name wins')
  t.equal(named([{ instancePath: '/token', keyword: 'type' }], 'cookies'), undefined, 'a part of the request with no name here: no parameter')
  const e500 = fromFrameworkError({ code: 'FST_ERR_SOMETHING', statusCode: 500 })
  t.same([e500.code, e500.details.parameter], ['internal_error', undefined], 'a 500 from the framework is no request error')
  const e499 = fromFrameworkError({ code: 'FST_ERR_CTP_EMPTY_JSON_BODY', statusCode: 499 })
  t.same([e499.code, e499.details.parameter], ['request_invalid', 'body'])
  const e400 = fromFrameworkError({ code: 'FST_ERR_OTHER', statusCode: 400 })
  t.same([e400.code, e400.details.parameter], ['request_invalid', undefined])
})
