/**
 * POST /revocations: an operator's revocation, for what the provider does not announce (a stolen laptop, an
 * incident, a provider without back-channel logout). One of:
 *
 *   {"issuer": "corp", "sid": "…"}                       the tokens of one session
 *   {"issuer": "corp", "sub": "…", "before": 1767225600}  the user's tokens issued up to `before` (default now)
 *   {"issuer": "corp", "jti": "…"}                       one token
 *   {"issuer": "corp", "all": true}                      every token of the issuer issued up to now
 *
 * Only for a caller whose key has `revoke: true` (callers.keys[]); refused (403 caller_not_permitted) without
 * caller keys. Recorded for every process like a back-channel logout; kept revocation.retentionSeconds.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type, type Static } from 'typebox'
import { VerificationError } from '../../errors.js'
import { MAX_REVOCATION_VALUE_LENGTH, type Revocation } from '../../revocation/revocation.js'
import { RevocationStoreError, type RevocationStore } from '../../revocation/store.js'
import { ErrorResponseSchema } from '../schemas.js'

type PerRequest = number | ((request: FastifyRequest, key: string) => number)

export interface RevocationsRouteOptions {
  store: RevocationStore
  retentionSeconds: number
  /** Configured issuer ids (a getter: a reload may change them). */
  issuerIds: () => readonly string[]
  rateLimit: { max: PerRequest, timeWindow: PerRequest } | false
  now?: () => number
}

/** A `before` later than now by more than this is refused: it would revoke tokens not issued yet. */
const FUTURE_TOLERANCE_SECONDS = 60

const Identifier = (what: string): ReturnType<typeof Type.String> => Type.String({ minLength: 1, maxLength: MAX_REVOCATION_VALUE_LENGTH, description: what })

export const RevocationRequestSchema = Type.Object({
  issuer: Type.String({ minLength: 1, maxLength: 64, description: 'The configured issuer id.' }),
  sid: Type.Optional(Identifier('Revoke the tokens of this session (the sid claim).')),
  sub: Type.Optional(Identifier('Revoke this user\'s tokens issued up to before.')),
  jti: Type.Optional(Identifier('Revoke the one token with this jti.')),
  all: Type.Optional(Type.Literal(true, { description: 'Revoke every token of the issuer issued up to before.' })),
  before: Type.Optional(Type.Integer({ minimum: 0, maximum: 253402300799, description: 'With sub or all: NumericDate (seconds); tokens issued at or before it are revoked (default: now).' }))
}, { additionalProperties: false, $id: 'RevocationRequest' })
type RevocationRequest = Static<typeof RevocationRequestSchema>

export const RevocationResponseSchema = Type.Object({
  issuer: Type.String(),
  kind: Type.Union([Type.Literal('sid'), Type.Literal('sub'), Type.Literal('jti'), Type.Literal('issuer')]),
  before: Type.Union([Type.Integer(), Type.Null()]),
  expiresAt: Type.Integer({ description: 'NumericDate after which the revocation is forgotten.' }),
  result: Type.Union([Type.Literal('added'), Type.Literal('extended'), Type.Literal('unchanged')])
}, { additionalProperties: false })

function invalid (claim: string): never {
  throw new VerificationError('revocation_invalid', { claim })
}

/** The revocation a request asks for; revocation_invalid naming the field at fault otherwise. */
export function revocationOfRequest (body: RevocationRequest, issuerIds: readonly string[], retentionSeconds: number, nowSeconds: number): Revocation {
  if (!issuerIds.includes(body.issuer)) invalid('issuer')
  const chosen = (['sid', 'sub', 'jti', 'all'] as const).filter((name) => body[name] !== undefined)
  if (chosen.length !== 1) invalid(chosen[1] ?? 'sid')
  const kind = chosen[0] as 'sid' | 'sub' | 'jti' | 'all'
  const cutoff = kind === 'sub' || kind === 'all'
  if (!cutoff && body.before !== undefined) invalid('before')
  const now = Math.floor(nowSeconds)
  const before = body.before ?? now
  if (before > now + FUTURE_TOLERANCE_SECONDS) invalid('before')
  const base = { issuer: body.issuer, source: 'api' as const }
  if (kind === 'all') return { ...base, kind: 'issuer', value: '', before, expiresAt: before + retentionSeconds }
  if (kind === 'sub') return { ...base, kind, value: body.sub as string, before, expiresAt: before + retentionSeconds }
  return { ...base, kind, value: body[kind] as string, before: null, expiresAt: now + retentionSeconds }
}

export const revocationsRoute: FastifyPluginAsync<RevocationsRouteOptions> = async (fastify, opts) => {
  const now = opts.now ?? Date.now
  fastify.withTypeProvider<TypeBoxTypeProvider>().post('/revocations', {
    config: opts.rateLimit === false ? {} : { rateLimit: opts.rateLimit },
    schema: {
      body: RevocationRequestSchema,
      response: { 200: RevocationResponseSchema, '4xx': ErrorResponseSchema, '5xx': ErrorResponseSchema }
    }
  }, async (request) => {
    if (request.caller?.revoke !== true) throw new VerificationError('caller_not_permitted')
    const revocation = revocationOfRequest(request.body, opts.issuerIds(), opts.retentionSeconds, now() / 1000)
    let result
    try {
      result = await opts.store.publish(revocation)
    } catch (err) {
      if (!(err instanceof RevocationStoreError)) throw err
      request.log.error({ err, issuer: revocation.issuer, kind: revocation.kind }, 'revocation not recorded')
      throw new VerificationError('revocations_unavailable', { issuer: revocation.issuer })
    }
    if (result === 'full') throw new VerificationError('revocations_unavailable', { issuer: revocation.issuer })
    // The value (a sid, sub or jti) is never logged: it identifies a person or a token.
    request.log.info({ issuer: revocation.issuer, kind: revocation.kind, source: revocation.source, caller: request.caller.id, result }, 'revocation recorded')
    fastify.metrics?.revocationRecorded(revocation.source, revocation.kind)
    request.outcome = { issuer: revocation.issuer }
    return { issuer: revocation.issuer, kind: revocation.kind, before: revocation.before, expiresAt: revocation.expiresAt, result }
  })
}
