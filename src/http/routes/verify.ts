import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { CallerLimitHook } from '../route-rate-limit.js'
import type { VerifiedIdentity } from '../../core/identity.js'
import { VerificationError } from '../../errors.js'
import { authorizationHeader, bearerToken, refuseQueryInput } from '../bearer.js'
import type { IdentityBodies } from '../identity-bodies.js'
import { laneVerdict } from '../hit-lane.js'
import { requestChecks } from '../request-checks.js'
import { ErrorResponseSchema, VerifiedIdentitySchema, VerifyBodyOrNothing } from '../schemas.js'

export interface VerifyRouteOptions {
  /** The caller limit, shared with the other verify routes (undefined: not limited). */
  rateLimit: CallerLimitHook | undefined
  /** Answers for tokens the Verifier serves from its cache, rendered once per cache entry (shared with the hit lane). */
  bodies: IdentityBodies
}

export const verifyRoute: FastifyPluginAsync<VerifyRouteOptions> = async (fastify, opts) => {
  const bodies = opts.bodies
  fastify.withTypeProvider<TypeBoxTypeProvider>().post('/verify', {
    ...(opts.rateLimit !== undefined ? { onRequest: opts.rateLimit } : {}),
    schema: {
      body: VerifyBodyOrNothing,
      response: {
        200: VerifiedIdentitySchema,
        '4xx': ErrorResponseSchema,
        '5xx': ErrorResponseSchema
      }
    }
  }, (request, reply) => {
    // Not async: a token the Verifier answers from its cache is answered here and now, without a promise.
    refuseQueryInput(request.query)
    // Read once: a configuration reload may swap the Verifier while this request runs.
    const verifier = request.verifier
    const body = request.body ?? {}
    // Several Authorization lines are token_ambiguous, like a token in both the body and the header.
    const headerToken = bearerToken(authorizationHeader(request.raw))
    if (body.token !== undefined && headerToken !== undefined) throw new VerificationError('token_ambiguous')
    const token = body.token ?? headerToken
    if (token === undefined) throw new VerificationError('token_missing')
    const checks = requestChecks(verifier, { nonce: body.nonce, maxAge: body.maxAge, accessToken: body.accessToken, code: body.code, audience: body.audience, mode: body.mode })
    // An identity is personal data: no cache on the way may keep it (as /verify/batch and /introspect say).
    reply.header('cache-control', 'no-store')
    const verified = (identity: VerifiedIdentity): VerifiedIdentity => {
      request.outcome = { issuer: identity.issuer.id }
      return identity
    }
    // A token the lane verified and gave back refused (src/http/hit-lane.ts): its verdict, not a second verification.
    const verdict = laneVerdict(reply.raw, token)
    if (verdict !== undefined) throw verdict.error
    const outcome = verifier.verifyNow(token, checks)
    // Fastify sends what a synchronous handler returns, and what a returned promise resolves to. A token
    // verified in full is serialized as usual; the answer for a cached one is rendered once per cache entry.
    if (outcome instanceof Promise) return outcome.then(verified)
    const rendered = bodies.body(verified(outcome))
    if (rendered === undefined) return outcome
    // Already serialized by this route's schema: Fastify sends a string with a JSON content type as it is
    // (the type provider only knows the schema's object type, hence the cast).
    reply.type('application/json; charset=utf-8')
    return rendered as unknown as VerifiedIdentity
  })
}
