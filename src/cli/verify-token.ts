/**
 * `oidc-verifier verify`: verifies one token with the service's own Verifier and configuration, and says
 * why when it is rejected: the tool for "my token is rejected". Besides the error code, message and hint it
 * shows the token's routing fields (alg, kid, iss, aud, times), decoded WITHOUT verification and marked as
 * such, because the usual cause is a mismatch between them and the configuration. Personal claims are not
 * shown. Nothing from the token is fetched or used to choose a URL.
 */
import { MAX_NUMERIC_DATE } from '../core/numeric-date.js'
import type { Config } from '../config/types.js'
import type { VerifiedIdentity } from '../core/identity.js'
import type { Logger } from '../core/logger.js'
import { Verifier, type IssuerStatus, type RequestChecks } from '../core/verifier.js'
import { isVerificationError, VerificationError } from '../errors.js'
import type { FetchJson } from '../net/fetch-json.js'

/** How often the issuer's key status is looked at while waiting for it. */
const POLL_MS = 50
/** Quoted token values are cut to this length: a hostile token must not flood the terminal. */
const MAX_SHOWN = 120

export interface VerifyCommandOptions {
  /** Longest wait for the token's issuer to get its keys before verifying anyway. */
  timeoutMs: number
  checks?: RequestChecks
  logger?: Logger
  fetcher?: FetchJson
}

export type VerifyOutcome =
  | { valid: true, identity: VerifiedIdentity }
  | { valid: false, code: string, status: number, message: string, hint: string, issuer?: string, claim?: string, nearIssuer?: string, issuerDifference?: string, keyStatus?: IssuerStatus }

function isObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The unverified header and payload, when the token looks like a compact JWS; never trusted. */
export function peek (token: string): { header?: Record<string, unknown>, payload?: Record<string, unknown> } {
  const parts = token.split('.')
  const decode = (part: string | undefined): Record<string, unknown> | undefined => {
    if (part === undefined || part.length > 65536) return undefined
    try {
      const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
      return isObject(value) ? value : undefined
    } catch {
      return undefined
    }
  }
  return { header: decode(parts[0]), payload: parts.length === 3 ? decode(parts[1]) : undefined }
}

/** Not unref'd: in the CLI nothing else may be keeping the process alive while it waits. */
const sleep = async (ms: number): Promise<void> => {
  await new Promise<void>((resolve) => setTimeout(resolve, ms))
}

/** Waits until the issuer the token names (if configured) has usable keys or has failed once, or the deadline. */
async function waitForIssuer (verifier: Verifier, iss: unknown, deadline: number): Promise<void> {
  for (;;) {
    const status = verifier.status().find((s) => s.issuer === iss)
    if (status === undefined || status.ready || status.lastError !== null || Date.now() >= deadline) return
    await sleep(POLL_MS)
  }
}

export async function verifyToken (config: Config, token: string, options: VerifyCommandOptions): Promise<VerifyOutcome> {
  const verifier = new Verifier(config, { logger: options.logger, fetcher: options.fetcher })
  const deadline = Date.now() + options.timeoutMs
  try {
    verifier.start()
    const iss = peek(token).payload?.iss
    await waitForIssuer(verifier, iss, deadline)
    const identity = await beforeDeadline(verifier.verify(token, options.checks), deadline, verifier, iss)
    return { valid: true, identity }
  } catch (err) {
    if (!isVerificationError(err)) throw err
    const outcome: VerifyOutcome = { valid: false, code: err.code, status: err.status, message: err.message, hint: err.hint }
    if (err.details.issuer !== undefined) outcome.issuer = err.details.issuer
    if (err.details.claim !== undefined) outcome.claim = err.details.claim
    if (err.details.nearIssuer !== undefined) outcome.nearIssuer = err.details.nearIssuer
    if (err.details.issuerDifference !== undefined) outcome.issuerDifference = err.details.issuerDifference
    if (err.code === 'keys_unavailable' || err.code === 'key_not_found') {
      const iss = peek(token).payload?.iss
      const statuses = verifier.status()
      const status = statuses.find((s) => s.id === err.details.issuer) ?? statuses.find((s) => s.issuer === iss)
      if (status !== undefined) outcome.keyStatus = status
    }
    return outcome
  } finally {
    verifier.close()
  }
}

