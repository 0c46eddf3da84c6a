/**
 * A large JSON body nested deeper than any request schema is refused before JSON.parse builds it (a megabyte of
 * "[" is half a million arrays): 400 request_invalid, and JSON.parse never sees the body.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

const es = makeKey('ES256')
const app = await buildApp(configFor([{ id: 'idp', issuer: 'https://idp.example.com', audiences: ['c'], jwks: jwksOf(es) }], { batch: { maxBodyBytes: 1_000_000 } }))
t.teardown(() => app.close())

t.test('deep and large: refused unparsed', async (t) => {
  const depth = 200_000
  const body = `{"tokens":${'['.repeat(depth)}${']'.repeat(depth)}}`
  const parse = JSON.parse
  let parsedLarge = 0
  JSON.parse = ((text: string, reviver?: never) => {
    if (typeof text === 'string' && text.length > 100_000) parsedLarge++
    return parse(text, reviver)
  }) as typeof JSON.parse
  t.teardown(() => { JSON.parse = parse })
  const res = await app.inject({ method: 'POST', url: '/verify/batch', headers: { 'content-type': 'application/json' }, payload: body })
  JSON.parse = parse
  t.equal(res.statusCode, 400)
  t.equal(res.json().code, 'request_invalid')
  t.equal(parsedLarge, 0, 'JSON.parse never saw the body')
})
