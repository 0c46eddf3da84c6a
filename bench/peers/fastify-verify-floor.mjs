// Floor target: fastify-noop plus exactly one raw signature check per request, as lib/crypto-limit.mjs does
// it (node:crypto.verify on a KeyObject imported once; ES256's R || S rewritten to DER). It reads the token,
// decodes its header for the kid, checks the signature and answers the baseline's constant: no claim checks,
// no cache, no normalization, no logging, no metrics. Its srv µs/req is what "the framework plus one
// signature check" costs when measured over HTTP at a verifier's request rate, the floor under any verifier.
import { createPublicKey, verify } from 'node:crypto'
import Fastify from 'fastify'
import { p1363ToDer } from '../../dist/core/ecdsa-der.js'
import { tokenFromRequest } from './token-from-request.mjs'

const [port, , jwksUri, , alg] = process.argv.slice(2)
const DIGEST = { RS256: 'sha256', ES256: 'sha256', EdDSA: null }
const answer = { sub: 'baseline', iss: 'baseline', aud: 'baseline', email: 'baseline@example.com', name: 'Baseline' }

// The keys, fetched once at start.
const jwks = await (await fetch(jwksUri)).json()
const keys = new Map(jwks.keys.map((jwk) => [jwk.kid, createPublicKey({ key: jwk, format: 'jwk' })]))

const app = Fastify({ logger: false })
app.post('/verify', async (request, reply) => {
  const token = tokenFromRequest(request.headers, request.body)
  if (token === undefined) return reply.code(400).send({ error: 'token_missing' })
  const first = token.indexOf('.')
  const last = token.lastIndexOf('.')
  let header
  try { header = JSON.parse(Buffer.from(token.slice(0, first), 'base64url').toString()) } catch { header = undefined }
  const key = keys.get(header?.kid)
  if (key === undefined || header.alg !== alg) return reply.code(401).send({ error: 'invalid_token' })
  const raw = Buffer.from(token.slice(last + 1), 'base64url')
  const signature = alg !== 'ES256' ? raw : raw.length === 64 ? p1363ToDer(raw, 32) : undefined
  if (signature === undefined || !verify(DIGEST[alg], Buffer.from(token.slice(0, last)), key, signature)) {
    return reply.code(401).send({ error: 'invalid_token' })
  }
  return answer
})
await app.listen({ host: '127.0.0.1', port: Number(port) })
// Exit rather than die on SIGTERM, so that `node --cpu-prof` (bench/profile.mjs) can write its profile.
process.once('SIGTERM', () => process.exit(0))
