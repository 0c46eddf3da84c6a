/**
 * The one outbound HTTP path of the service (OIDC discovery and JWKS documents). Every request has a URL
 * policy checked before any I/O, a timeout over the whole exchange, a byte limit enforced while the body
 * streams, manual same-origin redirects and a JSON body. Errors name the URL and say what was wrong, so an
 * operator can fix the configuration or the provider; they never quote the response body.
 */
import { parseRetryAfter } from './retry-after.js'

export interface FetchJsonOptions {
  /** Covers connecting, redirects, headers and reading the whole body. */
  timeoutMs: number
  /** Largest accepted (decoded) body, in bytes. */
  maxResponseBytes: number
  /** Redirects followed at most; default 3. */
  maxRedirects?: number
}

export interface FetchJsonResult {
  /** The URL that finally answered (after redirects). */
  url: string
  body: unknown
  cacheControl?: string
  /** The response's Age header (RFC 9111 §5.1) in seconds; undefined when absent or malformed. */
  ageSeconds?: number
  durationMs: number
}

export type FetchJson = (url: string, opts: FetchJsonOptions) => Promise<FetchJsonResult>

export type FetchErrorKind =
  | 'url_not_allowed'
  | 'timeout'
  | 'network'
  | 'http_status'
  | 'redirect_not_allowed'
  | 'too_large'
  | 'not_json'
  | 'invalid_document'
  /** A key set that parses but has no key this service can use (the provider answered). */
  | 'no_usable_keys'

export class FetchError extends Error {
  readonly kind: FetchErrorKind
  /** The URL the problem is about (the configured one, or the redirect hop that failed). */
  readonly url: string
  /** The HTTP status the server answered, for http_status. */
  readonly status: number | undefined
  /** The wait a 429 or 503 asked for with a valid Retry-After, in ms from the answer (src/net/retry-after.ts). */
  readonly retryAfterMs: number | undefined

  constructor (kind: FetchErrorKind, url: string, message: string, options?: { cause?: unknown, status?: number, retryAfterMs?: number }) {
    super(message, options)
    this.name = 'FetchError'
    this.kind = kind
    this.url = url
    this.status = options?.status
    this.retryAfterMs = options?.retryAfterMs
  }
}

export const DEFAULT_MAX_REDIRECTS = 3
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308])
const LOOPBACK_IPV4 = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/
/** Location headers are quoted in messages; keep a hostile one from flooding the logs. */
const MAX_QUOTED_URL = 200

/** Whether a WHATWG URL's hostname is a loopback name or address (localhost, [::1], 127.x.y.z). */
export function isLoopbackHost (hostname: string): boolean {
  // WHATWG URL has already normalized the host: lower case, IPv4 in dotted decimal, IPv6 in brackets.
  return hostname === 'localhost' || hostname === '[::1]' || LOOPBACK_IPV4.test(hostname)
}

/** IPv4-mapped IPv6 of 127/8 or 0/8, as WHATWG URL writes it ([::ffff:7f00:1]). */
const MAPPED_LOCAL_IPV4 = /^\[::ffff:(?:7f[0-9a-f]{2}|[0-9a-f]{1,2}):[0-9a-f]{1,4}\]$/

/**
 * Whether a host name reaches this host: loopback, and what also connects here on Linux (0.0.0.0 and the rest of
 * 0/8, [::], IPv4-mapped forms of both) or resolves here by convention (localhost. and *.localhost, RFC 6761).
 * A DNS name that resolves to 127.0.0.1 is not caught here.
 */
function isThisHost (hostname: string): boolean {
  if (isLoopbackHost(hostname) || hostname === '[::]' || MAPPED_LOCAL_IPV4.test(hostname)) return true
  if (/^0\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)) return true
  const name = hostname.endsWith('.') ? hostname.slice(0, -1) : hostname
  return name === 'localhost' || name.endsWith('.localhost')
}

/**
 * 169.254/16 in dotted decimal, and its IPv6 forms as WHATWG URL writes them: IPv4-mapped ([::ffff:a9fe:…], which
 * a dual-stack socket connects to over IPv4), the deprecated IPv4-compatible ([::a9fe:…]) and the NAT64
 * well-known prefix ([64:ff9b::a9fe:…], which a NAT64 gateway connects to over IPv4).
 */
