// Peer target: the Fastify ecosystem's own pieces. get-jwks fetches the JWKS and hands @fastify/jwt the
// public key (getPublicKey, as in its README); fast-jwt's cache (`cache: true`, 1,000 entries) keeps
// verified tokens.
import Fastify from 'fastify'
import fastifyJwt from '@fastify/jwt'
import buildGetJwks from 'get-jwks'
import { tokenFromRequest } from './token-from-request.mjs'

const [port, issuer, jwksUri, audience, alg] = process.argv.slice(2)
const getJwks = buildGetJwks({ issuersWhitelist: [issuer], jwksPath: new URL(jwksUri).pathname })
const extractToken = (request) => tokenFromRequest(request.headers, request.body)

const app = Fastify({ logger: false })
await app.register(fastifyJwt, {
  decode: { complete: true },
  secret: (_request, token) => getJwks.getPublicKey({ domain: token.payload.iss, kid: token.header.kid, alg: token.header.alg }),
  verify: { algorithms: [alg], allowedIss: issuer, allowedAud: audience, cache: true, extractToken }
})
app.post('/verify', async (request, reply) => {
  if (extractToken(request) === undefined) return reply.code(400).send({ error: 'token_missing' })
  try {
    return await request.jwtVerify()
  } catch (err) {
    return reply.code(401).send({ error: 'invalid_token', code: err.code ?? 'unknown' })
  }
})
await app.listen({ host: '127.0.0.1', port: Number(port) })
// Exit rather than die on SIGTERM, so that `node --cpu-prof` (bench/profile.mjs) can write its profile.
process.once('SIGTERM', () => process.exit(0))
