// Peer target: Fastify 5 + jose 6. The remote key set is created once per process (jose keeps the JWKS and
// the imported keys); every request runs jwtVerify.
import Fastify from 'fastify'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { tokenFromRequest } from './token-from-request.mjs'

const [port, issuer, jwksUri, audience, alg] = process.argv.slice(2)
const keys = createRemoteJWKSet(new URL(jwksUri))
const expected = { issuer, audience, algorithms: [alg] }

const app = Fastify({ logger: false })
app.post('/verify', async (request, reply) => {
  const token = tokenFromRequest(request.headers, request.body)
  if (token === undefined) return reply.code(400).send({ error: 'token_missing' })
  try {
    return (await jwtVerify(token, keys, expected)).payload
  } catch (err) {
    return reply.code(401).send({ error: 'invalid_token', code: err.code ?? 'unknown' })
  }
})
await app.listen({ host: '127.0.0.1', port: Number(port) })
// Exit rather than die on SIGTERM, so that `node --cpu-prof` (bench/profile.mjs) can write its profile.
process.once('SIGTERM', () => process.exit(0))
