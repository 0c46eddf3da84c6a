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
 * about (no header at all) matches every rule (fail closed).
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

/** Header values longer than this are not read (Node's header limit is 16 KiB anyway). */
const MAX_URI_LENGTH = 8192
const LOG_PATH_LENGTH = 256

function values (headers: IncomingHttpHeaders, name: string): string[] {
  const raw = headers[name]
  if (raw === undefined) return []
  const list = Array.isArray(raw) ? raw : [raw]
  // Node joins repeated headers with ", ": every part is a reading too.
  return list.flatMap((v) => [v, ...v.split(',')]).map((v) => v.trim()).filter((v) => v !== '' && v.length <= MAX_URI_LENGTH)
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
    const seg = raw.replace(/;.*$/, '')
    if (seg === '' || seg === '.') continue
    if (seg === '..') out.pop()
    else out.push(seg)
  }
  const trailing = /[/\\]$/.test(path) && out.length > 0 ? '/' : ''
  return '/' + out.join('/') + trailing
}

/** Every form of the path a server behind the proxy might route on, lower case. */
export function pathVariants (uri: string): string[] {
  let path = uri
  const cut = path.search(/[?#]/)
  if (cut !== -1) path = path.slice(0, cut)
  if (!path.startsWith('/')) path = '/' + path
  const once = lenientDecode(path)
  const twice = lenientDecode(once)
  const forms = new Set<string>()
  for (const p of [path, once, twice]) {
    forms.add(p.toLowerCase())
    forms.add(normalizePath(p).toLowerCase())
  }
  return [...forms]
}

export interface EnvoyReading {
  method: string
  host: string | undefined
  /** The original path and query: the request path after the forward-auth prefix. */
  uri: string
}

export function readOriginalRequest (headers: IncomingHttpHeaders, envoy?: EnvoyReading): OriginalRequest {
  const methods = new Set<string>()
  const hosts = new Set<string>()
  const uris: string[] = []
  for (const m of [...values(headers, 'x-original-method'), ...values(headers, 'x-forwarded-method')]) methods.add(m.toUpperCase())
  for (const h of [...values(headers, 'x-forwarded-host'), ...values(headers, 'x-original-host')]) {
    const host = hostOf(h)
    if (host !== undefined) hosts.add(host)
  }
  for (const u of values(headers, 'x-original-url')) {
    const { host, uri } = splitUrl(u)
    if (host !== undefined) hosts.add(host)
    uris.push(uri)
  }
  uris.push(...values(headers, 'x-original-uri'), ...values(headers, 'x-forwarded-uri'))
  if (envoy !== undefined) {
    methods.add(envoy.method.toUpperCase())
    const host = envoy.host === undefined ? undefined : hostOf(envoy.host)
    if (host !== undefined) hosts.add(host)
    uris.push(envoy.uri)
  }
  const paths = new Set<string>()
  for (const uri of uris) for (const p of pathVariants(splitUrl(uri).uri)) paths.add(p)
  return { methods: [...methods], hosts: [...hosts], paths: [...paths] }
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
    // Printable ASCII only: the log is JSON, but a terminal reading it should not get control characters.
    const printable = s.replace(/[^\x20-\x7e]/g, '?')
    return printable.length > max ? `${printable.slice(0, max)}...` : printable
  }
  const path = uri === undefined ? undefined : uri.split(/[?#]/)[0]
  return { method: clean(method, 16), host: clean(host, 255), path: clean(path, LOG_PATH_LENGTH) }
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
