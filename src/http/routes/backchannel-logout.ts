/**
 * POST /backchannel-logout: the back-channel logout endpoint of OpenID Connect Back-Channel Logout 1.0
 * (§2.5, §2.8). The provider posts a form-encoded logout_token when a user logs out; once it is verified, the
 * session (sid) or the user's sessions (sub) are revoked for every process (src/revocation/), so ID tokens
 * of that session are refused from then on, cache hits included; for every configured issuer that shares the
 * token's iss. Register this URL as the client's backchannel_logout_uri at the provider.
 *
 * No caller key: the provider has none, and the signed logout token is the credential. Rate limited per
 * address by revocation.logoutRateLimit. Answers: 200 when the revocation is recorded; 400 (logout_token_invalid) for any token that is not
 * a valid logout token, as §2.8 asks, without naming the issuer (the log line does); 503 when the revocation
 * cannot be recorded or the keys cannot be obtained, or when the token names a kid the keys as last fetched do
 * not have and they may not be fetched again yet (key_refresh_deferred: a 400 would lose the logout of a key
 * just rotated in for good), with Retry-After (many providers do not retry: the error log line is what an
 * operator sees). Cache-Control: no-store on every answer (§2.8).
 */
import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { RouteRateLimit } from '../route-rate-limit.js'
import { Type } from 'typebox'
import { isVerificationError, VerificationError } from '../../errors.js'
import { revocationOfLogout, type LogoutRevocationPolicy } from '../../revocation/revocation.js'
import type { RevocationStore } from '../../revocation/store.js'
import { recordRevocation } from '../record-revocation.js'
import { ErrorResponseSchema } from '../schemas.js'
import { acceptFormBodiesOnly } from '../form-body.js'

/** revocation.retentionSeconds, revocation.maxSessionsPerUser and revocation.logoutTokenMaxAgeSeconds, and the store. */
export interface BackchannelLogoutRouteOptions extends LogoutRevocationPolicy {
  store: RevocationStore
  logoutTokenMaxAgeSeconds: number
  /** Milliseconds since the epoch (tests). */
  now?: () => number
  rateLimit: RouteRateLimit
}

export const LogoutRequestSchema = Type.Object({
  logout_token: Type.Optional(Type.String({ description: 'The logout token.' }))
}, { additionalProperties: Type.String(), $id: 'BackchannelLogoutRequest' })

export const LogoutResponseSchema = Type.Object({
  issuer: Type.String({ description: 'The configured issuer id.' }),
  revoked: Type.Union([Type.Literal('sid'), Type.Literal('sub')], { description: 'sid: the session was revoked; sub: every session of the user up to the logout token\'s iat (a logout token without sid, or a user at revocation.maxSessionsPerUser).' })
}, { additionalProperties: false })

/** The form body or none, made once: its compiled validator is kept beside it (src/http/schema-compilers.ts). */
const LogoutRequestOrNothing = Type.Union([LogoutRequestSchema, Type.Null()])

export const backchannelLogoutRoute: FastifyPluginAsync<BackchannelLogoutRouteOptions> = async (fastify, opts) => {
  // Form-encoded only (§2.5).
  acceptFormBodiesOnly(fastify)

  fastify.withTypeProvider<TypeBoxTypeProvider>().post('/backchannel-logout', {
    config: opts.rateLimit === false ? {} : { rateLimit: opts.rateLimit },
    onSend: async (_request, reply, payload) => {
      reply.header('cache-control', 'no-store')
      return payload
    },
    schema: {
      body: LogoutRequestOrNothing,
      response: { 200: LogoutResponseSchema, '4xx': ErrorResponseSchema, '5xx': ErrorResponseSchema }
    }
  }, async (request) => {
    const token = request.body?.logout_token
    if (token === undefined || token === '') throw new VerificationError('logout_token_invalid', { claim: 'logout_token' })
    let logout
    try {
      logout = await request.verifier.verifyLogoutToken(token, opts.logoutTokenMaxAgeSeconds)
    } catch (err) {
      if (!isVerificationError(err)) throw err
      const { issuer, claim, retryAfterSeconds } = err.details
      // Whatever is wrong with the token itself is a 400 (§2.8); the log line says which check failed.
      if (err.family === 'token' || err.code === 'logout_token_invalid') {
        request.log.warn({ reason: err.code, issuer, claim }, 'logout token refused')
        throw new VerificationError('logout_token_invalid', claim === undefined ? {} : { claim })
      }
      // The logout is lost unless the provider retries (most do not): the same error line as a revocation that
      // cannot be recorded, naming the issuer, which the answer does not.
      request.log.error({ issuer, source: 'backchannel-logout', reason: err.code, ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }) }, 'revocation not recorded')
      // Answers of this open route never name an issuer: a sender without a valid token learns no issuer ids.
      throw new VerificationError(err.code, retryAfterSeconds === undefined ? {} : { retryAfterSeconds })
    }
    let revoked: 'sid' | 'sub' = 'sid'
    const nowSeconds = (opts.now ?? Date.now)() / 1000
    for (const issuer of logout.issuers) {
      const { list } = opts.store
      const held = {
        sessionsOfUser: logout.sub === undefined ? 0 : list.sessionsOf(issuer, logout.sub),
        sessionRevoked: logout.sid !== undefined && list.get(issuer, 'sid', logout.sid, nowSeconds) !== undefined
      }
      const revocation = revocationOfLogout({ ...logout, issuer }, opts, held)
      // Issuers sharing the iss may differ: the answer names the broader revocation.
      if (revocation.kind === 'sub') revoked = 'sub'
      // A session logout that became the user's (maxSessionsPerUser) says so in its log line.
      const logFields = logout.sid !== undefined && revocation.kind === 'sub' ? { sessionsOfUser: held.sessionsOfUser } : {}
      try {
        await recordRevocation(request, opts.store, revocation, fastify.metrics, logFields)
      } catch (err) {
        // Answers of this open route never name an issuer.
        if (isVerificationError(err)) throw new VerificationError(err.code)
        throw err
      }
    }
    request.outcome = { issuer: logout.issuer }
    return { issuer: logout.issuer, revoked }
  })
}
