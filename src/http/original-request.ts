/**
 * The original request a proxy asks about, read from the headers each proxy sends:
 *
 *   nginx auth_request   whatever the operator sets: X-Original-URI, X-Original-Method, X-Original-Host,
 *                        X-Original-URL, X-Forwarded-Host (see examples/nginx)
 *   Traefik ForwardAuth  X-Forwarded-Method, X-Forwarded-Host, X-Forwarded-Uri (set by Traefik)
 *   Envoy ext_authz      the request itself: original method, Host, and path after the path_prefix
 *
 * Used for the log line and for matching forwardAuth.rules. Rules only ever ADD requirements, so every
 * reading is kept as a candidate and a rule applies when ANY candidate matches (a client that adds its own
 * X-Original-URI can only make more rules apply to itself, never fewer), and a dimension nothing tells us
 * about matches every rule (fail closed): no header at all, or a header that cannot be read in full (a reading
 * longer than MAX_READING_LENGTH, path readings longer than that together, more than MAX_READINGS distinct
 * readings in one header, a path of more than MAX_PATH_SEGMENTS segments). Dropping only the unreadable part would let a client choose what is left.
 */
import type { IncomingHttpHeaders } from 'node:http'
import type { ForwardAuthRuleConfig } from '../config/types.js'

/** Candidate readings; an empty list means "unknown". Methods upper case, hosts lower case without port. */
export interface OriginalRequest {
  methods: string[]
  hosts: string[]
  /** Path variants (raw, decoded, normalized), lower case, without query. */
  paths: string[]
}

/** What the request log shows: the first reading of each, the path without its query (which may carry secrets). */
export interface OriginalSummary {
  method: string | null
  host: string | null
  path: string | null
}

/**
 * A reading longer than this (a path: without its query) makes its dimension unknown, and so do path readings
 * (distinct, from every header) longer than this together: each is read in up to six forms, and three path
 * headers of 8 KiB each cost about 1 ms a request. Longer than any host name or method, and than the paths apps
 * route on; the query, which may be long, is not read.
 */
export const MAX_READING_LENGTH = 8192
/**
 * More distinct readings in one header than this make its dimension unknown: each costs a few string passes, and
 * a client that sends thousands of comma-separated pieces must not cost the service milliseconds per request.
 */
export const MAX_READINGS = 16
/**
 * A path reading with more separators ("/" or "\\") than this, as sent or percent-decoded once or twice, makes the
 * path unknown. Each of its up to six forms is normalized segment by segment: 8 KiB of "/a" in each of the path
 * headers cost about 3 ms a request, on a route that is never rate limited and reads the path before the token.
 * Counted before any form is decoded further or normalized; apps route on far fewer segments.
 */
export const MAX_PATH_SEGMENTS = 128
const LOG_PATH_LENGTH = 256

/** Headers with which a client asks the app to take its POST as another method (X-HTTP-Method-Override and kin). */
export const METHOD_OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override'] as const

/**
 * The query parameter with which a client asks the app to take its POST as another method: Express's
 * method-override with a query key (methodOverride('_method'), its documented form), and Symfony and so Laravel,
 * which read it from the query as well as the form body. The app decodes the name, so each of its characters may
 * come percent-encoded ("%5Fmethod"); one native scan finds them, however long the query.
 */
