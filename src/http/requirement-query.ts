/**
 * Per-route requirements given as query parameters of the forward-auth URL, as an operator writes them in
 * the proxy configuration: `/forward-auth?group=admins&group=ops&role=editor&audience=my-app&issuer=google`.
 * Repeating a parameter means "any of these"; different parameters must all hold.
 *
 * Parsed strictly: an unknown parameter, an empty or oversized value, an audience that is not configured or
 * an issuer id that is not configured is a configuration mistake, and the answer is 403
 * requirement_invalid for every request (fail closed) — never 400, which nginx would turn into a 500.
 */
import { VerificationError } from '../errors.js'
import type { Requirements } from '../core/requirements.js'

/** Bounds on the work a query can cause; real auth URLs have a handful of parameters. */
export const MAX_REQUIREMENT_PARAMS = 64
export const MAX_REQUIREMENT_VALUE_LENGTH = 1024

const PARAMS = { group: 'groups', role: 'roles', audience: 'audiences', issuer: 'issuers' } as const
type Param = keyof typeof PARAMS

export interface KnownValues {
  issuerIds: ReadonlySet<string>
  audiences: ReadonlySet<string>
}

/** Why a query was refused, for the log: the parameter name when it is printable, never a value. */
export class RequirementQueryError extends VerificationError {
  readonly parameter: string
  readonly reason: string

  constructor (parameter: string, reason: string) {
    super('requirement_invalid')
    this.parameter = /^[A-Za-z0-9_.-]{1,64}$/.test(parameter) ? parameter : '(unprintable)'
    this.reason = reason
  }
}

const isParam = (name: string): name is Param => Object.hasOwn(PARAMS, name)

/** `search` is the raw query string without "?" (may be empty). */
export function parseRequirementQuery (search: string, known: KnownValues): Requirements {
  const out = { groups: [] as string[], roles: [] as string[], audiences: [] as string[], issuers: [] as string[] }
  if (search === '') return out
  let count = 0
  for (const [name, value] of new URLSearchParams(search)) {
    if (++count > MAX_REQUIREMENT_PARAMS) throw new RequirementQueryError(name, 'too many parameters')
    if (!isParam(name)) throw new RequirementQueryError(name, 'unknown parameter')
    if (value === '' || value.length > MAX_REQUIREMENT_VALUE_LENGTH) throw new RequirementQueryError(name, 'empty or oversized value')
    if (name === 'issuer' && !known.issuerIds.has(value)) throw new RequirementQueryError(name, 'not a configured issuer id')
    if (name === 'audience' && !known.audiences.has(value)) throw new RequirementQueryError(name, 'not a configured audience')
    const list = out[PARAMS[name]]
    if (!list.includes(value)) list.push(value)
  }
  return out
}

/** The raw query string of a request URL, without "?"; a fragment (never sent by proxies) is dropped. */
export function rawQuery (url: string): string {
  const q = url.indexOf('?')
  if (q === -1) return ''
  const hash = url.indexOf('#', q)
  return url.slice(q + 1, hash === -1 ? undefined : hash)
}
