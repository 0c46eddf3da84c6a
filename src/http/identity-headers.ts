/**
 * The identity headers forward-auth answers with, for the proxy to copy onto the upstream request.
 *
 * Every configured header is always set, empty when the identity has no value, so that a proxy that copies
 * our headers over the client's (Envoy allowed_upstream_headers, Traefik authResponseHeaders, nginx
 * auth_request_set + proxy_set_header) never lets a client's own copy through.
 *
 * Encoding, so that any value survives HTTP and lists are unambiguous: every character outside printable
 * ASCII, every "%" and ",", and a space at either end are percent-encoded as UTF-8 (decode each value with
 * decodeURIComponent). Lists (groups, roles) are the encoded members joined by "," without spaces; empty
 * members are left out, so an empty header is an empty list. email-verified and groups-overage are "true" or
 * "false" (with groups-overage "true" the groups header is not the user's list: the token left them out). The
 * identity header, when turned on, is the normalized identity without `claims` as base64url (no padding)
 * of UTF-8 JSON; when off it is set empty like any absent value.
 */
import type { ForwardAuthConfig } from '../config/types.js'
import type { VerifiedIdentity } from '../core/identity.js'

/** A character's UTF-8 bytes as %XX (a lone surrogate, which has none, as U+FFFD's). */
function encodeChar (ch: string): string {
  let out = ''
  for (const byte of Buffer.from(ch, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  return out
}

/** Runs of what must be encoded: outside printable ASCII, "%" and ",". */
const UNSAFE_RUN = /[^\x20-\x24\x26-\x2b\x2d-\x7e]+/g

/**
 * A run of characters to encode. encodeURIComponent escapes each of them as UTF-8 %XX in upper case, as encodeChar
 * does, in one native pass (a per-character loop cost about 1 ms on every forward-auth answer for a user whose
 * name, a claim users edit at most providers, held a few thousand non-ASCII characters); it throws on a lone
 * surrogate, which the per-character path encodes as U+FFFD.
 */
function encodeRun (run: string): string {
  return run.isWellFormed() ? encodeURIComponent(run) : Array.from(run, encodeChar).join('')
}

/** Percent-encodes what could be lost or misread in a header value (see the module comment). */
export function encodeHeaderValue (value: string): string {
  let out = value.replace(UNSAFE_RUN, encodeRun)
  // A space at either end would be trimmed by the proxy.
  if (out.startsWith(' ')) out = `%20${out.slice(1)}`
  if (out.endsWith(' ')) out = `${out.slice(0, -1)}%20`
  return out
}

export function encodeHeaderList (values: readonly string[]): string {
  return values.filter((v) => v !== '').map(encodeHeaderValue).join(',')
}

const text = (value: string | null): string => value === null ? '' : encodeHeaderValue(value)

/** The identity without the raw claims: bounded in size and free of claims nobody mapped. */
function identityJson (identity: VerifiedIdentity): string {
  const { claims: _claims, ...rest } = identity
  return Buffer.from(JSON.stringify(rest), 'utf8').toString('base64url')
}

/** Header name → value for a verified identity, per the forwardAuth configuration. */
export function identityHeaders (identity: VerifiedIdentity, config: Pick<ForwardAuthConfig, 'headers' | 'identityHeader'>): Record<string, string> {
  const h = config.headers
  const out: Record<string, string> = {
    [h.subject]: encodeHeaderValue(identity.subject),
    [h.userKey]: encodeHeaderValue(identity.userKey),
    [h.issuer]: encodeHeaderValue(identity.issuer.url),
    [h.issuerId]: identity.issuer.id,
    [h.email]: text(identity.user.email),
    [h.emailVerified]: identity.user.emailVerified ? 'true' : 'false',
    [h.name]: text(identity.user.name),
    [h.groups]: encodeHeaderList(identity.groups),
    // "true" when the provider left groups out of the token (Entra's overage): the groups header is then not the list.
    [h.groupsOverage]: identity.groupsOverage ? 'true' : 'false',
    [h.roles]: encodeHeaderList(identity.roles),
    [h.tenant]: text(identity.tenant),
    // Set (empty) even when turned off, so that a client's own copy never reaches the upstream.
    [h.identity]: config.identityHeader ? identityJson(identity) : ''
  }
  return out
}
