/**
 * POST /introspect, compatible with OAuth 2.0 Token Introspection (RFC 7662): a form-encoded `token` (and an
 * optional `token_type_hint`, which we may ignore, §2.1; and our extensions `mode` and `audience`, as on /verify) answered with `{"active": false}` for any token that
 * is not a valid ID token (§2.2: nothing about why), or `active: true` with the standard members and, as an
 * extension member, the normalized identity.
 *
 * /verify's other checks (nonce, maxAge, accessToken, code; max_age and access_token, their OAuth spellings) are
 * refused (400 request_invalid), never ignored.
 *
 * Differences a client may notice: we verify ID tokens only (an access token is "active": false); when the
 * issuer's keys cannot be obtained the answer is 503 keys_unavailable, not "active": false, because we
 * cannot tell, and a client must not log a user out for our outage. Other request parameters (client_id,
 * client_secret of client_secret_post) are accepted and ignored; caller authentication is the service's
 * (X-Api-Key when callers are configured), see README.
 */
import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { CallerLimitHook } from '../route-rate-limit.js'
import { Type, type Static } from 'typebox'
import type { VerifiedIdentity } from '../../core/identity.js'
import { isVerificationError, VerificationError } from '../../errors.js'
import { refuseQueryInput } from '../bearer.js'
import { errorOutcome } from '../error-reply.js'
import { acceptFormBodiesOnly } from '../form-body.js'
import { requestChecks } from '../request-checks.js'
import { ErrorResponseSchema, VerificationModeSchema, VerifiedIdentitySchema } from '../schemas.js'

export const IntrospectBody = Type.Object({
  token: Type.Optional(Type.String({ description: 'The ID token to introspect.' })),
  token_type_hint: Type.Optional(Type.String({ description: 'Accepted and ignored (RFC 7662 §2.1).' })),
  // Extension parameters (RFC 7662 §2.1 allows them): a logout's id_token_hint may have expired; and a resource
  // server that introspects for one client narrows to it, as /verify's audience does (a token of another of our
  // clients is then "active": false, not left for the caller to tell from aud).
  mode: Type.Optional(VerificationModeSchema),
  audience: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'Accept the token only for this one configured audience, as on /verify (an unconfigured one is 400 request_invalid).' }))
}, { additionalProperties: Type.String(), $id: 'IntrospectionRequest' })

const NumericDate = Type.Number()

export const IntrospectionResponse = Type.Union([
  Type.Object({ active: Type.Literal(false) }, { additionalProperties: false }),
  Type.Object({
    active: Type.Literal(true),
    iss: Type.String(),
    sub: Type.String(),
    aud: Type.Union([Type.String(), Type.Array(Type.String())]),
    exp: NumericDate,
    iat: NumericDate,
    nbf: Type.Optional(NumericDate),
    auth_time: Type.Optional(NumericDate),
    client_id: Type.Optional(Type.String()),
    username: Type.Optional(Type.String()),
    scope: Type.Optional(Type.String()),
    jti: Type.Optional(Type.String()),
    token_type: Type.Literal('N_A'),
    identity: VerifiedIdentitySchema
  }, { additionalProperties: false })
])
type Introspection = Static<typeof IntrospectionResponse>

export function introspectionOf (identity: VerifiedIdentity): Introspection {
  const claims = identity.claims
  const out: Introspection = {
    active: true,
    iss: identity.issuer.url,
    sub: identity.subject,
    aud: identity.audiences.length === 1 ? identity.audiences[0]! : [...identity.audiences],
    exp: identity.expiresAt,
    iat: identity.issuedAt,
    // RFC 8693 §2.2.1: "N_A" when the token is not an OAuth access token; an ID token is not one.
    token_type: 'N_A',
    identity
  }
  if (typeof claims.nbf === 'number' && Number.isFinite(claims.nbf)) out.nbf = claims.nbf
  if (identity.authTime !== null) out.auth_time = identity.authTime
  // The client the token was issued to: azp, or the only audience.
  const clientId = identity.authorizedParty ?? (identity.audiences.length === 1 ? identity.audiences[0] : undefined)
  if (clientId !== undefined) out.client_id = clientId
  // An email address stands in for the username only when the provider verified it: an unverified one is
  // whatever the user (or a tenant admin) typed, and a resource server reading `username` sees no emailVerified.
  const username = identity.user.preferredUsername ?? (identity.user.emailVerified ? identity.user.email : null)
  if (username !== null) out.username = username
  if (typeof claims.scope === 'string') out.scope = claims.scope
  if (typeof claims.jti === 'string') out.jti = claims.jti
  return out
}

/**
 * /verify's per-request checks that /introspect does not carry out: a request naming one is refused (400
 * request_invalid), since ignoring it, as other unknown parameters are, would answer "active": true for a token
 * that fails the check the caller asked for.
 */
// max_age and access_token: the OAuth spellings a form client writes (the query check knows max_age too).
const VERIFY_ONLY_CHECKS = ['nonce', 'maxAge', 'max_age', 'accessToken', 'access_token', 'code'] as const

export interface IntrospectRouteOptions {
  /** The caller limit, shared with the other verify routes (undefined: not limited). */
  rateLimit: CallerLimitHook | undefined
}

/** The form body or none, made once: its compiled validator is kept beside it (src/http/schema-compilers.ts). */
const IntrospectBodyOrNothing = Type.Union([IntrospectBody, Type.Null()])

export const introspectRoute: FastifyPluginAsync<IntrospectRouteOptions> = async (fastify, opts) => {
  // Form-encoded only, as RFC 7662 §2.1 says.
  acceptFormBodiesOnly(fastify)

  fastify.withTypeProvider<TypeBoxTypeProvider>().post('/introspect', {
    ...(opts.rateLimit !== undefined ? { onRequest: opts.rateLimit } : {}),
    schema: {
      body: IntrospectBodyOrNothing,
      response: {
        200: IntrospectionResponse,
        '4xx': ErrorResponseSchema,
        '5xx': ErrorResponseSchema
      }
    }
  }, async (request, reply) => {
    refuseQueryInput(request.query)
    const body = request.body
    const check = body !== undefined && body !== null ? VERIFY_ONLY_CHECKS.find((name) => Object.hasOwn(body, name)) : undefined
    if (check !== undefined) throw new VerificationError('request_invalid', { parameter: `body.${check}` })
    const token = body?.token
    if (token === undefined || token === '') throw new VerificationError('token_missing')
    reply.header('cache-control', 'no-store')
    const verifier = request.verifier
    const checks = requestChecks(verifier, { mode: request.body?.mode, audience: request.body?.audience })
    try {
      const identity = await verifier.verify(token, checks)
      request.outcome = { issuer: identity.issuer.id }
      return introspectionOf(identity)
    } catch (err) {
      // Any token problem is "not active" (RFC 7662 §2.2); the code goes to the log line only.
      if (isVerificationError(err) && err.family === 'token') {
        request.outcome = errorOutcome(err)
        return { active: false as const }
      }
      throw err
    }
  })
}
