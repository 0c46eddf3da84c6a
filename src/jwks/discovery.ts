/**
 * OpenID Connect Discovery 1.0: finds an issuer's jwks_uri from its provider metadata. The metadata must
 * name exactly the configured issuer (§4.3), which keeps one provider from speaking for another.
 */
import type { FetchConfig } from '../config/types.js'
import { FetchError, fetchJson, namedUrlProblem, type FetchJson } from '../net/fetch-json.js'

export const DISCOVERY_PATH = '/.well-known/openid-configuration'

export class DiscoveryError extends Error {
  readonly issuer: string

  constructor (issuer: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'DiscoveryError'
    this.issuer = issuer
  }
}

/** §4: any terminating "/" of the issuer is removed before the well-known path is appended. */
export function discoveryUrl (issuer: string): string {
  return issuer.replace(/\/+$/, '') + DISCOVERY_PATH
}

/**
 * The longest jwks_uri taken from a provider's metadata. Real ones are under 200 characters (Azure AD B2C's, with
 * its policy, among the longest); a document's URL of hundreds of KiB would be copied into every log line about it.
 */
export const MAX_JWKS_URI_CHARS = 2048

/** Values from the provider are quoted (JSON, truncated) so that a hostile document cannot shape the log line. */
function show (value: unknown): string {
  if (value === undefined) return 'no value'
  let text: string
  try {
    text = JSON.stringify(value) ?? String(value)
  } catch {
    // JSON.stringify recurses: an array or object nested some thousands deep (a few KiB of "[") overflows the
    // stack, and the RangeError would replace the message that names the issuer and the member.
    return `${Array.isArray(value) ? 'an array' : 'an object'} nested too deep to quote`
  }
  return text.length > 200 ? `${text.slice(0, 200)}…` : text
}

/**
 * `url` overrides where the metadata is read (a {tenantid} template issuer is described by a shared document,
 * Entra's .../common/v2.0/...); its issuer must still be exactly the configured one, here the template itself.
 */
export async function discoverJwksUri (
  issuer: string,
  fetchOpts: FetchConfig,
  fetcher: FetchJson = fetchJson,
  url: string = discoveryUrl(issuer)
): Promise<{ jwksUri: string, metadata: Record<string, unknown> }> {
  let body: unknown
  try {
    body = (await fetcher(url, fetchOpts)).body
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err)
    // A 404 there is most often an issuer URL that lacks its path (/v2.0, /realms/NAME, /oauth2/default).
    const notFound = err instanceof FetchError && err.status === 404
    const hint = notFound ? ' (check the issuer\'s path, e.g. /v2.0, /realms/NAME or /oauth2/default, or set discoveryUrl or jwksUri)' : ''
    throw new DiscoveryError(issuer, `Discovery for issuer ${issuer} failed: ${reason}${hint}`, { cause: err })
  }

  const fail = (problem: string): DiscoveryError =>
    new DiscoveryError(issuer, `Discovery for issuer ${issuer} failed: the metadata at ${url} ${problem}`)

  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw fail('is not a JSON object')
  const metadata = body as Record<string, unknown>
  if (metadata.issuer !== issuer) {
    throw fail(`names issuer ${show(metadata.issuer)}, expected exactly ${JSON.stringify(issuer)} ` +
      '(the configured issuer must match the provider\'s, including scheme and trailing slash)')
  }
  const jwksUri = metadata.jwks_uri
  if (typeof jwksUri !== 'string') throw fail(`has no "jwks_uri" string (found ${show(jwksUri)})`)
  // Every log line, metric label and /readyz answer about the issuer's keys repeats the URL.
  if (jwksUri.length > MAX_JWKS_URI_CHARS) {
    throw fail(`has a "jwks_uri" of ${jwksUri.length} characters (${show(jwksUri)}), longer than a JWKS URL may be here (${MAX_JWKS_URI_CHARS})`)
  }
  const problem = namedUrlProblem(url, jwksUri)
  if (problem !== undefined) throw fail(`has a "jwks_uri" that is not allowed (${show(jwksUri)}): ${problem}`)
  return { jwksUri, metadata }
}
