/**
 * openapi.yaml's request and response schemas are the routes' own TypeBox schemas (with which Fastify validates
 * requests and serializes answers): each component, its $refs resolved, equals its schema in code, field by
 * field (descriptions, formats and TypeBox's own markers aside). A field, bound, enum value or required member
 * changed on one side only fails here.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { BatchItemErrorSchema, BatchVerifyBody, BatchVerifyResponse } from '../src/http/routes/verify-batch.js'
import { IntrospectBody, IntrospectionResponse } from '../src/http/routes/introspect.js'
import { LogoutRequestSchema, LogoutResponseSchema } from '../src/http/routes/backchannel-logout.js'
import { RevocationRequestSchema, RevocationResponseSchema } from '../src/http/routes/revocations.js'
import {
  ErrorResponseSchema, HealthSchema, IssuerStatusSchema, ReadinessSchema, RevocationStoreStatusSchema, UserProfileSchema,
  VerifiedIdentitySchema, VerifyBody, WorkersReadySchema
} from '../src/http/schemas.js'

type Schemas = Record<string, unknown>
const components = (parse(readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')) as { components: { schemas: Schemas } }).components.schemas

const IGNORED = new Set(['description', '$id', '~kind', 'format', 'example', 'examples'])
/**
 * A schema as plain JSON without what documents it, one spelling for what is written two ways: a const's type
 * (implied by the const), and a choice of consts (TypeBox's anyOf of literals, openapi.yaml's enum).
 */
const plain = (schema: unknown): unknown => JSON.parse(JSON.stringify(schema, (k, v: unknown) => IGNORED.has(k) ? undefined : v), (_k, v: unknown) => {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
  const node = { ...(v as Record<string, unknown>) }
  if ('const' in node) delete node.type
  // The unions here are of disjoint shapes, where oneOf and anyOf accept the same.
  if (Array.isArray(node.oneOf)) {
    node.anyOf = node.oneOf
    delete node.oneOf
  }
  const types = node.anyOf
  if (Array.isArray(types) && types.every((c) => c !== null && typeof c === 'object' && Object.keys(c as object).join() === 'type')) {
    delete node.anyOf
    node.type = types.map((c) => (c as { type: unknown }).type)
  }
  const choices = node.anyOf
  if (Array.isArray(choices) && choices.every((c) => c !== null && typeof c === 'object' && Object.keys(c as object).join() === 'const')) {
    delete node.anyOf
    delete node.type
    node.enum = choices.map((c) => (c as { const: unknown }).const)
  }
  if (Array.isArray(node.enum)) {
    if (node.type !== undefined && node.enum.every((e) => typeof e === node.type)) delete node.type
    node.enum = [...(node.enum as unknown[])].sort()
  }
  return node
})
/** A component with every $ref replaced by the component it names. */
function resolved (schema: unknown): unknown {
  return JSON.parse(JSON.stringify(schema), (_k, v: unknown) => {
    const ref = (v as { $ref?: unknown } | null)?.$ref
    return typeof ref === 'string' ? resolved(components[ref.split('/').pop() as string]) : v
  })
}

const PAIRS: Array<[string, unknown]> = [
  ['VerifyRequest', VerifyBody], ['VerifiedIdentity', VerifiedIdentitySchema], ['UserProfile', UserProfileSchema],
  ['Error', ErrorResponseSchema], ['Health', HealthSchema], ['Readiness', ReadinessSchema], ['IssuerStatus', IssuerStatusSchema],
  ['RevocationStoreStatus', RevocationStoreStatusSchema], ['WorkersReady', WorkersReadySchema], ['BatchVerifyRequest', BatchVerifyBody], ['BatchVerifyResponse', BatchVerifyResponse],
  ['BatchItemError', BatchItemErrorSchema], ['IntrospectionRequest', IntrospectBody], ['IntrospectionResponse', IntrospectionResponse],
  ['RevocationRequest', RevocationRequestSchema], ['RevocationResponse', RevocationResponseSchema],
  ['BackchannelLogoutRequest', LogoutRequestSchema], ['BackchannelLogoutResponse', LogoutResponseSchema]
]

/**
 * The one difference on purpose (src/http/schemas.ts, ClaimSetSchema): the claim set is documented as an object
 * and serialized as any JSON, which is faster for the same text. Nothing else is excused.
 */
const asSerialized = (spec: unknown): unknown => JSON.parse(JSON.stringify(spec), (k, v: unknown) =>
  k === 'claims' && JSON.stringify(v) === '{"type":"object","additionalProperties":true}' ? {} : v)

for (const [name, schema] of PAIRS) {
  t.test(`${name} is the route's schema`, async (t) => {
    t.ok(components[name] !== undefined, `openapi.yaml has components.schemas.${name}`)
    t.same(asSerialized(plain(resolved(components[name]))), plain(schema))
  })
}

t.test('the comparison sees a change', async (t) => {
  const changed = structuredClone(components.RevocationRequest) as { properties: { sid: { maxLength: number } } }
  changed.properties.sid.maxLength = 64
  t.notSame(plain(resolved(changed)), plain(RevocationRequestSchema), 'a bound')
  const required = structuredClone(components.IssuerStatus) as { required: string[] }
  required.required = required.required.filter((f) => f !== 'keyCount')
  t.notSame(plain(resolved(required)), plain(IssuerStatusSchema), 'a required member')
})
