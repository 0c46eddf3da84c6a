/**
 * The shipped nginx example with a user whose identity headers are larger than one memory page: a token that
 * nginx accepts from the client (under its 8 KiB header line limit) must not become a 500 because the
 * verifier's answer does not fit nginx's default proxy_buffer_size (4 KiB) in the auth location.
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
const verifier: FastifyInstance = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }]))
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