const LINK_LOCAL_IPV4 = /^(?:169\.254\.\d{1,3}\.\d{1,3}|\[(?:64:ff9b)?::(?:ffff:)?a9fe:[0-9a-f]{1,4}\])$/
/** fe80::/10, as WHATWG URL writes an IPv6 host (brackets, lower case, no zone). */
const LINK_LOCAL_IPV6 = /^\[fe[89ab][0-9a-f]:/
/**
 * Instance-metadata endpoints outside the link-local ranges: AWS's IPv6 one, Alibaba Cloud's (with its IPv6 forms,
 * as for 169.254/16 above: [::ffff:100.100.100.200] is written [::ffff:6464:64c8]), Google's names (`metadata`
 * alone is how its instances name it too: their DNS search path ends in google.internal).
 */
const METADATA_HOSTS = new Set(['[fd00:ec2::254]', '100.100.100.200', '[::ffff:6464:64c8]', '[::6464:64c8]', '[64:ff9b::6464:64c8]',
  'metadata.google.internal', 'metadata.google.internal.', 'metadata', 'metadata.'])

/**
 * Whether a host name is a link-local address or a cloud's instance-metadata endpoint: what answers there hands
 * out the machine's credentials to any GET from it, and a provider's key set is never there. A DNS name that
 * resolves to one (other than Google's own) is not caught.
 */
function isMetadataHost (hostname: string): boolean {
  return LINK_LOCAL_IPV4.test(hostname) || LINK_LOCAL_IPV6.test(hostname) || METADATA_HOSTS.has(hostname)
}

function parseAllowed (url: string): URL | undefined {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return undefined
  }
  if (parsed.username !== '' || parsed.password !== '') return undefined
  if (parsed.protocol === 'https:') return parsed
  if (parsed.protocol === 'http:' && isLoopbackHost(parsed.hostname)) return parsed
  return undefined
}

/** https always; http only to loopback (development); no other scheme, no credentials in the URL. */
export function isAllowedOutboundUrl (url: string): boolean {
  return parseAllowed(url) !== undefined
}

/**
 * Why a URL named by a document fetched from `from` (the jwks_uri of discovery metadata) may not be fetched, or
 * undefined: beside isAllowedOutboundUrl, it may not downgrade https to http, nor lead from a remote host to
 * this host (a document, or whoever answers for its host, would otherwise choose a local port to probe) or to a
 * link-local or instance-metadata address (where the machine's cloud credentials are served).
 */
export function namedUrlProblem (from: string, url: string): string | undefined {
  const source = parseAllowed(from)
  const target = parseAllowed(url)
  if (source === undefined || target === undefined) return 'it must be https (http only to a loopback host) without credentials'
  if (source.protocol === 'https:' && target.protocol !== 'https:') return 'it must be https: the document was fetched over https'
  if (isThisHost(target.hostname) && !isThisHost(source.hostname)) return 'it names a loopback host, and the document does not come from one'
  if (isMetadataHost(target.hostname) && !isMetadataHost(source.hostname)) {
    return 'it names a link-local address or a cloud\'s instance-metadata endpoint, and the document does not come from one'
  }
  return undefined
}

function quote (url: string): string {
  return JSON.stringify(url.length > MAX_QUOTED_URL ? `${url.slice(0, MAX_QUOTED_URL)}…` : url)
}

function describeCause (err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  // undici reports "fetch failed" and puts the useful part (ECONNREFUSED, certificate errors) in cause.
  const cause = err.cause
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code
    const text = typeof code === 'string' && !cause.message.includes(code) ? `${cause.message} (${code})` : cause.message
    return typeof code === 'string' && CERTIFICATE_ERROR.test(code) ? `${text}${CERTIFICATE_HINT}` : text
  }
  return err.message
}

/** OpenSSL's codes for a certificate chain Node does not trust (a private CA, a TLS-inspecting proxy). */
const CERTIFICATE_ERROR = /^(?:UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(?:_LOCALLY)?|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_UNTRUSTED)$/
const CERTIFICATE_HINT = '; if the provider\'s certificate comes from a private CA or a TLS-inspecting proxy, give node that CA with NODE_EXTRA_CA_CERTS=/path/ca.pem'

export async function fetchJson (url: string, opts: FetchJsonOptions): Promise<FetchJsonResult> {
  const started = performance.now()
  const maxRedirects = opts.maxRedirects ?? DEFAULT_MAX_REDIRECTS
  let current = parseAllowed(url)
  if (current === undefined) {
    throw new FetchError('url_not_allowed', url,
      `Refusing to fetch ${quote(url)}: only https URLs (or http to a loopback host) without credentials are allowed`)
  }

  const timeout = AbortSignal.timeout(opts.timeoutMs)
  const local = new AbortController()
  const signal = AbortSignal.any([timeout, local.signal])
  let currentUrl = current.href

  try {
    for (let redirects = 0; ; redirects++) {
      const res = await fetch(currentUrl, {
        redirect: 'manual',
        signal,
        headers: { accept: 'application/json' }
      })

      if (REDIRECT_STATUSES.has(res.status)) {
        await res.body?.cancel()
        const location = res.headers.get('location')
        if (location === null) {
          throw new FetchError('http_status', currentUrl,
            `GET ${currentUrl} answered HTTP ${res.status} without a Location header`, { status: res.status })
        }
        if (redirects >= maxRedirects) {
          throw new FetchError('redirect_not_allowed', currentUrl,
            `GET ${currentUrl} redirected more than ${maxRedirects} times; configure the final URL instead`)
        }
        const next = nextHop(current, currentUrl, location)
        current = next
        currentUrl = next.href
        continue
      }

      if (res.status !== 200) {
        await res.body?.cancel()
        throw statusError(res, currentUrl)
      }

      const bytes = await readLimited(res, currentUrl, opts.maxResponseBytes, local)
      const body = parseJson(bytes, currentUrl, res.headers.get('content-type'))
      const cacheControl = res.headers.get('cache-control') ?? undefined
      const ageSeconds = parseAge(res.headers.get('age'))
      return { url: currentUrl, body, cacheControl, ageSeconds, durationMs: performance.now() - started }
    }
  } catch (err) {
    if (err instanceof FetchError) throw err
    if (timeout.aborted) {
      throw new FetchError('timeout', currentUrl,
        `GET ${currentUrl} did not complete within ${opts.timeoutMs} ms (fetch.timeoutMs)`, { cause: err })
    }
    throw new FetchError('network', currentUrl, `GET ${currentUrl} failed: ${describeCause(err)}`, { cause: err })
  } finally {
    // Releases the connection of a body we stopped reading, whatever happened.
    local.abort()
  }
}

