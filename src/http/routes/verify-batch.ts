/**
 * POST /verify/batch: up to batch.maxTokens tokens in one request, verified with the same optional shared
 * checks (maxAge, audience, mode), answered in the same order. Each result is the normalized identity or an error of the code table;
 * one bad token never fails the batch (only a malformed request does, with one error for all).
 */
import type { FastifyPluginAsync } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { CallerLimitHook } from '../route-rate-limit.js'
import { Type, type Static } from 'typebox'
import type { VerifiedIdentity } from '../../core/identity.js'
import { ALL_ERROR_CODES, isVerificationError, VerificationError, type ErrorCode } from '../../errors.js'
import { refuseQueryInput } from '../bearer.js'
import { errorFields } from '../error-reply.js'
import { requestChecks } from '../request-checks.js'
import { ERROR_DETAIL_FIELDS, ErrorResponseSchema, VerificationModeSchema, VerifiedIdentitySchema } from '../schemas.js'

export const BatchVerifyBody = Type.Object({
  tokens: Type.Array(Type.String({ description: 'An ID token (compact JWS). A bad one gives an error in its result, not for the batch.' }), {
    minItems: 1,
    description: 'The ID tokens, at most batch.maxTokens (default 100).'
  }),
  maxAge: Type.Optional(Type.Integer({ minimum: 0, maximum: 315360000, description: 'OIDC max_age in seconds, for every token: auth_time must be present and recent enough.' })),
  audience: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'Accept the tokens only for this one configured audience (in aud; an azp naming another of the issuer\'s audiences, not an authorized party, is authorized_party_mismatch).' })),
  mode: Type.Optional(VerificationModeSchema)
}, { additionalProperties: false, $id: 'BatchVerifyRequest' })
export type BatchVerifyBodyType = Static<typeof BatchVerifyBody>

export const BatchItemErrorSchema = Type.Object({
  code: Type.Unsafe<ErrorCode>({ type: 'string', enum: ALL_ERROR_CODES }),
  message: Type.String(),
  hint: Type.String(),
  issuer: Type.Optional(Type.String()),
  claim: Type.Optional(Type.String()),
  ...ERROR_DETAIL_FIELDS,
  retryAfterSeconds: Type.Optional(Type.Integer({ minimum: 1 }))
}, { additionalProperties: false })

export const BatchItemSchema = Type.Union([
  Type.Object({ ok: Type.Literal(true), identity: VerifiedIdentitySchema }, { additionalProperties: false }),
  Type.Object({ ok: Type.Literal(false), error: BatchItemErrorSchema }, { additionalProperties: false })
])

export const BatchVerifyResponse = Type.Object({ results: Type.Array(BatchItemSchema) }, { additionalProperties: false })

type BatchItem = { ok: true, identity: VerifiedIdentity } | { ok: false, error: Static<typeof BatchItemErrorSchema> }

export interface VerifyBatchRouteOptions {
  /** The caller limit, shared with the other verify routes (undefined: not limited). */
  rateLimit: CallerLimitHook | undefined
  /** Route body limit (batch.maxBodyBytes): server.bodyLimit is sized for one token. */
  bodyLimit: number
}

function itemError (err: VerificationError): Static<typeof BatchItemErrorSchema> {
  const out: Static<typeof BatchItemErrorSchema> = errorFields(err)
  if (err.family === 'unavailable') out.retryAfterSeconds = Math.max(1, Math.ceil(err.details.retryAfterSeconds ?? 1))
  return out
}

export const verifyBatchRoute: FastifyPluginAsync<VerifyBatchRouteOptions> = async (fastify, opts) => {
  fastify.withTypeProvider<TypeBoxTypeProvider>().post('/verify/batch', {
    ...(opts.rateLimit !== undefined ? { onRequest: opts.rateLimit } : {}),
    bodyLimit: opts.bodyLimit,
    schema: {
      body: BatchVerifyBody,
      response: {
        200: BatchVerifyResponse,
        '4xx': ErrorResponseSchema,
        '5xx': ErrorResponseSchema
      }
    }
  }, async (request, reply) => {
    refuseQueryInput(request.query)
    // Read once: a configuration reload may swap both while this request runs.
    const verifier = request.verifier
    const { maxTokens } = fastify.verifierSlot.config.batch
    const body = request.body
    if (body.tokens.length > maxTokens) throw new VerificationError('batch_too_large')
    const checks = requestChecks(verifier, { maxAge: body.maxAge, audience: body.audience, mode: body.mode })

    let bugs = 0
    const results = await Promise.all(body.tokens.map(async (token): Promise<BatchItem> => {
      try {
        return { ok: true, identity: await verifier.verify(token, checks) }
      } catch (err) {
        if (isVerificationError(err)) return { ok: false, error: itemError(err) }
        if (bugs++ === 0) request.log.error({ err }, 'unexpected error in a batch item')
        return { ok: false, error: itemError(new VerificationError('internal_error')) }
      }
    }))
    // Identities are personal data: no cache keeps them, as for /introspect and /forward-auth.
    reply.header('cache-control', 'no-store')
    return { results }
  })
}