const QUERY_METHOD_OVERRIDE = /[?&](?:_|%5[Ff])(?:m|%6[Dd])(?:e|%65)(?:t|%74)(?:h|%68)(?:o|%6[Ff])(?:d|%64)=([^&#]*)/g

/** A dimension no header could tell us about in full: every rule applies. */
const UNREADABLE = undefined

/** How a header's values are read: a URI's readings are cut at its query, and only pieces that look like URIs count. */
interface ReadingKind {
  cut: (reading: string) => string
  /** What separates the pieces of a value (the whole value is a reading too). */
  separator: string
  /** Whether the piece of `value` that starts at `at` is a reading of its own. */
  piece: (value: string, at: number) => boolean
}

/** Methods and hosts: lists ("a.example, b.example", or without the space) of plain values. */
const PLAIN: ReadingKind = { cut: (v) => v, separator: ',', piece: () => true }
const isLetter = (c: number): boolean => (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a
const isSchemeChar = (c: number): boolean => isLetter(c) || (c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e

/** Whether `value` has "scheme://" at `at` (RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )). */
function schemeAt (value: string, at: number): boolean {
  if (!isLetter(value.charCodeAt(at))) return false
  let i = at + 1
  while (i < value.length && isSchemeChar(value.charCodeAt(i))) i++
  return value.startsWith('://', i)
}
/**
 * URIs: Node joins two header lines with ", ", and the second one starts with a path or an absolute URL. A request
 * target has no raw space, so a comma without one (a query's "?files=/a,/b,/c") never makes a piece, and a
 * client cannot fake a line boundary inside the proxy's own URI.
 */
const URI: ReadingKind = {
  cut: (v) => withoutQuery(v),
  separator: ', ',
  piece: (value, at) => {
    const c = value.charCodeAt(at)
    return c === 0x2f || c === 0x5c || schemeAt(value, at) // "/", "\\" or an absolute URL
  }
}

const isBlank = (c: number): boolean => c === 0x20 || c === 0x09

/**
 * The readings of one header: each value, and each comma-separated piece of it (Node joins repeated headers
 * with ", "), trimmed, without duplicates. UNREADABLE when one is too long or there are too many. Pieces that
 * are not readings are skipped without being copied: a value may hold thousands of them.
 */
function values (headers: IncomingHttpHeaders, name: string, kind: ReadingKind = PLAIN): string[] | typeof UNREADABLE {
  const raw = headers[name]
  if (raw === undefined) return []
  const out = new Set<string>()
  const add = (text: string): boolean => {
    const reading = kind.cut(text.trim())
    if (reading === '') return true
    if (reading.length > MAX_READING_LENGTH) return false
    out.add(reading)
    return out.size <= MAX_READINGS
  }
  for (const value of Array.isArray(raw) ? raw : [raw]) {
    if (!add(value)) return UNREADABLE
    const sep = kind.separator
    for (let next = value.indexOf(sep), at = 0; next !== -1 || at > 0;) {
      const end = next === -1 ? value.length : next
      let start = at
      while (start < end && isBlank(value.charCodeAt(start))) start++
      if (start < end && kind.piece(value, start) && !add(value.slice(start, end))) return UNREADABLE
      if (next === -1) break
      at = next + sep.length
      next = value.indexOf(sep, at)
    }
  }
  return [...out]
}

/** A URI without its query and fragment (which rules do not read, and which may be long). */
function withoutQuery (uri: string): string {
  const cut = uri.search(/[?#]/)
  return cut === -1 ? uri : uri.slice(0, cut)
}

function hostOf (value: string): string | undefined {
  let host = value.trim().toLowerCase()
  if (host.startsWith('[')) {
    const end = host.indexOf(']')
    host = end === -1 ? host : host.slice(0, end + 1)
  } else {
    host = host.replace(/:\d*$/, '')
  }
  host = host.replace(/\.$/, '')
  return host === '' ? undefined : host
}

/** A host every parser reads as itself: letters, digits, dots and hyphens, and a port. */
const PLAIN_HOST = /^[A-Za-z0-9.-]+(?::\d*)?$/

/**
 * A host as sent (lower case, without its port and trailing dot), and as a WHATWG URL parser reads it: apps that
 * build their URL as new URL(req.url, "http://" + req.headers.host), as fetch-style Node frameworks do, read
 * "x@billing.example.com", "billing%2Eexample.com" and "billing.example.com\\x" as billing.example.com, and nginx
 * passes such a Host on as it came (a server without server_name takes it).
 */
function hostForms (value: string): string[] {
  const host = hostOf(value)
  const forms = host === undefined ? [] : [host]
  if (PLAIN_HOST.test(value)) return forms
  try {
    const parsed = hostOf(new URL(`http://${value}`).hostname)
    if (parsed !== undefined && parsed !== host) forms.push(parsed)
  } catch {
    // No host to a WHATWG parser: an app that builds its URL from it fails too.
  }
  return forms
}

/** Splits an absolute URL into host and path-with-query; a relative reference is all path. */
function splitUrl (value: string): { host?: string, uri: string } {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)(.*)$/.exec(value)
  if (m === null) return { uri: value }
  const authority = m[1]!.replace(/^.*@/, '')
  const host = hostOf(authority)
  return host === undefined ? { uri: m[2]! } : { host, uri: m[2]! }
}

/** Decodes valid %XX sequences (UTF-8) and leaves invalid ones as they are. */
function lenientDecode (value: string): string {
  try {
    return decodeURIComponent(value)
  } catch {
    return value.replace(/%[0-9A-Fa-f]{2}/g, (seq) => {
      const byte = parseInt(seq.slice(1), 16)
      return byte < 0x80 ? String.fromCharCode(byte) : seq
    })
  }
}

/** RFC 3986 §5.2.4 dot-segment removal, after turning backslashes into slashes and collapsing "//". */
function normalizePath (path: string): string {
  const segments = path.replace(/\\/g, '/').split('/')
  const out: string[] = []
  for (const raw of segments) {
    // ";jsessionid=…" and other matrix parameters: servlet containers ignore them when routing.
    const params = raw.indexOf(';')
    const seg = params === -1 ? raw : raw.slice(0, params)
    if (seg === '' || seg === '.') continue
    if (seg === '..') out.pop()
    else out.push(seg)
  }
  const trailing = /[/\\]$/.test(path) && out.length > 0 ? '/' : ''
  return '/' + out.join('/') + trailing
}

/**
 * How a WHATWG URL parser (Node's `new URL(req.url, base)`, browsers, most frameworks) reads a path: "//host/x"
 * and "/\\host/x" name a host, and the path is "/x". UNREADABLE when the parser refuses it.
 */
function whatwgPath (path: string): string | typeof UNREADABLE {
  try {
    return new URL(path, 'http://original.invalid').pathname
  } catch {
    return UNREADABLE
  }
}

/** A path every form of which is itself: non-empty segments without %, ., ;, \\ or characters a URL parser escapes. */
const PLAIN_PATH = /^(?:\/[\w~+=@!$&'()*:,-]+)*\/?$/

/** Whether `path` has more than MAX_PATH_SEGMENTS "/" and "\\" in all (native indexOf; stops at the bound). */
function tooManySegments (path: string): boolean {
  let separators = 0
  for (let i = path.indexOf('/'); i !== -1 && separators <= MAX_PATH_SEGMENTS; i = path.indexOf('/', i + 1)) separators++
  for (let i = path.indexOf('\\'); i !== -1 && separators <= MAX_PATH_SEGMENTS; i = path.indexOf('\\', i + 1)) separators++
  return separators > MAX_PATH_SEGMENTS
}

/**
 * Every form of the path a server behind the proxy might route on, lower case: as sent, percent-decoded once
 * and twice, each also dot-segment-normalized and as a WHATWG URL parser reads it (when it reads it).
 * UNREADABLE when one of the first three has more than MAX_PATH_SEGMENTS segments (the others have no more).
 */
export function pathVariants (uri: string): string[] | typeof UNREADABLE {
  let path = withoutQuery(uri)
  if (!path.startsWith('/')) path = '/' + path
  if (tooManySegments(path)) return UNREADABLE
  // Most paths have nothing to decode or normalize, and every parser reads them alike: one form.
  if (PLAIN_PATH.test(path)) return [path.toLowerCase()]
  const once = lenientDecode(path)
  const twice = lenientDecode(once)
  if (tooManySegments(once) || tooManySegments(twice)) return UNREADABLE
  const read = new Set<string>()
  for (const p of [path, once, twice]) {
    read.add(p)
    const parsed = whatwgPath(p)
    if (parsed !== UNREADABLE) read.add(parsed)
    // A WHATWG parser refuses "//x:99999/admin" (a bad port, "v1.2" as a host); others (Python's urlsplit, Go's
    // url.Parse) still take "//…" as an authority and route on what follows it.
    else if (/^[/\\]{2}/.test(p)) read.add(p.replace(/^[/\\]{2}[^/\\]*/, '') || '/')
  }
  // Usually the parser's reading is the path itself: each distinct reading is normalized once.
  const forms = new Set<string>()
  for (const p of read) forms.add(p.toLowerCase()).add(normalizePath(p).toLowerCase())
  return [...forms]
}

export interface EnvoyReading {
  method: string
  host: string | undefined
  /** The original path and query: the request path after the forward-auth prefix. */
  uri: string
}

export function readOriginalRequest (headers: IncomingHttpHeaders, envoy?: EnvoyReading): OriginalRequest {
  // Each dimension's readings; UNREADABLE (a header we could not read in full) makes it unknown.
  // The method-override headers of the original request too (as nginx passes the client's headers on): Rack and
  // so Rails, Symfony and Express's method-override run a POST carrying one as the method it names.
  // So does a _method parameter in the original query (QUERY_METHOD_OVERRIDE).
  // Only beside a method the proxy names: an override is the client's own header (the examples pass it on), which
  // may add a method but never make an unknown method known (and a DELETE rule not apply to a DELETE).
  const methods: Array<string[] | typeof UNREADABLE> = [values(headers, 'x-original-method'), values(headers, 'x-forwarded-method')]
  if (envoy !== undefined) methods.push([envoy.method])
  if (methods.some((list) => list === UNREADABLE || list.length > 0)) {
    methods.push(...METHOD_OVERRIDE_HEADERS.map((name) => values(headers, name)))
    methods.push(queryMethodOverrides([headers['x-original-uri'], headers['x-forwarded-uri'], headers['x-original-url'], envoy?.uri]))
  }
  const hosts: Array<string[] | typeof UNREADABLE> = [values(headers, 'x-forwarded-host'), values(headers, 'x-original-host')]
  const uris: Array<string[] | typeof UNREADABLE> = [values(headers, 'x-original-uri', URI), values(headers, 'x-forwarded-uri', URI)]
  // An absolute URL's authority has no ? or #: cut there, its host stays.
  const urls = values(headers, 'x-original-url', URI)
  if (urls === UNREADABLE) {
    hosts.push(UNREADABLE)
    uris.push(UNREADABLE)
  } else {
    for (const url of urls) {
      const { host, uri } = splitUrl(url)
      if (host !== undefined) hosts.push([host])
      uris.push([uri])
    }
  }
  if (envoy !== undefined) {
    hosts.push(envoy.host === undefined ? [] : [envoy.host])
    // Without its query, as the headers' readings are cut (URI): the query is the app's, and not read by rules.
    uris.push([withoutQuery(envoy.uri)])
  }
  return {
    methods: readings(methods, methodForms),
    hosts: readings(hosts, hostForms),
    paths: readings(uris, (uri) => pathVariants(splitUrl(uri).uri), MAX_READING_LENGTH)
  }
}

/**
 * The methods named by QUERY_METHOD_OVERRIDE in the queries of the original URIs, as sent (every line, whole: a
 * reading too many is only more conservative). UNREADABLE when there are more than MAX_READINGS such parameters
 * (empty ones too), or one is too long.
 */
function queryMethodOverrides (uris: ReadonlyArray<string | string[] | undefined>): string[] | typeof UNREADABLE {
  const out = new Set<string>()
  let count = 0
  for (const uri of uris.flat()) {
    if (uri === undefined || !uri.includes('?')) continue
    for (const match of uri.matchAll(QUERY_METHOD_OVERRIDE)) {
      const value = match[1]!
      if (++count > MAX_READINGS || value.length > MAX_READING_LENGTH) return UNREADABLE
      const method = lenientDecode(value.replaceAll('+', ' ')).trim()
      if (method !== '') out.add(method)
    }
  }
  return [...out]
}

/**
 * A method and the methods a server behind the proxy may run for it: HEAD is answered by the GET handler
 * almost everywhere (Express, Fastify, Flask, Django, Rails, Spring, Go's ServeMux), so a rule for GET applies
 * to HEAD too.
 */
function methodForms (method: string): string[] {
  const upper = method.toUpperCase()
  return upper === 'HEAD' ? [upper, 'GET'] : [upper]
}

/**
 * The candidates of one dimension, each distinct reading turned into its forms; empty (unknown) when a header or
 * reading is unreadable, or when the distinct readings together are longer than `budget` characters.
 */
function readings (lists: Array<string[] | typeof UNREADABLE>, forms: (reading: string) => string[] | typeof UNREADABLE, budget = Number.POSITIVE_INFINITY): string[] {
  const out = new Set<string>()
  const read = new Set<string>()
  let length = 0
  for (const list of lists) {
    if (list === UNREADABLE) return []
    for (const reading of list) {
      if (read.has(reading)) continue
      read.add(reading)
      length += reading.length
      if (length > budget) return []
      const found = forms(reading)
      if (found === UNREADABLE) return []
      for (const form of found) out.add(form)
    }
  }
  return [...out]
}

/** The log's view: envoy's reading first (it is the request itself), then the headers. */
export function summarize (headers: IncomingHttpHeaders, envoy?: EnvoyReading): OriginalSummary {
  const first = (...names: string[]): string | undefined => {
    for (const name of names) {
      const v = headers[name]
      const s = Array.isArray(v) ? v[0] : v
      if (s !== undefined && s !== '') return s
    }
    return undefined
  }
  const url = first('x-original-url')
  const fromUrl = url === undefined ? undefined : splitUrl(url)
  const method = envoy?.method ?? first('x-original-method', 'x-forwarded-method')
  const host = envoy?.host ?? first('x-forwarded-host', 'x-original-host') ?? fromUrl?.host
  const uri = envoy?.uri ?? first('x-original-uri', 'x-forwarded-uri') ?? fromUrl?.uri
  const clean = (s: string | undefined, max: number): string | null => {
    if (s === undefined) return null
    // Cut before redacting (a bounded cost), with room for a secret that starts before the cut to be seen whole;
    // a run the cut went through is left out whole (seen in part, a secret would be too short to be recognised).
    const cut = s.length > max + 64 ? s.slice(0, max + 64).replace(/[A-Za-z0-9_~%+=.@-]+$/, '[redacted]') : s
    const head = redactSecrets(cut)
    // Printable ASCII only: the log is JSON, but a terminal reading it should not get control characters.
    const printable = head.replace(/[^\x20-\x7e]/g, '?')
    return printable.length > max || s.length > max + 64 ? `${printable.slice(0, max)}...` : printable
  }
  // Cut at the query, the fragment and path parameters (;…): where URLs carry tokens and sessions.
  const path = uri === undefined ? undefined : uri.split(/[?#;]/)[0]
  // A host is a host name or address, or nothing the log repeats (a client writes X-Forwarded-Host as it likes).
  const loggedHost = host === undefined ? undefined : PLAIN_HOST.test(host) ? host : '[unreadable]'
  return { method: clean(method, 16), host: clean(loggedHost, 255), path: clean(path, LOG_PATH_LENGTH) }
}

const URL_RUN = /[A-Za-z0-9_~%+=.-]+/g
/** A JWS or JWE part: base64url of a JSON object begins with "eyJ" ('{"'), at the start of a run, after a dot or after "=". */
const JWS_PART = /(?:^|[.=])eyJ[A-Za-z0-9_-]{8,}/
/** Three to five dot-separated parts of eight or more base64url characters: a JWS or JWE shape, whatever its header. */
const DOTTED_TOKEN = /^[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]{8,}){2,4}$/
const LONG_PIECE = /[A-Za-z0-9_~%+=-]{20,}/g
/** A path segment holding an e-mail address (an "@", or its escape %40): personal data, never logged. */
const EMAIL_SEGMENT = /[^/]*(?:@|%40)[^/]*/gi
/** Long pieces that are not secrets: a UUID, and lower-case words joined by hyphens (a page name, a host label). */
const NOT_SECRET = /^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[a-z0-9]+(?:-[a-z0-9]+)+)$/
/**
 * Callback and magic-link routes carry tokens in the path itself, and user pages their users' addresses. For the
 * log, a path segment with an e-mail address becomes [redacted], and so does a run of URL characters that holds a
 * JWS or JWE part, or has the dotted shape of one, and any piece without a dot (an opaque token, a session, a reset
 * secret) of 32 characters or more, or of 20 or more that mixes letters and digits, unless it is a UUID or a
 * hyphenated name; an ordinary path such as /orders/7/items, or a host name, stays as it is. Linear in the input.
 */
function redactSecrets (s: string): string {
  return s.replace(EMAIL_SEGMENT, '[redacted]').replace(URL_RUN, (run) => JWS_PART.test(run) || DOTTED_TOKEN.test(run)
    ? '[redacted]'
    : run.replace(LONG_PIECE, (piece) => NOT_SECRET.test(piece) || (piece.length < 32 && !(/[0-9]/.test(piece) && /[A-Za-z]/.test(piece))) ? piece : '[redacted]'))
}

/** A rule applies when every condition it has matches some candidate, or nothing is known about it. */
export function ruleApplies (rule: ForwardAuthRuleConfig, original: OriginalRequest): boolean {
  if (rule.methods.length > 0 && original.methods.length > 0 && !original.methods.some((m) => rule.methods.includes(m))) return false
  if (rule.hosts.length > 0 && original.hosts.length > 0 && !original.hosts.some((h) => rule.hosts.includes(h))) return false
  if (rule.pathPrefix !== undefined && original.paths.length > 0) {
    const prefix = rule.pathPrefix.toLowerCase()
    if (!original.paths.some((p) => p.startsWith(prefix))) return false
  }
  return true
}
