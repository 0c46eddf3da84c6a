/**
 * The shipped nginx example with a user whose identity headers are larger than one memory page: a token that
 * nginx accepts from the client (under its 8 KiB header line limit) must not become a 500 because the
 * verifier's answer does not fit nginx's default proxy_buffer_size (4 KiB) in the auth location. The example
 * says its 32k holds the identity of any such token with x-auth-identity on and every character percent-encoded
 * (under the default claim mapping): the second test is that token.
 */
import t from 'tap'
import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { findNginx, nginxExampleInFront, statusOf } from './helpers/nginx.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')

findNginx()
const verifier: FastifyInstance = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }], { forwardAuth: { identityHeader: true } }))
const { nginx, upstream } = await nginxExampleInFront(t, verifier)

t.test('a user in 110 groups (Entra object ids): nginx takes the token, and the app gets the identity', async (t) => {
  const groups = Array.from({ length: 110 }, () => randomUUID())
  const token = mint(key, idTokenClaims(ISS, AUD, { groups }))
  t.ok(token.length + 'Authorization: Bearer '.length < 8192, `the token (${token.length} bytes) fits nginx's default client header line`)
  const status = await statusOf(nginx.port, 'GET', '/orders', { authorization: `Bearer ${token}` })
  t.equal(status, 200, 'not a 500 from "upstream sent too big header"')
  if (status !== 200) t.comment(nginx.errorLog().split('\n').filter((l) => l.includes('too big')).join('\n'))
  else t.equal(String(upstream.received.at(-1)!.headers['x-auth-groups']).split(',').length, 110)
})

t.test('the largest answer a token under the client header line can bring: a name of three-byte characters, each percent-encoded (9 bytes) and again in x-auth-identity', async (t) => {
  const line = (token: string): number => `Authorization: Bearer ${token}`.length
  // U+0800: three bytes of UTF-8, four base64url characters in the token, "%E0%A0%80" in x-auth-name.
  let name = ''
  let token = mint(key, idTokenClaims(ISS, AUD, { name }))
  for (let step = 1024; step >= 1; step = Math.floor(step / 2)) {
    for (;;) {
      const longer = mint(key, idTokenClaims(ISS, AUD, { name: name + '\u0800'.repeat(step) }))
      if (line(longer) >= 8190) break
      name += '\u0800'.repeat(step)
      token = longer
    }
  }
  t.ok(name.length > 1900, `the name has ${name.length} characters; the token line is ${line(token)} bytes`)
  const answer = await verifier.inject({ method: 'GET', url: '/forward-auth', headers: { authorization: `Bearer ${token}` } })
  t.equal(answer.statusCode, 200)
  const answerBytes = Object.entries(answer.headers).reduce((n, [k, v]) => n + k.length + String(v).length + 4, 0)
  t.ok(answerBytes > 24 * 1024, `the verifier's answer has ${answerBytes} bytes of headers (more than 24 KiB: a smaller buffer would fail here)`)
  const status = await statusOf(nginx.port, 'GET', '/orders', { authorization: `Bearer ${token}` })
  t.equal(status, 200, 'not a 500 from "upstream sent too big header"')
  if (status !== 200) t.comment(nginx.errorLog().split('\n').filter((l) => l.includes('too big')).join('\n'))
  else t.equal(decodeURIComponent(String(upstream.received.at(-1)!.headers['x-auth-name'])), name, 'the app gets the name whole')
})
