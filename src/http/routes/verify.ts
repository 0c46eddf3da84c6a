import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { VerificationError } from '../../errors.js'
import { bearerToken, queryCarriesToken } from '../bearer.js'
import { requestChecks } from '../request-checks.js'
import { ErrorResponseSchema, VerifiedIdentitySchema, VerifyBodyOrNothing } from '../schemas.js'

/** A number, or per request (a caller's own limit). */
type PerRequest = number | ((request: FastifyRequest, key: string) => number)

export interface VerifyRouteOptions {
  rateLimit: { max: PerRequest, timeWindow: PerRequest } | false
}

export const verifyRoute: FastifyPluginAsync<VerifyRouteOptions> = async (fastify, opts) => {
  fastify.withTypeProvider<TypeBoxTypeProvider>().post('/verify', {
    config: opts.rateLimit === false ? {} : { rateLimit: opts.rateLimit },
    schema: {
      body: VerifyBodyOrNothing,
      response: {
        200: VerifiedIdentitySchema,
        '4xx': ErrorResponseSchema,
        '5xx': ErrorResponseSchema
      }
    }
  }, async (request) => {
    if (queryCarriesToken(request.query)) throw new VerificationError('token_in_query')
    // Read once: a configuration reload may swap the Verifier while this request runs.
    const verifier = fastify.verifier
    const body = request.body ?? {}
    const headerToken = bearerToken(request.headers.authorization)
    if (body.token !== undefined && headerToken !== undefined) throw new VerificationError('token_ambiguous')
    const token = body.token ?? headerToken
    if (token === undefined) throw new VerificationError('token_missing')
    const checks = requestChecks(verifier, { nonce: body.nonce, maxAge: body.maxAge, accessToken: body.accessToken, audience: body.audience, mode: body.mode })
    const identity = await verifier.verify(token, checks)
    request.outcome = { issuer: identity.issuer.id }
    return identity
  })
}
