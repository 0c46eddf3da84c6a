/**
 * Turns any error into the one error response shape. Only messages from the code table reach a client:
 * library messages can carry input (a JSON parse error quotes the body) and are never echoed.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ERROR_CODES, VerificationError, type ErrorCode } from '../errors.js'
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
  return fields
}

/** What the request's log line says about an error: its code, issuer and details, never input. */
export function errorOutcome (err: VerificationError): NonNullable<FastifyRequest['outcome']> {
  const { issuer, algorithm, offBySeconds, nearIssuer, issuerDifference } = err.details
  return {
    code: err.code,
    ...(issuer !== undefined ? { issuer } : {}),
    ...(algorithm !== undefined ? { algorithm } : {}),
    ...(offBySeconds !== undefined ? { offBySeconds } : {}),
    ...(nearIssuer !== undefined ? { nearIssuer } : {}),
    ...(issuerDifference !== undefined ? { issuerDifference } : {})
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

/** Maps Fastify's own errors (validation, body parsing, limits) onto our table. */
export function fromFrameworkError (err: { code?: string, statusCode?: number, validation?: unknown }): VerificationError {
  let code: ErrorCode = 'internal_error'
  if (err.validation !== undefined) code = 'request_invalid'
  else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') code = 'request_too_large'
  else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') code = 'unsupported_media_type'
  else if (err.statusCode === 429) code = 'rate_limited'
  else if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) code = 'request_invalid'
  return new VerificationError(code)
}

export function isErrorCode (code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code)
}
