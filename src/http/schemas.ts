/**
 * TypeBox schemas of every route: Fastify validates requests and serializes responses with them, and
 * test/openapi.test.ts keeps them in step with openapi.yaml.
 */
import { Type, type Static } from 'typebox'
import { ALL_ERROR_CODES, type ErrorCode } from '../errors.js'
import type { VerificationMode } from '../core/id-token-rules.js'
import { ISSUER_DIFFERENCES, type IssuerDifference } from '../core/near-issuer.js'

/**
 * Nullable as a type list, as openapi.yaml writes it: fast-json-stringify serializes `type: [string, null]`
 * with a typeof check, whereas an anyOf costs a schema validation per field per answer.
 */
const NullableString = Type.Unsafe<string | null>({ type: ['string', 'null'] })
const NullableNumber = Type.Unsafe<number | null>({ type: ['number', 'null'] })

/** How a token is used (src/core/id-token-rules.ts): the same field on /verify, /verify/batch and /introspect. */
export const VerificationModeSchema = Type.Unsafe<VerificationMode>({
  type: 'string',
  enum: ['id_token', 'id_token_hint'],
  description: 'id_token (default): a login. id_token_hint: a token presented as id_token_hint (logout); it may have expired, everything else is checked.'
})

export const VerifyBody = Type.Object({
  // Non-empty as `not: {const: ''}`, not `minLength: 1`: ajv checks a length by counting the string's characters
  // one by one, about 1 µs for a token on every request.
  token: Type.Optional(Type.String({ not: { const: '' }, description: 'The ID token (compact JWS), not empty. Or send it as Authorization: Bearer.' })),
  nonce: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'The nonce of the authorization request; the token\'s nonce must be equal.' })),
  maxAge: Type.Optional(Type.Integer({ minimum: 0, maximum: 315360000, description: 'OIDC max_age in seconds: auth_time must be present and recent enough.' })),
  accessToken: Type.Optional(Type.String({ minLength: 1, maxLength: 16384, description: 'The access token issued with the ID token; at_hash must match it.' })),
  code: Type.Optional(Type.String({ minLength: 1, maxLength: 16384, description: 'The authorization code of a hybrid flow\'s response (code id_token), issued with the ID token; c_hash must match it.' })),
  audience: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'Accept the token only for this one configured audience (in aud; an azp naming another of the issuer\'s audiences, not an authorized party, is authorized_party_mismatch).' })),
  mode: Type.Optional(VerificationModeSchema)
}, { additionalProperties: false, $id: 'VerifyRequest' })
export type VerifyBodyType = Static<typeof VerifyBody>

/** The body is optional: a request may carry only an Authorization header. */
export const VerifyBodyOrNothing = Type.Union([VerifyBody, Type.Null()])

export const UserProfileSchema = Type.Object({
  email: NullableString,
  emailVerified: Type.Boolean(),
  name: NullableString,
  givenName: NullableString,
  familyName: NullableString,
  preferredUsername: NullableString,
  picture: NullableString,
  locale: NullableString
}, { additionalProperties: false })

/**
 * The verified claim set as the provider sent it: always a JSON object (the compact-JWS parse refuses any other
 * payload), and openapi.yaml says `type: object`. The serializing schema is `{}` ("any JSON") on purpose:
 * fast-json-stringify then writes the whole object with one JSON.stringify, where an object schema with
 * additionalProperties makes it call JSON.stringify once per claim. Same text, 0.6 µs less per answer of a
 * token verified in full (13 claims).
 */
const ClaimSetSchema = Type.Unsafe<Record<string, unknown>>({})

export const VerifiedIdentitySchema = Type.Object({
  issuer: Type.Object({ id: Type.String(), url: Type.String() }, { additionalProperties: false }),
  subject: Type.String(),
  userKey: Type.String(),
  audiences: Type.Array(Type.String()),
  authorizedParty: NullableString,
  expiresAt: Type.Number(),
  issuedAt: Type.Number(),
  authTime: NullableNumber,
  expiresIn: Type.Integer(),
  user: UserProfileSchema,
  groups: Type.Array(Type.String()),
  groupsOverage: Type.Boolean(),
  roles: Type.Array(Type.String()),
  tenant: NullableString,
  claims: ClaimSetSchema
}, { additionalProperties: false })

/**
 * What a token error may add, beside the claim's name: the token's algorithm, how far off its times are, the
 * configured issuer an unknown iss nearly matches.
 */
export const ERROR_DETAIL_FIELDS = {
  algorithm: Type.Optional(Type.String()),
  offBySeconds: Type.Optional(Type.Integer({ minimum: 0 })),
  nearIssuer: Type.Optional(Type.String()),
  issuerDifference: Type.Optional(Type.Unsafe<IssuerDifference>({ type: 'string', enum: [...ISSUER_DIFFERENCES] }))
}

export const ErrorResponseSchema = Type.Object({
  code: Type.Unsafe<ErrorCode>({ type: 'string', enum: ALL_ERROR_CODES }),
  message: Type.String(),
  hint: Type.String(),
  issuer: Type.Optional(Type.String()),
  claim: Type.Optional(Type.String()),
  ...ERROR_DETAIL_FIELDS,
  parameter: Type.Optional(Type.String()),
  nearRoute: Type.Optional(Type.String()),
  nearRouteMethods: Type.Optional(Type.Array(Type.String())),
  requestId: Type.String()
}, { additionalProperties: false })
export type ErrorResponse = Static<typeof ErrorResponseSchema>

export const HealthSchema = Type.Object({ status: Type.Literal('ok') }, { additionalProperties: false })

export const IssuerStatusSchema = Type.Object({
  id: Type.String(),
  issuer: Type.String(),
  ready: Type.Boolean(),
  source: Type.Union([Type.Literal('discovery'), Type.Literal('jwksUri'), Type.Literal('inline')]),
  jwksUri: NullableString,
  state: Type.Union([Type.Literal('fresh'), Type.Literal('stale'), Type.Literal('expired'), Type.Literal('missing'), Type.Literal('discovering')]),
  keyCount: Type.Integer(),
  fetchedAt: NullableString,
  lastError: NullableString
}, { additionalProperties: false })

export const RevocationStoreStatusSchema = Type.Object({
  store: Type.Union([Type.Literal('memory'), Type.Literal('redis')]),
  current: Type.Boolean(),
  lastCurrentAt: Type.Union([Type.String(), Type.Null()])
}, { additionalProperties: false })

export const WorkersReadySchema = Type.Object({
  ready: Type.Integer({ minimum: 0 }),
  total: Type.Integer({ minimum: 0 })
}, { additionalProperties: false })

export const ReadinessSchema = Type.Object({
  ready: Type.Boolean(),
  issuers: Type.Array(IssuerStatusSchema),
  revocations: Type.Optional(RevocationStoreStatusSchema),
  workers: Type.Optional(WorkersReadySchema)
}, { additionalProperties: false })
export type Readiness = Static<typeof ReadinessSchema>

/** GET /openapi.json: the contract itself; only its top-level shape is fixed here. */
export const OpenApiJsonSchema = Type.Object({
  openapi: Type.String(),
  info: Type.Object({ title: Type.String(), version: Type.String() }, { additionalProperties: true }),
  paths: Type.Object({}, { additionalProperties: true })
}, { additionalProperties: true })

/** GET /docs: an HTML page. */
export const DocsPageSchema = Type.String({ description: 'HTML' })
