/**
 * For `issuer_unknown`: the configured issuer a token's `iss` nearly names, and how the two differ. The most
 * common mistake when configuring an OpenID provider is an issuer URL one character off what the provider
 * writes in its tokens (Auth0's trailing slash, Okta's `/oauth2/default`, a Keycloak realm, `/v2.0` on Entra,
 * or Entra's v1 tokens, issued by another host),
 * and a plain "not configured" leaves the operator to decode the token to find out. The answer names only
 * the configured issuer's id and a difference from a fixed list, never the token's `iss` itself.
 *
 * Cheap enough for a path anyone can reach without a signature (a forged `iss` is refused before any key is
 * looked at): string comparisons only, no URL parsing, and an `iss` longer than MAX_COMPARED_LENGTH is not
 * compared at all.
 */

/** How the token's `iss` differs from the configured issuer URL, from the closest to the farthest. */
export type IssuerDifference = 'trailing_slash' | 'letter_case' | 'scheme' | 'port' | 'path' | 'token_version'

export const ISSUER_DIFFERENCES: readonly IssuerDifference[] = ['trailing_slash', 'letter_case', 'scheme', 'port', 'path', 'token_version']

/**
 * Entra ID's v1 token issuer hosts and the sign-in host of the same cloud, whose `/{tenant}/v2.0` issues v2
 * tokens: which of the two a token has depends on the application's accessTokenAcceptedVersion, not on the
 * endpoint the client used, so a v1 `iss` at an issuer configured for v2 (or the reverse) is a common surprise.
 */
export const ENTRA_V1_ISSUER_HOSTS: Readonly<Record<string, string>> = {
  'sts.windows.net': 'login.microsoftonline.com',
  'sts.chinacloudapi.cn': 'login.chinacloudapi.cn'
}

export interface NearIssuer {
  /** The configured issuer's id. */
  id: string
  difference: IssuerDifference
}

/** One spelling of a configured issuer: its URL, an alias, or a `{tenantid}` template. */
export interface KnownIssuerUrl {
  id: string
  url: string
}

/** Issuer URLs are short; a longer `iss` is not a near miss of any of them. */
export const MAX_COMPARED_LENGTH = 512

interface Shape {
  scheme: string
  host: string
  port: string
  path: string
}

/** scheme://host[:port]/path, lower-cased scheme and host; undefined for anything without "://". */
function shapeOf (url: string): Shape | undefined {
  const sep = url.indexOf('://')
  if (sep <= 0) return undefined
  const rest = url.slice(sep + 3)
  const slash = rest.indexOf('/')
  const authority = slash === -1 ? rest : rest.slice(0, slash)
  const path = slash === -1 ? '' : rest.slice(slash)
  const colon = authority.lastIndexOf(':')
  // A colon inside brackets belongs to an IPv6 address, not to a port.
  const hasPort = colon !== -1 && colon > authority.lastIndexOf(']')
  return {
    scheme: url.slice(0, sep).toLowerCase(),
    host: (hasPort ? authority.slice(0, colon) : authority).toLowerCase(),
    port: hasPort ? authority.slice(colon + 1) : '',
    path
  }
}

function withoutTrailingSlash (url: string): string {
  return url.endsWith('/') ? url.slice(0, -1) : url
}

/** The difference between iss and one configured URL, or undefined when they are not near at all. */
function differenceOf (iss: string, issShape: Shape, url: string): IssuerDifference | undefined {
  const template = url.indexOf('{tenantid}')
  if (template !== -1) {
    // A template stands for many URLs: only its origin can be compared.
    const shape = shapeOf(url.slice(0, template))
    if (shape === undefined) return undefined
    return sameOrigin(shape, issShape) ? 'path' : otherEntraVersion(shape, issShape) ? 'token_version' : undefined
  }
  if (withoutTrailingSlash(iss) === withoutTrailingSlash(url)) return 'trailing_slash'
  if (iss.toLowerCase() === url.toLowerCase()) return 'letter_case'
  const shape = shapeOf(url)
  if (shape === undefined) return undefined
  if (shape.host !== issShape.host) return otherEntraVersion(shape, issShape) ? 'token_version' : undefined
  if (shape.scheme !== issShape.scheme) return shape.port === issShape.port && shape.path === issShape.path ? 'scheme' : undefined
  if (shape.port !== issShape.port) return shape.path === issShape.path ? 'port' : undefined
  return 'path'
}

/** Whether one is an Entra v1 token issuer and the other the v2 issuer of the same cloud (either way round). */
function otherEntraVersion (a: Shape, b: Shape): boolean {
  if (a.scheme !== 'https' || b.scheme !== 'https' || a.port !== '' || b.port !== '') return false
  return (Object.hasOwn(ENTRA_V1_ISSUER_HOSTS, a.host) && ENTRA_V1_ISSUER_HOSTS[a.host] === b.host) ||
    (Object.hasOwn(ENTRA_V1_ISSUER_HOSTS, b.host) && ENTRA_V1_ISSUER_HOSTS[b.host] === a.host)
}

function sameOrigin (a: Shape, b: Shape): boolean {
  return a.scheme === b.scheme && a.host === b.host && a.port === b.port
}

/**
 * The configured issuer whose URL the token's `iss` nearly matches: the closest kind of difference wins, then
 * the order of `known` (the configuration's order).
 */
export function nearIssuer (iss: string, known: Iterable<KnownIssuerUrl>): NearIssuer | undefined {
  if (iss.length === 0 || iss.length > MAX_COMPARED_LENGTH) return undefined
  const issShape = shapeOf(iss)
  if (issShape === undefined) return undefined
  let best: NearIssuer | undefined
  let bestRank = ISSUER_DIFFERENCES.length
  for (const { id, url } of known) {
    const difference = differenceOf(iss, issShape, url)
    if (difference === undefined) continue
    const rank = ISSUER_DIFFERENCES.indexOf(difference)
    if (rank < bestRank) {
      best = { id, difference }
      bestRank = rank
    }
  }
  return best
}
