import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { VerificationError } from '../../errors.js'
import { bearerToken, queryCarriesToken } from '../bearer.js'
import { ErrorResponseSchema, VerifiedIdentitySchema, VerifyBodyOrNothing } from '../schemas.js'
import type { RequestChecks } from '../../core/verifier.js'

export interface VerifyRouteOptions {
  rateLimit: { max: number, timeWindow: number } | false
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
    const body = request.body ?? {}
    const headerToken = bearerToken(request.headers.authorization)
    if (body.token !== undefined && headerToken !== undefined) throw new VerificationError('token_ambiguous')
    const token = body.token ?? headerToken
    if (token === undefined) throw new VerificationError('token_missing')
    if (body.audience !== undefined && !fastify.verifier.isConfiguredAudience(body.audience)) {
      throw new VerificationError('request_invalid')
    }
    const checks: RequestChecks = {}
    if (body.nonce !== undefined) checks.nonce = body.nonce
    if (body.maxAge !== undefined) checks.maxAge = body.maxAge
    if (body.accessToken !== undefined) checks.accessToken = body.accessToken
    if (body.audience !== undefined) checks.audience = body.audience
    const identity = await fastify.verifier.verify(token, checks)
    request.outcome = { issuer: identity.issuer.id }
    return identity
  })
}
