/**
 * The URL rule of issuer, jwksUri and the provider options' URLs: absolute https, or http to a loopback host;
 * no whitespace, user name, password, query or fragment. Messages never show what may be a credential.
 */
import { describe, report, type Ctx } from './schema-check.js'
import type { Path } from './document.js'

function isLoopbackHost (hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
}

/**
 * A URL for "got …" without what may be a credential: a user name or password (shown as "…@"), a query or a
 * fragment (cut off).
 */
function describeUrl (value: string): string {
  const cut = value.search(/[?#]/)
  let shown = cut < 0 ? value : value.slice(0, cut)
  const withoutUser = shown.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^/]*@/i, (_m, scheme: string | undefined) => `${scheme ?? ''}…@`)
  if (cut < 0 && withoutUser === shown) return describe(value)
  shown = withoutUser + (cut < 0 ? '' : '…')
  return `${describe(shown)} (the rest not shown: it may hold a credential)`
}

/** The https-or-loopback-http URL rule for issuer and jwksUri; reports and returns false when broken. */
export function checkUrl (value: string, path: Path, ctx: Ctx): boolean {
  const got = describeUrl(value)
  if (/\s/.test(value)) {
    report(ctx, path, `expected a URL without whitespace, got ${got}`)
    return false
  }
  let url: URL
  try {
    url = new URL(value)
  } catch {
    report(ctx, path, `expected an absolute https URL, got ${got}`)
    return false
  }
  if (url.protocol === 'http:') {
    if (!isLoopbackHost(url.hostname)) {
      report(ctx, path, `expected an https URL (http is allowed only for loopback hosts: 127.0.0.0/8, ::1, localhost), got ${got}`)
      return false
    }
  } else if (url.protocol !== 'https:') {
    report(ctx, path, `expected an https URL, got ${got}`)
    return false
  }
  // The URL parser mends `https:host`, `https:/host`, `https:\\host` and `HTTPS://`; an issuer is compared
  // with the token's iss exactly, and a provider writes `https://` in lower case, so such an issuer never matched.
  if (!value.startsWith(`${url.protocol}//`)) {
    report(ctx, path, `expected the URL to start with ${url.protocol}// in lower case, as providers write it, got ${got}`)
    return false
  }
  // An empty one too (`https://@host`, `https://:@host`): the parser drops it, and the issuer would never match iss.
  if (url.username !== '' || url.password !== '' || /^[a-z]+:\/\/[^/?#\\]*@/.test(value)) {
    report(ctx, path, 'expected a URL without a user name or password')
    return false
  }
  if (value.includes('?') || value.includes('#')) {
    report(ctx, path, `expected a URL without a query string or fragment, got ${got}`)
    return false
  }
  return true
}