/** A token value for the terminal: JSON-quoted (control characters escaped) and cut short. */
function show (value: unknown): string {
  const text = JSON.stringify(value) ?? String(value)
  const safe = text.replace(/[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  return safe.length > MAX_SHOWN ? `${safe.slice(0, MAX_SHOWN)}…` : safe
}

function showTime (value: unknown, nowSeconds: number): string {
  if (typeof value !== 'number' || !Number.isFinite(value) || Math.abs(value) > MAX_NUMERIC_DATE) return show(value)
  const delta = Math.round(value - nowSeconds)
  const ago = delta < 0 ? `${-delta} s ago` : `in ${delta} s`
  return `${value} (${new Date(value * 1000).toISOString()}, ${ago})`
}

/**
 * The verification, unless the deadline (--timeout) comes first: a fetch of the keys still under way then (bounded
 * only by fetch.timeoutMs) makes the token undecided, keys_unavailable, as an issuer without keys by then does.
 */
async function beforeDeadline<T> (verification: Promise<T>, deadline: number, verifier: Verifier, iss: unknown): Promise<T> {
  verification.catch(() => {}) // settled after the deadline, when nobody waits for it any more
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const id = verifier.status().find((s) => s.issuer === iss)?.id
      reject(new VerificationError('keys_unavailable', id === undefined ? {} : { issuer: id }))
    }, Math.max(0, deadline - Date.now()))
  })
  try {
    return await Promise.race([verification, timedOut])
  } finally {
    clearTimeout(timer)
  }
}

/** The explanation printed for a rejected token. */
export function describeRejection (outcome: Extract<VerifyOutcome, { valid: false }>, token: string, config: Config, nowSeconds: number): string {
  const lines = [`token rejected: ${outcome.code} (HTTP ${outcome.status} from the service)`]
  lines.push(`  message: ${outcome.message}`)
  lines.push(`  hint:    ${outcome.hint}`)
  if (outcome.issuer !== undefined) lines.push(`  issuer:  ${outcome.issuer}`)
  if (outcome.claim !== undefined) lines.push(`  claim:   ${outcome.claim}`)
  if (outcome.nearIssuer !== undefined) lines.push(`  near:    issuer ${outcome.nearIssuer}, differs by ${outcome.issuerDifference ?? 'path'}`)
  const keys = outcome.keyStatus
  if (keys !== undefined) {
    lines.push(`  keys:    ${keys.source}, ${keys.state}, ${keys.keyCount} usable${keys.jwksUri === null ? '' : `, from ${keys.jwksUri}`}`)
    if (keys.lastError !== null) lines.push(`  error:   ${keys.lastError}`)
  }

  const { header, payload } = peek(token)
  if (header !== undefined || payload !== undefined) {
    lines.push('', 'the token says (decoded WITHOUT verification, for diagnosis only):')
    for (const name of ['alg', 'kid', 'typ']) if (header?.[name] !== undefined) lines.push(`  ${name.padEnd(4)} ${show(header[name])}`)
    for (const name of ['iss', 'aud', 'azp']) if (payload?.[name] !== undefined) lines.push(`  ${name.padEnd(4)} ${show(payload[name])}`)
    for (const name of ['iat', 'nbf', 'exp', 'auth_time']) {
      if (payload?.[name] !== undefined) lines.push(`  ${name.padEnd(4)} ${showTime(payload[name], nowSeconds)}`)
    }
  }
  lines.push('', 'configured issuers:')
  for (const issuer of config.issuers) {
    lines.push(`  ${issuer.id}: ${issuer.issuer}  audiences: ${issuer.audiences.join(', ')}  algorithms: ${issuer.algorithms.join(', ')}`)
  }
  return lines.join('\n')
}
