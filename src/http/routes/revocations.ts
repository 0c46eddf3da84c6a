/**
 * POST /revocations: an operator's revocation, for what the provider does not announce (a stolen laptop, an
 * incident, a provider without back-channel logout). One of:
 *
 *   {"issuer": "corp", "sid": "…"}                       the tokens of one session
 *   {"issuer": "corp", "sub": "…", "before": 1767225600}  the user's tokens issued up to `before` (default:
 *                                                         now plus the issuer's clock tolerance)
 *   {"issuer": "corp", "jti": "…"}                       one token
 *   {"issuer": "corp", "all": true}                      every token of the issuer issued up to now
 *
 * Only for a caller whose key has `revoke: true` (callers.keys[]); refused (403 caller_not_permitted) without
 * caller keys. Recorded for every process like a back-channel logout; kept revocation.retentionSeconds.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { CallerLimitHook } from '../route-rate-limit.js'
import { Type, type Static } from 'typebox'
import { MAX_NUMERIC_DATE } from '../../core/numeric-date.js'
import { VerificationError } from '../../errors.js'
import { isRevocationValue, MAX_REVOCATION_VALUE_LENGTH, type Revocation } from '../../revocation/revocation.js'
import type { RevocationStore } from '../../revocation/store.js'
import type { IssuerConfig } from '../../config/types.js'
import { recordRevocation } from '../record-revocation.js'
import { ErrorResponseSchema } from '../schemas.js'

export interface RevocationsRouteOptions {
  store: RevocationStore
  retentionSeconds: number
  /** The configured issuers (a getter: a reload may change them). */
  issuers: () => ReadonlyArray<Pick<IssuerConfig, 'id' | 'clockToleranceSeconds'>>
  /** The caller limit, shared with the other verify routes (undefined: not limited). */
  rateLimit: CallerLimitHook | undefined
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
  before: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_NUMERIC_DATE, description: 'With sub or all: NumericDate (seconds); tokens issued at or before it are revoked (default: now plus the issuer\'s clock tolerance).' }))
}, { additionalProperties: false, $id: 'RevocationRequest' })
type RevocationRequest = Static<typeof RevocationRequestSchema>

export const RevocationResponseSchema = Type.Object({
  issuer: Type.String(),
  kind: Type.Union([Type.Literal('sid'), Type.Literal('sub'), Type.Literal('jti'), Type.Literal('issuer')]),
  before: Type.Union([Type.Integer(), Type.Null()]),
  expiresAt: Type.Integer({ description: 'NumericDate after which the revocation is forgotten.' }),
  result: Type.Union([Type.Literal('added'), Type.Literal('extended'), Type.Literal('unchanged')])
}, { additionalProperties: false })

function invalid (claim?: string): never {
  throw new VerificationError('revocation_invalid', claim === undefined ? {} : { claim })
}

/**
 * The revocation a request asks for; revocation_invalid naming the field at fault otherwise. `before`
 * defaults to now plus the issuer's clock tolerance: it is compared with the provider's iat, and a provider
 * whose clock runs ahead would otherwise issue tokens "after" a revocation that came after them.
 */
export function revocationOfRequest (
  body: RevocationRequest,
  issuers: ReadonlyArray<Pick<IssuerConfig, 'id' | 'clockToleranceSeconds'>>,
  retentionSeconds: number,
  nowSeconds: number
): Revocation {
  const issuer = issuers.find((i) => i.id === body.issuer)
  if (issuer === undefined) invalid('issuer')
  const chosen = (['sid', 'sub', 'jti', 'all'] as const).filter((name) => body[name] !== undefined)
  if (chosen.length === 0) invalid()
  if (chosen.length > 1) invalid(chosen[1])
  const kind = chosen[0] as 'sid' | 'sub' | 'jti' | 'all'
  // The schema bounds the length; a lone surrogate ("\ud800" in the JSON) no store can keep everywhere.
  if (kind !== 'all' && !isRevocationValue(body[kind])) invalid(kind)
  const cutoff = kind === 'sub' || kind === 'all'
  if (!cutoff && body.before !== undefined) invalid('before')
  const now = Math.floor(nowSeconds)
  const before = body.before ?? now + issuer.clockToleranceSeconds
  if (before > now + Math.max(FUTURE_TOLERANCE_SECONDS, issuer.clockToleranceSeconds)) invalid('before')
  // So long ago that every token it covers has expired, as far as retentionSeconds can tell.
  if (before + retentionSeconds <= now) invalid('before')
  const base = { issuer: body.issuer, source: 'api' as const }
  if (kind === 'all') return { ...base, kind: 'issuer', value: '', before, expiresAt: before + retentionSeconds }
  if (kind === 'sub') return { ...base, kind, value: body.sub as string, before, expiresAt: before + retentionSeconds }
  return { ...base, kind, value: body[kind] as string, before: null, expiresAt: now + retentionSeconds }
}

export const revocationsRoute: FastifyPluginAsync<RevocationsRouteOptions> = async (fastify, opts) => {
  const now = opts.now ?? Date.now
  // Before the body is read: a caller that may not revoke gets 403 whatever it sent (openapi.yaml), not 400.
  const mayRevoke = async (request: FastifyRequest): Promise<void> => {
    if (request.caller?.revoke !== true) throw new VerificationError('caller_not_permitted')
  }
  fastify.withTypeProvider<TypeBoxTypeProvider>().post('/revocations', {
    // mayRevoke first: a caller that may not revoke gets 403 even past its rate limit (openapi.yaml).
    onRequest: opts.rateLimit !== undefined ? [mayRevoke, opts.rateLimit] : [mayRevoke],
    schema: {
      body: RevocationRequestSchema,
      response: { 200: RevocationResponseSchema, '4xx': ErrorResponseSchema, '5xx': ErrorResponseSchema }
    }
  }, async (request) => {
    // Checked by mayRevoke already; this narrows the type.
    if (request.caller?.revoke !== true) throw new VerificationError('caller_not_permitted')
    const revocation = revocationOfRequest(request.body, opts.issuers(), opts.retentionSeconds, now() / 1000)
    const result = await recordRevocation(request, opts.store, revocation, fastify.metrics, { caller: request.caller.id })
    // What is held now: an earlier revocation of the same value may have had a later cut-off or expiry.
    const held = opts.store.list.get(revocation.issuer, revocation.kind, revocation.value, now() / 1000) ?? revocation
    return { issuer: held.issuer, kind: held.kind, before: held.before, expiresAt: held.expiresAt, result }
  })
}
