/**
 * Turns any error into the one error response shape. Only messages from the code table reach a client:
 * library messages can carry input (a JSON parse error quotes the body) and are never echoed.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ERROR_CODES, isVerificationError, VerificationError, type ErrorCode } from '../errors.js'
import type { ErrorResponse } from './schemas.js'

/** The safe, client-facing fields of an error: the table's message and hint, and which issuer and claim. */
export function errorFields (err: VerificationError): Omit<ErrorResponse, 'requestId'> {
  const fields: Omit<ErrorResponse, 'requestId'> = { code: err.code, message: err.message, hint: err.hint }
  if (err.details.issuer !== undefined) fields.issuer = err.details.issuer
  if (err.details.claim !== undefined) fields.claim = err.details.claim
  if (err.details.algorithm !== undefined) fields.algorithm = err.details.algorithm
  if (err.details.offBySeconds !== undefined) fields.offBySeconds = err.details.offBySeconds
  if (err.details.nearIssuer !== undefined) fields.nearIssuer = err.details.nearIssuer
  if (err.details.issuerDifference !== undefined) fields.issuerDifference = err.details.issuerDifference
  if (err.details.parameter !== undefined) fields.parameter = err.details.parameter
  if (err.details.nearRoute !== undefined) fields.nearRoute = err.details.nearRoute
  if (err.details.nearRouteMethods !== undefined) fields.nearRouteMethods = err.details.nearRouteMethods
  return fields
}

/** What the request's log line says about an error: its code, issuer and details, never input. */
export function errorOutcome (err: VerificationError): NonNullable<FastifyRequest['outcome']> {
  const { issuer, algorithm, offBySeconds, nearIssuer, issuerDifference, parameter, nearRoute, nearRouteMethods } = err.details
  return {
    code: err.code,
    ...(issuer !== undefined ? { issuer } : {}),
    ...(algorithm !== undefined ? { algorithm } : {}),
    ...(offBySeconds !== undefined ? { offBySeconds } : {}),
    ...(nearIssuer !== undefined ? { nearIssuer } : {}),
    ...(issuerDifference !== undefined ? { issuerDifference } : {}),
    ...(parameter !== undefined ? { parameter } : {}),
    ...(nearRoute !== undefined ? { nearRoute, nearRouteMethods } : {})
  }
}

export function errorBody (request: FastifyRequest, err: VerificationError): ErrorResponse {
  return { ...errorFields(err), requestId: request.id }
}

export function sendError (request: FastifyRequest, reply: FastifyReply, err: VerificationError): FastifyReply {
  request.outcome = errorOutcome(err)
  if (err.family === 'token') reply.header('www-authenticate', `Bearer error="invalid_token", error_description="${err.code}"`)
  if (err.status === 503 || err.status === 429) reply.header('retry-after', String(err.details.retryAfterSeconds ?? 1))
  return reply.code(err.status).send(errorBody(request, err))
}

/** Fastify's own errors, as far as they are read here. */
export interface FrameworkError {
  code?: string
  statusCode?: number
  /** A schema check's failures (ajv's errors) and which part of the request was checked. */
  validation?: unknown
  validationContext?: string
}

/**
 * Maps Fastify's own errors (validation, body parsing, limits) onto our table. `schema` is the route's schema
 * (request.routeOptions.schema): a failed check names the field at fault only when the schema declares it.
 */
export function fromFrameworkError (err: FrameworkError, schema?: unknown): VerificationError {
  let code: ErrorCode = 'internal_error'
  if (err.validation !== undefined) return new VerificationError('request_invalid', parameterOf(err, schema))
  else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') code = 'request_too_large'
  else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') code = 'unsupported_media_type'
  else if (err.statusCode === 429) code = 'rate_limited'
  else if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    // A body that cannot be parsed (invalid JSON, an empty JSON body with a content type, …).
    return new VerificationError('request_invalid', err.code?.startsWith('FST_ERR_CTP_') === true ? { parameter: 'body' } : {})
  }
  return new VerificationError(code)
}

/**
 * What an error handler answers with: one of ours as it is, any other error mapped by fromFrameworkError (the
 * request's route schema says which fields a failed check may name).
 */
export function asVerificationError (err: unknown, request: FastifyRequest): VerificationError {
  return isVerificationError(err) ? err : fromFrameworkError(err as FrameworkError, request.routeOptions.schema)
}

const VALIDATION_PARTS: Readonly<Record<string, string>> = { body: 'body', querystring: 'query', headers: 'header', params: 'path' }

interface SchemaFailure { instancePath?: unknown, keyword?: unknown, params?: { missingProperty?: unknown } }

/**
 * Which parameter a failed schema check is about: the part of the request, and the top-level field when the
 * route's schema declares it (a field the request made up, such as an unknown one, is never repeated).
 */
function parameterOf (err: FrameworkError, routeSchema: unknown): { parameter?: string } {
  const part = err.validationContext !== undefined ? VALIDATION_PARTS[err.validationContext] : undefined
  if (part === undefined) return {}
  const partSchema = isObject(routeSchema) ? routeSchema[err.validationContext!] : undefined
  const declared = declaredNames(partSchema)
  const failures = Array.isArray(err.validation) ? err.validation as SchemaFailure[] : []
  for (const failure of failures) {
    const name = failure.keyword === 'required' && typeof failure.params?.missingProperty === 'string'
      ? failure.params.missingProperty
      : topLevelName(failure.instancePath)
    if (name !== undefined && declared.has(name)) return { parameter: `${part}.${name}` }
  }
  return { parameter: part }
}

/** The first segment of a JSON pointer such as /tokens/3 (tokens), unescaped. */
function topLevelName (instancePath: unknown): string | undefined {
  if (typeof instancePath !== 'string' || !instancePath.startsWith('/')) return undefined
  const end = instancePath.indexOf('/', 1)
  return (end === -1 ? instancePath.slice(1) : instancePath.slice(1, end)).replaceAll('~1', '/').replaceAll('~0', '~')
}

/** The property names a schema declares at its top level, through anyOf/oneOf/allOf (a body or null, …). */
function declaredNames (schema: unknown, names = new Set<string>(), depth = 0): Set<string> {
  if (!isObject(schema) || depth > 4) return names
  if (isObject(schema.properties)) for (const name of Object.keys(schema.properties)) names.add(name)
  for (const key of ['anyOf', 'oneOf', 'allOf']) {
    const list = schema[key]
    if (Array.isArray(list)) for (const member of list) declaredNames(member, names, depth + 1)
  }
  return names
}

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null
}

export function isErrorCode (code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code)
}