/** Statuses whose Retry-After asks a client to come back later (RFC 9110 §10.2.3, RFC 6585 §4). */
const RETRY_AFTER_STATUSES = new Set([429, 503])
/** A Retry-After is quoted in the message only when ignored; keep a hostile one short. */
const MAX_QUOTED_RETRY_AFTER = 64

/**
 * A status other than 200. For a 429 or 503 the message quotes its Retry-After, and says when it is ignored
 * (malformed, past, too long) so that an operator knows why the service did not wait as asked.
 */
function statusError (res: Response, url: string): FetchError {
  const base = `GET ${url} answered HTTP ${res.status}`
  const header = RETRY_AFTER_STATUSES.has(res.status) ? res.headers.get('retry-after') : null
  if (header === null) return new FetchError('http_status', url, base, { status: res.status })
  const quoted = JSON.stringify(header.length > MAX_QUOTED_RETRY_AFTER ? `${header.slice(0, MAX_QUOTED_RETRY_AFTER)}…` : header)
  const parsed = parseRetryAfter(header, Date.now())
  if ('problem' in parsed) {
    return new FetchError('http_status', url, `${base} with Retry-After ${quoted}, ignored: ${parsed.problem}`, { status: res.status })
  }
  return new FetchError('http_status', url, `${base} with Retry-After ${quoted}`, { status: res.status, retryAfterMs: parsed.delayMs })
}

/** Age = delta-seconds (RFC 9111 §5.1); anything else (several values, a sign, a fraction) is ignored. */
function parseAge (header: string | null): number | undefined {
  if (header === null) return undefined
  const value = header.trim()
  return /^\d+$/.test(value) ? Number(value) : undefined
}

/**
 * A redirect is followed only to the same origin (scheme, host and port): another port of the same host may
 * be another service. Never from https down to http.
 */
function nextHop (from: URL, fromUrl: string, location: string): URL {
  let target: URL
  try {
    target = new URL(location, from)
  } catch {
    throw new FetchError('redirect_not_allowed', fromUrl,
      `GET ${fromUrl} redirected to an invalid URL ${quote(location)}`)
  }
  if (target.hostname !== from.hostname) {
    throw new FetchError('redirect_not_allowed', fromUrl,
      `GET ${fromUrl} redirected to another host (${quote(target.href)}); configure the final URL instead`)
  }
  if (from.protocol === 'https:' && target.protocol !== 'https:') {
    throw new FetchError('redirect_not_allowed', fromUrl,
      `GET ${fromUrl} redirected from https down to ${quote(target.href)}`)
  }
  if (target.origin !== from.origin) {
    throw new FetchError('redirect_not_allowed', fromUrl,
      `GET ${fromUrl} redirected to another origin (${quote(target.href)}: another port or scheme); configure the final URL instead`)
  }
  if (!isAllowedOutboundUrl(target.href)) {
    throw new FetchError('redirect_not_allowed', fromUrl,
      `GET ${fromUrl} redirected to a URL that is not allowed (${quote(target.href)})`)
  }
  return target
}

async function readLimited (res: Response, url: string, limit: number, local: AbortController): Promise<Buffer> {
  const tooLarge = (): FetchError =>
    new FetchError('too_large', url, `GET ${url}: body exceeds ${limit} bytes (fetch.maxResponseBytes)`)
  const declared = res.headers.get('content-length')
  if (declared !== null && Number(declared) > limit) {
    local.abort()
    throw tooLarge()
  }
  if (res.body === null) return Buffer.alloc(0)

  const chunks: Uint8Array[] = []
  let total = 0
  const reader = res.body.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > limit) {
      local.abort()
      await reader.cancel().catch(() => {})
      throw tooLarge()
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks, total)
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

function parseJson (bytes: Buffer, url: string, contentType: string | null): unknown {
  try {
    return JSON.parse(utf8.decode(bytes))
  } catch {
    // No cause: V8's SyntaxError quotes the body, and bodies never reach messages or logs.
    const type = contentType === null ? 'no content-type' : `content-type ${contentType.slice(0, 100)}`
    const what = bytes.length === 0 ? 'empty' : `not JSON (${type})`
    throw new FetchError('not_json', url, `GET ${url}: body is ${what}`)
  }
}
