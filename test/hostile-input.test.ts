/**
 * Hostile input, as a bounded, deterministic property test over every route of the main app. The routes are
 * read from openapi.yaml's paths (a new route is covered without touching this file); for each operation,
 * CASES_PER_OPERATION requests are generated from a seeded PRNG (mulberry32), each a plausible request of the
 * operation with one to four hostile mutations: every JSON type in every field of the route's schema and in
 * unknown fields, strings near and over the limits, deep nesting, "__proto__"/"constructor" keys, NUL, lone
 * surrogates and invalid UTF-8 as raw bytes, wrong and duplicated content types, odd and repeated headers
 * (several Authorization schemes and lines, X-Api-Key, X-Request-Id, X-Forwarded-*, cookies), odd query
 * strings and paths, and almost-valid tokens (tampered, alg none, wrong kid, alg/key confusion, jku/x5u,
 * JWE-like, whitespace, padding, hostile claims under a valid signature).
 *
 * Every answer must be: a status the operation documents in openapi.yaml while the request keeps the
 * operation's own method and path; no 5xx but a documented 503 with a catalogue code; a JSON error body with a code of
 * the catalogue and a string message for every non-2xx answer (unless openapi.yaml documents another body);
 * an x-request-id header; no outbound request; no "unexpected error" log line; no internal_error anywhere in
 * the body (forward-auth and batch items hide a bug behind a 401 or a 200); no hang; Object.prototype intact.
 * Afterwards the app still answers valid requests.
 *
 * Replay one case: HOSTILE_ONLY='POST /verify#17' npx tap test/hostile-input.test.ts (the case is described
 * in a comment). HOSTILE_CASES=N changes the number of cases per operation, HOSTILE_SEED the base seed.
 */
import t from 'tap'
import net from 'node:net'
import { createHash, createHmac, createPublicKey, sign } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import pino from 'pino'
import { parse } from 'yaml'
import { buildApp } from '../src/app.js'
import { ALL_ERROR_CODES } from '../src/errors.js'
import { BACKCHANNEL_LOGOUT_EVENT } from '../src/core/logout-token-rules.js'
import { loggerOptions } from '../src/logger.js'
import { configFor } from './helpers/config.js'
import { b64, idTokenClaims, jwksOf, makeKey, mint, mintHmac, nowSeconds, tamperPayload, type TestKey } from './helpers/tokens.js'

type Doc = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
type Headers = Record<string, string | string[]>

const CASES_PER_OPERATION = Number(process.env.HOSTILE_CASES ?? 200)
const BASE_SEED = Number(process.env.HOSTILE_SEED ?? 0x5eed)
const ONLY = process.env.HOSTILE_ONLY
/** HOSTILE_VERBOSE=1: a comment line per case (off by default). */
const VERBOSE = process.env.HOSTILE_VERBOSE === '1'
/** A request that takes longer than this is a hang. */
const HANG_MS = 5000
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']
const KNOWN_CODES: ReadonlySet<string> = new Set(ALL_ERROR_CODES)

// ---------------------------------------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------------------------------------

function mulberry32 (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** FNV-1a of a string: each case's seed, from the base seed, the operation and the case index. */
function fnv1a (text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0
  return h
}

class Rng {
  readonly next: () => number
  constructor (seed: number) { this.next = mulberry32(seed) }
  int (n: number): number { return Math.floor(this.next() * n) }
  chance (p: number): boolean { return this.next() < p }
  pick<T> (items: readonly T[]): T { return items[this.int(items.length)] as T }
}

// ---------------------------------------------------------------------------------------------------------
// The app: inline keys only, revocation (memory), caller keys, forward-auth token cookie and header
// ---------------------------------------------------------------------------------------------------------

const ISS = 'https://idp.example.com'
const ISS_HMAC = 'https://hmac.example.com'
const ISS_SANITY = 'https://sanity.example.com'
const AUD = 'client-a'
const SECRET = 's'.repeat(40)
const API_KEY = 'caller-key-0123456789abcdef'
const READER_KEY = 'reader-key-0123456789abcdef'
const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex')
const es = makeKey('ES256')
const rs = makeKey('RS256')
const ed = makeKey('EdDSA')
const stranger = makeKey('ES256', { kid: es.kid }) // es's kid, another key
const sanityKey = makeKey('ES256')
const rsPublicPem = createPublicKey(rs.privateKey).export({ format: 'pem', type: 'spki' }).toString()

const outbound: string[] = []
const recordingFetcher = async (url: string): Promise<never> => { outbound.push(`fetcher ${url}`); throw new Error('no network in this test') }
const realFetch = globalThis.fetch
globalThis.fetch = (async (input: unknown) => { outbound.push(`fetch ${String(input)}`); throw new Error('no network in this test') }) as typeof fetch
const realConnect = net.Socket.prototype.connect
net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
  outbound.push(`socket ${JSON.stringify(args[0])?.slice(0, 200)}`)
  return (realConnect as (...a: unknown[]) => net.Socket).apply(this, args)
} as typeof realConnect
t.teardown(() => { globalThis.fetch = realFetch; net.Socket.prototype.connect = realConnect })

/** Log lines at error level, for the cases that find a bug (the stack is in them). */
const errorLines: Array<Record<string, unknown>> = []
const logStream = new Writable({
  write (chunk, _enc, cb) {
    for (const line of String(chunk).split('\n')) if (line !== '') errorLines.push(JSON.parse(line) as Record<string, unknown>)
    cb()
  }
})

const config = configFor([
  { id: 'main', issuer: ISS, audiences: [AUD, 'client-b'], authorizedParties: ['android'], jwks: jwksOf(es, rs, ed), claimMapping: { tenant: 'tid' } },
  { id: 'hmac', issuer: ISS_HMAC, audiences: [AUD], algorithms: ['HS256'], clientSecret: SECRET, jwks: jwksOf(es) },
  { id: 'sanity', issuer: ISS_SANITY, audiences: ['sanity-client'], jwks: jwksOf(sanityKey) }
], {
  server: { trustProxy: true },
  revocation: { enabled: true, store: 'memory' },
  callers: { keys: [{ id: 'admin', sha256: sha256(API_KEY), revoke: true }, { id: 'reader', sha256: sha256(READER_KEY) }] },
  forwardAuth: { tokenCookie: 'id_token', tokenHeader: 'x-id-token', identityHeader: true, stripToken: true, rules: [{ pathPrefix: '/admin', require: { groups: ['admins'] } }] }
})

// Renders of /metrics without their 50 ms spacing: its ~200 cases run one after another (each case's log lines are
// checked on their own), and the spacing would add ~10 s of waiting to what this test is about.
const app = await buildApp(config, { fetcher: recordingFetcher as never, loggerInstance: pino({ ...loggerOptions('error') }, logStream), metricsRenderMinIntervalMs: 0 })
t.teardown(() => app.close())
await app.ready()

// ---------------------------------------------------------------------------------------------------------
// The operations, from openapi.yaml
// ---------------------------------------------------------------------------------------------------------

const spec = parse(readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8')) as Doc

const resolve = (node: Doc | undefined): Doc | undefined => {
  let out = node
  for (let i = 0; i < 10 && typeof out?.$ref === 'string'; i++) {
    const ref = out.$ref as string
    out = ref.replace(/^#\//, '').split('/').reduce<Doc | undefined>((doc, part) => doc?.[part] as Doc | undefined, spec)
  }
  return out
}

interface Operation {
  key: string
  method: string
  path: string
  /** application/json, application/x-www-form-urlencoded, or undefined (no body). */
  mediaType: string | undefined
  /** The body's top-level properties (name → schema). */
  fields: Record<string, Doc>
  required: string[]
  /** Statuses openapi.yaml documents, and whether each body is the Error schema. */
  documented: Map<number, { errorBody: boolean }>
  /** Where a token can go: body fields, Authorization, forward-auth's cookie and header. */
  tokenPlaces: string[]
}

const operations: Operation[] = []
for (const [path, item] of Object.entries(spec.paths as Doc)) {
  for (const method of Object.keys(item as Doc).filter((m) => HTTP_METHODS.includes(m))) {
    const op = (item as Doc)[method] as Doc
    const content = resolve(op.requestBody)?.content as Doc | undefined
    const mediaType = content === undefined ? undefined : Object.keys(content)[0]
    const schema = mediaType === undefined ? undefined : resolve(content?.[mediaType]?.schema as Doc)
    const documented = new Map<number, { errorBody: boolean }>()
    for (const [status, response] of Object.entries(op.responses as Doc)) {
      const body = resolve(response as Doc)?.content?.['application/json']?.schema as Doc | undefined
      documented.set(Number(status), { errorBody: body?.$ref === '#/components/schemas/Error' })
    }
    const fields = Object.fromEntries(Object.entries((schema?.properties ?? {}) as Doc).map(([name, s]) => [name, resolve(s as Doc) ?? {}]))
    const headerParams = ((op.parameters ?? []) as Doc[]).map((p) => resolve(p)).filter((p) => p?.in === 'header').map((p) => String(p?.name).toLowerCase())
    const forwardAuth = path.startsWith('/forward-auth')
    const tokenPlaces = [
      ...['token', 'tokens', 'logout_token'].filter((f) => f in fields),
      ...(headerParams.includes('authorization') || forwardAuth ? ['authorization'] : []),
      // forwardAuth.tokenCookie and forwardAuth.tokenHeader of this test's configuration
      ...(forwardAuth ? ['cookie', 'token header'] : [])
    ]
    operations.push({ key: `${method.toUpperCase()} ${path}`, method: method.toUpperCase(), path, mediaType, fields, required: (schema?.required ?? []) as string[], documented, tokenPlaces })
  }
}

// ---------------------------------------------------------------------------------------------------------
// Tokens: good ones and almost good ones
// ---------------------------------------------------------------------------------------------------------

const goodToken = (extra: Record<string, unknown> = {}, key: TestKey = es): string =>
  mint(key, idTokenClaims(ISS, AUD, { groups: ['admins'], roles: ['r'], tid: 't-1', nonce: 'n-1', ...extra }))

function logoutToken (extra: Record<string, unknown> = {}, header: Record<string, unknown> = { typ: 'logout+jwt' }): string {
  const now = nowSeconds()
  return mint(es, { iss: ISS, aud: AUD, iat: now, exp: now + 120, jti: `jti-${now}`, sid: 'sid-1', sub: 'user-123', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} }, ...extra }, { header })
}

/** A signed token of exactly `length` characters (its padding claim sized to fit). */
function tokenOfLength (length: number): string {
  let pad = Math.max(0, Math.floor((length - goodToken().length) * 3 / 4))
  let token = goodToken({ pad: 'p'.repeat(pad) })
  for (let i = 0; i < 8 && token.length !== length; i++) {
    pad = Math.max(0, pad + Math.round((length - token.length) * 3 / 4))
    token = goodToken({ pad: 'p'.repeat(pad) })
  }
  return token.length <= length ? token + 'A'.repeat(length - token.length) : token.slice(0, length)
}

/** A token whose payload is the given JSON text, byte for byte, with a valid ES256 signature. */
function signedRaw (payload: string | Buffer): string {
  const input = `${b64({ alg: 'ES256', kid: es.kid, typ: 'JWT' })}.${Buffer.from(payload).toString('base64url')}`
  return `${input}.${sign('sha256', Buffer.from(input), { key: es.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`
}
const claimsText = (extra: string): string => `{${extra},${JSON.stringify(idTokenClaims(ISS, AUD)).slice(1)}`

const deep = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth)

const good = goodToken()
const [gh = '', gp = '', gs = ''] = good.split('.')
const hmacConfusion = (iss: string, header: Record<string, unknown> = {}): string => {
  const input = `${b64({ alg: 'HS256', kid: rs.kid, typ: 'JWT', ...header })}.${b64(idTokenClaims(iss, AUD))}`
  return `${input}.${createHmac('sha256', rsPublicPem).update(input).digest('base64url')}`
}

/** Almost valid tokens: [description, token]. Built once; the logout ones are minted fresh per case. */
const ALMOST: Array<[string, () => string]> = [
  ['good', () => good],
  ['good RS256', () => goodToken({}, rs)],
  ['good EdDSA', () => goodToken({}, ed)],
  ['good HS256', () => mintHmac(SECRET, 'HS256', idTokenClaims(ISS_HMAC, AUD))],
  ['tampered payload', () => tamperPayload(good, idTokenClaims(ISS, AUD, { sub: 'admin' }))],
  ['tampered header', () => `${b64({ alg: 'ES256', kid: es.kid, typ: 'JWT', x: 1 })}.${gp}.${gs}`],
  ['truncated signature', () => `${gh}.${gp}.${gs.slice(0, -4)}`],
  ['alg none, empty signature', () => `${b64({ alg: 'none', typ: 'JWT' })}.${gp}.`],
  ['alg none, signature kept', () => `${b64({ alg: 'none', kid: es.kid })}.${gp}.${gs}`],
  ['alg NONE', () => `${b64({ alg: 'NONE' })}.${gp}.`],
  ['alg missing', () => mint(es, idTokenClaims(ISS, AUD), { rawHeader: { kid: es.kid } })],
  ['alg number', () => mint(es, idTokenClaims(ISS, AUD), { rawHeader: { alg: 256, kid: es.kid } })],
  ['wrong kid', () => mint(es, idTokenClaims(ISS, AUD), { header: { kid: 'nope' } })],
  ['no kid', () => mint(es, idTokenClaims(ISS, AUD), { rawHeader: { alg: 'ES256' } })],
  ['kid object', () => mint(es, idTokenClaims(ISS, AUD), { header: { kid: { $ne: 1 } } })],
  ['kid traversal', () => mint(es, idTokenClaims(ISS, AUD), { header: { kid: '../../../../etc/passwd' } })],
  ['kid huge', () => mint(es, idTokenClaims(ISS, AUD), { header: { kid: 'k'.repeat(8000) } })],
  ['kid of another key', () => mint(stranger, idTokenClaims(ISS, AUD))],
  ['alg confusion HS256 with RSA public key (main)', () => hmacConfusion(ISS)],
  ['alg confusion HS256 with RSA public key (hmac issuer)', () => hmacConfusion(ISS_HMAC)],
  ['RS256 header on an ES key', () => mint(es, idTokenClaims(ISS, AUD), { header: { alg: 'RS256', kid: rs.kid } })],
  ['ES256 header on an RSA key', () => mint(rs, idTokenClaims(ISS, AUD), { header: { alg: 'ES256', kid: es.kid } })],
  ['PS256 header on an RS key', () => mint(rs, idTokenClaims(ISS, AUD), { header: { alg: 'PS256' } })],
  ['jku header to an attacker', () => mint(es, idTokenClaims(ISS, AUD), { header: { jku: 'https://attacker.example/jwks.json', kid: 'attacker' } })],
  ['x5u header to an attacker', () => mint(es, idTokenClaims(ISS, AUD), { header: { x5u: 'https://attacker.example/cert.pem', kid: 'attacker' } })],
  ['embedded jwk header', () => mint(stranger, idTokenClaims(ISS, AUD), { header: { jwk: stranger.jwk, kid: 'embedded' } })],
  ['x5c header', () => mint(es, idTokenClaims(ISS, AUD), { header: { x5c: ['MIIB'], kid: 'x' } })],
  ['crit header', () => mint(es, idTokenClaims(ISS, AUD), { header: { crit: ['exp'], exp: 1 } })],
  ['b64 false', () => mint(es, idTokenClaims(ISS, AUD), { header: { b64: false, crit: ['b64'] } })],
  ['typ at+jwt', () => mint(es, idTokenClaims(ISS, AUD), { header: { typ: 'at+jwt' } })],
  ['typ logout+jwt', () => logoutToken()],
  ['typ number', () => mint(es, idTokenClaims(ISS, AUD), { header: { typ: 7 } })],
  ['unknown issuer (would be discovered)', () => mint(es, idTokenClaims('https://attacker.example', AUD))],
  ['issuer with path traversal', () => mint(es, idTokenClaims(`${ISS}/../attacker`, AUD))],
  ['issuer of another configured issuer', () => mint(es, idTokenClaims(ISS_SANITY, 'sanity-client'))],
  ['issuer http localhost', () => mint(es, idTokenClaims('http://127.0.0.1:1/', AUD))],
  ['issuer array', () => mint(es, idTokenClaims(ISS, AUD, { iss: [ISS] }))],
  ['five segments, JWE-like', () => 'eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d'],
  ['five segments, zip and PBES2', () => `${b64({ alg: 'PBES2-HS512+A256KW', enc: 'A256GCM', zip: 'DEF', p2c: 1e9, p2s: 'AAAA' })}.AAAA.AAAA.AAAA.AAAA`],
  ['five empty segments', () => '....'],
  ['garbage', () => 'not-a-token'],
  ['four segments', () => `${good}.x`],
  ['two segments', () => `${gh}.${gp}`],
  ['leading whitespace', () => ` ${good}`],
  ['trailing newline', () => `${good}\n`],
  ['tab inside', () => `${gh}.\t${gp}.${gs}`],
  ['padding', () => `${gh}==.${gp}=.${gs}==`],
  ['standard base64', () => `${gh}.${gp.slice(0, -1)}+.${gs.slice(0, -1)}/`],
  ['quoted', () => `"${good}"`],
  ['Bearer inside', () => `Bearer ${good}`],
  ['header not JSON', () => `${b64('{"alg":')}.${gp}.${gs}`],
  ['header array', () => `${b64([1])}.${gp}.${gs}`],
  ['header with __proto__', () => `${Buffer.from(`{"__proto__":{"alg":"none"},"alg":"ES256","kid":"${es.kid}"}`).toString('base64url')}.${gp}.${gs}`],
  ['payload invalid UTF-8', () => `${gh}.${Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString('base64url')}.${gs}`],
  ['signed payload invalid UTF-8', () => signedRaw(Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xff, 0xc0, 0xaf, 0xed, 0xa0, 0x80]), Buffer.from(`",${JSON.stringify(idTokenClaims(ISS, AUD)).slice(1)}`)]))],
  ['signed payload lone surrogate escapes', () => signedRaw(claimsText('"name":"\\ud800\\udc00\\udfff\\u0000"'))],
  ['signed payload huge number', () => signedRaw(claimsText('"exp":1e999999'))],
  ['signed payload duplicate iss', () => signedRaw(`{"iss":"https://attacker.example",${JSON.stringify(idTokenClaims(ISS, AUD)).slice(1)}`)],
  ['signed payload duplicate sub', () => signedRaw(`${JSON.stringify(idTokenClaims(ISS, AUD)).slice(0, -1)},"sub":"admin","sub":{"x":1}}`)],
  ['signed payload with BOM', () => signedRaw(`\ufeff${JSON.stringify(idTokenClaims(ISS, AUD))}`)],
  ['signed payload with trailing garbage', () => signedRaw(`${JSON.stringify(idTokenClaims(ISS, AUD))} x`)],
  ['signed payload __proto__ iss', () => signedRaw(`{"__proto__":{"iss":"${ISS}"},${JSON.stringify(idTokenClaims(ISS, AUD, { iss: undefined })).slice(1)}`)],
  ['non-ASCII in token', () => `${gh}.${gp}é.${gs}`],
  ['NUL in token', () => `${gh}.${gp}\u0000.${gs}`],
  ['token of maxTokenBytes - 1', () => tokenOfLength(16383)],
  ['token of maxTokenBytes', () => tokenOfLength(16384)],
  ['token of maxTokenBytes + 1', () => tokenOfLength(16385)],
  ['token of 60000', () => tokenOfLength(60000)],
  ['expired', () => goodToken({ exp: nowSeconds() - 3600, iat: nowSeconds() - 7200 })],
  ['exp string', () => goodToken({ exp: String(nowSeconds() + 600) })],
  ['exp huge', () => goodToken({ exp: 1e300 })],
  ['exp negative', () => goodToken({ exp: -1 })],
  ['exp object', () => goodToken({ exp: { valueOf: 1 } })],
  ['iat future', () => goodToken({ iat: nowSeconds() + 86400 })],
  ['nbf future', () => goodToken({ nbf: nowSeconds() + 86400 })],
  ['auth_time string', () => goodToken({ auth_time: 'yesterday' })],
  ['sub missing', () => goodToken({ sub: undefined })],
  ['sub empty', () => goodToken({ sub: '' })],
  ['sub huge', () => goodToken({ sub: 'u'.repeat(5000) })],
  ['sub object', () => goodToken({ sub: { id: 1 } })],
  ['sub with NUL, CRLF and surrogates', () => goodToken({ sub: 'a\u0000b\r\nX-Injected: 1\ud800' })],
  ['aud huge array', () => goodToken({ aud: Array.from({ length: 1000 }, (_, i) => `aud-${i}`) })],
  ['aud with untrusted member', () => goodToken({ aud: [AUD, 'evil'], azp: AUD })],
  ['aud object', () => goodToken({ aud: { 0: AUD } })],
  ['azp array', () => goodToken({ aud: [AUD, 'client-b'], azp: [AUD] })],
  ['nonce number', () => goodToken({ nonce: 1 })],
  ['at_hash number', () => goodToken({ at_hash: 1 })],
  ['groups deep', () => signedRaw(claimsText(`"groups":${deep(5000)}`))],
  ['claims deep array', () => signedRaw(claimsText(`"x":${deep(5500)}`))],
  ['claims deep object', () => signedRaw(claimsText(`"x":${'{"a":'.repeat(1600)}1${'}'.repeat(1600)}`))],
  ['groups huge', () => goodToken({ groups: Array.from({ length: 1200 }, (_, i) => `g${i}`) })],
  ['groups odd members', () => goodToken({ groups: [null, 1, {}, [], '', 'a,b', '%', ' ', '\u0000', '\ud800', 'é'], roles: 'admin editor' })],
  ['__proto__ claim', () => mint(es, {}, { rawPayload: JSON.parse(`{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}},${JSON.stringify(idTokenClaims(ISS, AUD)).slice(1)}`) as unknown })],
  ['claim names odd', () => goodToken({ '': 1, 'a.b': 2, '$ref': 3, toString: 4, hasOwnProperty: 5, valueOf: 6 })],
  ['_claim_names pointing to an attacker', () => goodToken({ _claim_names: { groups: 'src1' }, _claim_sources: { src1: { endpoint: 'https://attacker.example/groups', access_token: 'x' } } })],
  ['payload array', () => mint(es, {}, { rawPayload: [1, 2] })],
  ['payload null', () => mint(es, {}, { rawPayload: null })],
  ['payload huge number', () => `${gh}.${Buffer.from('{"exp":1e999999,"iss":"' + ISS + '"}').toString('base64url')}.${gs}`],
  ['payload duplicate iss', () => `${gh}.${Buffer.from(`{"iss":"https://attacker.example","iss":"${ISS}","aud":"${AUD}","sub":"x","iat":1,"exp":9999999999}`).toString('base64url')}.${gs}`],
  ['logout token', () => logoutToken()],
  ['logout token without sid', () => logoutToken({ sid: undefined, sub: 'someone' })],
  ['logout token with nonce', () => logoutToken({ nonce: 'n' })],
  ['logout token, events wrong', () => logoutToken({ events: [BACKCHANNEL_LOGOUT_EVENT] })],
  ['logout token, events proto', () => logoutToken({ events: JSON.parse(`{"__proto__":{"${BACKCHANNEL_LOGOUT_EVENT}":{}}}`) as unknown })],
  ['logout token, sid number', () => logoutToken({ sid: 5 })],
  ['logout token, iat old', () => logoutToken({ iat: 1 })],
  ['logout token, typ JWT', () => logoutToken({}, { typ: 'JWT' })],
  ['logout token, huge sid', () => logoutToken({ sid: 's'.repeat(4000) })],
  ['logout token of an unknown issuer', () => mint(es, { iss: 'https://attacker.example', aud: AUD, iat: nowSeconds(), jti: 'j', sid: 's', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } }, { header: { typ: 'logout+jwt' } })]
]

// ---------------------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------------------

const STRINGS = ['', ' ', 'a', '\u0000', 'nul\u0000inside', '\ud800', '\udc00x', '\uffff', 'é', '李雷', '🙂', '\r\n', '%00', '%zz', '../..', '${jndi:ldap://x}', '<script>', 'null', 'true', '0', '-1', '1e999', 'NaN', '__proto__', 'constructor', 'id_token', 'id_token_hint', 'main', 'hmac', 'sanity', AUD]
const NUMBERS = [0, -0, 1, -1, 1.5, 0.1, 2 ** 31, 2 ** 53, 2 ** 53 + 2, -(2 ** 63), 1e308, -1e308, 5e-324, 315360000, 315360001, 253402300799, 253402300800]

function randomJson (rng: Rng, depth = 0): Json {
  switch (rng.int(depth > 2 ? 4 : 6)) {
    case 0: return null
    case 1: return rng.chance(0.5)
    case 2: return rng.pick(NUMBERS)
    case 3: return rng.pick(STRINGS)
    case 4: return Array.from({ length: rng.int(4) }, () => randomJson(rng, depth + 1))
    default: {
      const out: Record<string, Json> = {}
      for (let i = rng.int(4); i > 0; i--) out[rng.pick(['a', 'token', '__proto__', 'constructor', '', '$ref', 'length'])] = randomJson(rng, depth + 1)
      return out
    }
  }
}

/** A plausible value of a field, by name and schema. */
function plausible (rng: Rng, name: string, schema: Doc): Json {
  switch (name) {
    case 'token': return good
    case 'logout_token': return logoutToken({ sid: `sid-${rng.int(1e6)}` })
    case 'tokens': return Array.from({ length: 1 + rng.int(3) }, () => good)
    case 'accessToken': return 'access-token-1'
    case 'nonce': return 'n-1'
    case 'audience': return rng.pick([AUD, 'client-b', 'sanity-client'])
    case 'issuer': return rng.pick(['main', 'hmac'])
    case 'before': return nowSeconds() - rng.int(100)
    case 'sid': case 'sub': case 'jti': return `${name}-${rng.int(1e6)}`
  }
  if (Array.isArray(schema.enum)) return rng.pick(schema.enum as Json[])
  if ('const' in schema) return schema.const as Json
  if (schema.type === 'integer' || schema.type === 'number') return typeof schema.minimum === 'number' ? schema.minimum + rng.int(3600) : rng.int(3600)
  if (schema.type === 'array') return []
  if (schema.type === 'boolean') return rng.chance(0.5)
  return 'x'
}

/** Limits near which strings are generated: the schema's own, the token limit, the body limits. */
const SIZE_LIMITS = [64, 255, 1024, 16384, 65536, 1048576]

function sizeNear (rng: Rng, schema: Doc): number {
  const own = [schema.maxLength, schema.minLength].filter((n): n is number => typeof n === 'number')
  const limit = rng.chance(0.5) && own.length > 0 ? rng.pick(own) : rng.pick(SIZE_LIMITS)
  return Math.max(0, limit + rng.pick([-64, -1, 0, 1, 2, 100]))
}

// ---------------------------------------------------------------------------------------------------------
// A case: a plausible request of the operation, then mutations
// ---------------------------------------------------------------------------------------------------------

interface Case {
  desc: string[]
  method: string
  path: string
  query: string
  headers: Headers
  /** The body: an object (serialized per content type), or raw bytes/text. */
  body: Record<string, unknown> | undefined
  raw: string | Buffer | undefined
  remoteAddress: string
  /** The operation's own method and path, as the case began: while the request still has them, its answer must be one the operation documents. */
  own: { method: string, path: string }
}

const CONTENT_TYPES: Array<string | string[] | undefined> = [
  undefined, '', 'text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x',
  'multipart/form-data', 'application/json', 'application/json; charset=utf-8', 'application/json; charset=latin1',
  'application/json; charset=utf-16', 'APPLICATION/JSON', 'application/json;;;', 'application/json; charset="utf-8"; x=y',
  'application/jsonx', 'application/vnd.api+json', 'application/*', '*/*', 'application/json, text/plain',
  ['application/json', 'application/x-www-form-urlencoded'], ['application/x-www-form-urlencoded', 'application/json'],
  'application/x-www-form-urlencoded; charset=iso-8859-1', 'application/x-www-form-urlencoded;charset=utf-16le', 'a'.repeat(5000),
  'application/json\u00e9', 'application/octet-stream', 'application/xml'
]

const AUTHORIZATIONS = (token: string): Array<string | string[]> => [
  `Bearer ${token}`, `bearer ${token}`, `BEARER  ${token}`, `Bearer\t${token}`, 'Bearer', 'Bearer ', 'Bearer a b',
  `Basic ${Buffer.from('user:pass').toString('base64')}`, `Bearer ${token}, Basic eA==`, `Basic eA==, Bearer ${token}`,
  'Negotiate YIIB', `DPoP ${token}`, `Token ${token}`, 'Digest username="a", realm="b"', `Bearer ${token}=====`,
  [`Bearer ${token}`, `Bearer ${token}`], [`Bearer ${token}`, `Bearer ${goodToken({ sub: 'mallory' })}`], [`Basic eA==`, `Bearer ${token}`],
  `Bearer ${'A'.repeat(30000)}`, `Bearer é${token}`, `${token}`, ''
]

const QUERIES = (rng: Rng, token: string): string => rng.pick([
  () => `token=${token}`,
  () => `id_token=${encodeURIComponent(token)}`,
  () => 'access_token=x&access_token=y',
  () => 'a=1&a=2&a=3',
  () => '__proto__[admin]=1&constructor[prototype][x]=1',
  () => 'group=admins&group=admins&role=',
  () => 'group=' + 'g'.repeat(2000),
  () => 'issuer=main&issuer=nope&audience=client-a',
  () => Array.from({ length: 1000 }, (_, i) => `p${i}=${i}`).join('&'),
  () => 'x=' + 'y'.repeat(30000),
  () => '%zz=%zz&%=%',
  () => 'a=%00&b=%C0%AF&c=%ED%A0%80&d=%FF',
  () => 'group=%E2%82%AC&role=%F0%9F%99%82',
  () => ';;;&&&===',
  () => 'a[b][c][d][e][f]=1',
  () => 'group',
  () => '&',
  () => '?',
  () => 'Group=admins',
  () => 'mode=id_token_hint',
  () => `token_type_hint=id_token&token=${token}`
])()

const PATH_SEGMENTS = ['x', 'x/y/z', '', '%2F', '%2e%2e/%2e%2e', '..', 'é', '%zz', '%00', 'a'.repeat(5000), 'admin', 'admin/users?group=x', ';x=1', '%E2%82%AC', 'envoy', 'envoy/x']

const DOT_SEGMENT = /\/(?:\.|%2e){1,2}(?:\/|$)/i

function concretePath (rng: Rng, path: string): string {
  return path.replace(/\{[^}]+\}/g, () => rng.pick(PATH_SEGMENTS))
}

/** A header value Node's parser accepts (no CR, LF or NUL), hostile otherwise. */
const HEADER_GARBAGE = ['', ' ', 'x'.repeat(65), 'x'.repeat(64), 'abc def', '../../etc', 'é', '\u00ff\u00fe', 'a,b', ';', '"', '=?utf-8?q?x?=', '0', '-1', 'undefined', 'null', '[object Object]', '{"a":1}', 'x'.repeat(20000)]

const XFF = ['1.2.3.4', '1.2.3.4, 5.6.7.8', '::1', '[::1]', 'fe80::1%eth0', '999.999.999.999', 'garbage', '', ', , ,', '1.2.3.4:80', '2001:db8::1, unknown', '-', 'x'.repeat(1000)]

const REMOTE = ['127.0.0.1', '10.0.0.1', '::1', '2001:db8::1', '::ffff:192.168.0.1', '192.168.1.1']

type Mutation = (rng: Rng, c: Case, op: Operation) => string

/** Field names to target: the schema's, unknown ones, and the prototype's. */
const fieldName = (rng: Rng, op: Operation): string => rng.chance(0.7) && Object.keys(op.fields).length > 0
  ? rng.pick(Object.keys(op.fields))
  : rng.pick(['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'unknown', '', 'token ', 'Token', 'id_token', 'client_secret'])

const ensureBody = (c: Case): Record<string, unknown> => {
  if (c.body === undefined) c.body = {}
  c.raw = undefined
  return c.body
}

const MUTATIONS: Record<string, Mutation> = {
  fieldType (rng, c, op) {
    const name = fieldName(rng, op)
    const value = randomJson(rng)
    Object.defineProperty(ensureBody(c), name, { value, enumerable: true, configurable: true, writable: true })
    return `field ${JSON.stringify(name)} = ${JSON.stringify(value)?.slice(0, 60)}`
  },
  missingField (rng, c, op) {
    const body = ensureBody(c)
    const name = rng.pick([...op.required, ...Object.keys(body), 'token'])
    delete body[name]
    return `field ${JSON.stringify(name)} removed`
  },
  hugeString (rng, c, op) {
    const name = fieldName(rng, op)
    const size = sizeNear(rng, op.fields[name] ?? {})
    const value = rng.pick([() => 'a'.repeat(size), () => tokenOfLength(Math.max(40, size)), () => 'é'.repeat(Math.ceil(size / 2)), () => '\\'.repeat(size)])()
    const body = ensureBody(c)
    Object.defineProperty(body, name, { value: name === 'tokens' ? [value] : value, enumerable: true, configurable: true, writable: true })
    return `field ${JSON.stringify(name)} string of ${value.length}`
  },
  manyItems (rng, c) {
    const n = rng.pick([0, 99, 100, 101, 1000, 10000])
    const item = rng.pick(['', 'a', good])
    ensureBody(c).tokens = Array.from({ length: n }, () => item)
    return `tokens: ${n} × ${item.length}-char strings`
  },
  deepNesting (rng, c, op) {
    const depth = rng.pick([64, 1000, 10000, 30000])
    const [open, close] = rng.pick([['[', ']'], ['{"a":', '}']] as const)
    const inner = open === '[' ? deep(depth) : `${open.repeat(depth)}1${close.repeat(depth)}`
    const name = fieldName(rng, op)
    c.raw = c.headers['content-type'] === 'application/x-www-form-urlencoded' ? `${encodeURIComponent(name)}=${encodeURIComponent(inner)}` : rng.chance(0.5) ? inner : `{${JSON.stringify(name)}:${inner}}`
    return `nesting depth ${depth} of ${open} in ${JSON.stringify(name)}`
  },
  protoKeys (rng, c) {
    const base = JSON.stringify(c.body ?? {}).slice(1, -1)
    const extra = rng.pick([
      '"__proto__":{"token":"x","admin":true,"revoke":true}',
      '"constructor":{"prototype":{"polluted":1}}',
      '"__proto__":null',
      '"__proto__":[1,2]',
      '"token":"a","token":"b"',
      '"issuer":"main","issuer":"nope"'
    ])
    c.raw = c.headers['content-type'] === 'application/x-www-form-urlencoded'
      ? rng.pick(['__proto__[admin]=1&token=x', 'constructor[prototype][x]=1', '__proto__=x&__proto__=y', 'toString=1&hasOwnProperty=2&logout_token=x&token=x'])
      : `{${[extra, base].filter((s) => s !== '').join(',')}}`
    return `raw ${String(c.raw).slice(0, 80)}`
  },
  rawBytes (rng, c) {
    const text = c.raw !== undefined ? Buffer.from(c.raw) : Buffer.from(c.headers['content-type'] === 'application/x-www-form-urlencoded' ? new URLSearchParams(c.body as Record<string, string>).toString() : JSON.stringify(c.body ?? {}))
    const at = rng.int(text.length + 1)
    const [name, bytes] = rng.pick([
      ['NUL', Buffer.from([0])], ['invalid UTF-8 0xff 0xfe', Buffer.from([0xff, 0xfe])], ['overlong /', Buffer.from([0xc0, 0xaf])],
      ['lone surrogate as UTF-8', Buffer.from([0xed, 0xa0, 0x80])], ['truncated sequence', Buffer.from([0xe2, 0x82])], ['BOM', Buffer.from([0xef, 0xbb, 0xbf])],
      ['escaped NUL', Buffer.from('\\u0000')], ['escaped lone surrogate', Buffer.from('\\ud800')], ['non-ASCII', Buffer.from('é李🙂')],
      ['CRLF', Buffer.from('\r\n')], ['percent garbage', Buffer.from('%zz%')], ['0x80', Buffer.from([0x80])]
    ] as const)
    const whole = rng.pick([
      () => Buffer.concat([text.subarray(0, at), bytes, text.subarray(at)]),
      () => text.subarray(0, at),
      () => Buffer.from(text.toString('utf8'), 'utf16le'),
      () => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), text]),
      () => Buffer.from(rng.pick(['', ' ', 'null', '[]', '0', '"str"', 'true', '{}', '{', '}', '\u0000', '[{}]', '1e999']))
    ])()
    c.raw = whole
    return `raw bytes (${name} at ${at}) ${whole.subarray(0, 60).toString('hex')}${whole.length > 60 ? `… (${whole.length} bytes)` : ''}`
  },
  contentType (rng, c) {
    const type = rng.pick(CONTENT_TYPES)
    if (type === undefined) delete c.headers['content-type']
    else c.headers['content-type'] = type
    return `content-type ${JSON.stringify(type)?.slice(0, 80)}`
  },
  authorization (rng, c) {
    const [name, token] = rng.pick(ALMOST)
    const value = rng.pick(AUTHORIZATIONS(token()))
    c.headers.authorization = value
    return `authorization ${JSON.stringify(value).slice(0, 100)} (${name})`
  },
  requestId (rng, c) {
    const value = rng.chance(0.2) ? [rng.pick(HEADER_GARBAGE), 'abc'] : rng.pick(HEADER_GARBAGE)
    c.headers['x-request-id'] = value
    return `x-request-id ${JSON.stringify(value).slice(0, 80)}`
  },
  apiKey (rng, c) {
    const value = rng.pick<string | string[] | undefined>([undefined, '', 'wrong', ` ${API_KEY}`, `${API_KEY} `, API_KEY.toUpperCase(), [API_KEY, API_KEY], [API_KEY, 'wrong'], 'k'.repeat(20000), READER_KEY, `${API_KEY}é`, `Bearer ${API_KEY}`])
    if (value === undefined) delete c.headers['x-api-key']
    else c.headers['x-api-key'] = value
    return `x-api-key ${JSON.stringify(value)?.slice(0, 60)}`
  },
  query (rng, c) {
    c.query = QUERIES(rng, good)
    return `query ${c.query.slice(0, 100)}${c.query.length > 100 ? `… (${c.query.length})` : ''}`
  },
  token (rng, c, op) {
    const [name, make] = rng.pick(ALMOST)
    return `${name} token in ${placeToken(rng, c, op, make())}`
  },
  oddHeaders (rng, c) {
    const [name, value] = rng.pick<[string, string | string[]]>([
      ['x-forwarded-for', rng.pick(XFF)], ['x-forwarded-for', [rng.pick(XFF), rng.pick(XFF)]], ['x-real-ip', rng.pick(XFF)],
      ['host', rng.pick(['', 'evil.example', 'a'.repeat(300), '[::1]:99999', 'host:port:x', 'é.example'])],
      ['x-forwarded-host', rng.pick(HEADER_GARBAGE)], ['x-forwarded-proto', rng.pick(['https', 'gopher', '', 'https, http'])],
      ['x-forwarded-method', rng.pick(['GET', 'get', 'X'.repeat(100), '', 'CONNECT'])], ['x-forwarded-uri', rng.pick(['/admin', '/%zz', '/' + 'a'.repeat(8000), 'relative', '/admin/../x', '//evil'])],
      ['x-original-uri', rng.pick(['/admin', '/ADMIN', '/%61dmin', '/admin%2F..', '\u00ff', 'http://x/admin'])], ['x-original-url', rng.pick(['http://evil.example/admin', '%zz', 'https://[::1/'])],
      ['x-original-method', rng.pick(['POST', 'é', ''])], ['x-original-host', rng.pick(['x.example:1', '[::1]', 'é'])],
      ['cookie', rng.pick(['id_token=', 'id_token', '=;=;', `id_token=${'a'.repeat(20000)}`, 'id_token="unterminated', ['a=1', 'id_token=x']])],
      ['x-id-token', rng.pick(['', ' ', 'x', [good, good], [good, 'x']])],
      ['content-length', rng.pick(['0', '1', '999999', '-1', 'abc', '1, 2'])], ['transfer-encoding', rng.pick(['chunked', 'gzip', 'identity, chunked'])],
      ['content-encoding', rng.pick(['gzip', 'br', 'deflate', 'x'])], ['expect', '100-continue'], ['accept', rng.pick(['', '*/*;q=x', 'text/html', 'a'.repeat(3000)])],
      ['accept-encoding', rng.pick(['gzip', 'br;q=1, *;q=0', 'x'])], ['connection', rng.pick(['upgrade', 'close', 'keep-alive, x-api-key'])], ['upgrade', 'websocket'],
      ['x-huge', 'h'.repeat(rng.pick([8000, 16000, 40000]))], ['x-many', Array.from({ length: 500 }, (_, i) => `v${i}`)],
      ['proxy-authorization', `Bearer ${good}`], ['x-http-method-override', 'DELETE'], ['forwarded', rng.pick(['for=1.2.3.4;proto=https', 'for="[::1]"', 'garbage'])]
    ])
    if (name === 'content-length' || name === 'transfer-encoding' || name === 'content-encoding' || name === 'expect') {
      // Framing headers matter only with a body; make sure there is one.
      if (c.raw === undefined && c.body === undefined) c.raw = '{}'
    }
    c.headers[name] = value
    if (rng.chance(0.3)) for (let i = 0; i < 200; i++) c.headers[`x-extra-${i}`] = 'v'
    return `header ${name}: ${JSON.stringify(value).slice(0, 80)}`
  },
  path (rng, c) {
    const before = c.path
    c.path = rng.pick([
      (p: string) => `${p}/`, (p: string) => `/${p}`, (p: string) => p.toUpperCase(), (p: string) => p.replace(/\//g, '%2F'),
      (p: string) => `${p}/..`, (p: string) => `${p}%00`, (p: string) => `${p}%zz`, (p: string) => `${p};x=1`, (p: string) => `${p}/${'a'.repeat(rng.pick([100, 5000, 70000]))}`,
      (p: string) => `${p}é`, (p: string) => `${p}#frag`, (p: string) => `${p}%2e`, (p: string) => `${p}//x`, (p: string) => p.replace(/^\//, '/./')
    ])(before)
    return `path ${c.path.slice(0, 100)}`
  },
  method (rng, c) {
    c.method = rng.pick(['GET', 'HEAD', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', 'SEARCH', 'QUERY', 'MKCOL', 'M-SEARCH', 'get', 'POST'])
    return `method ${c.method}`
  },
  revocation (rng, c) {
    const body = ensureBody(c)
    const pickOne = rng.pick(['sid', 'sub', 'jti', 'all', 'none', 'two'])
    for (const f of ['sid', 'sub', 'jti', 'all', 'before']) delete body[f]
    body.issuer = rng.pick(['main', 'hmac', 'nope', '', 'MAIN', '__proto__', 'constructor', 'toString', 'i'.repeat(65)])
    if (pickOne === 'all') body.all = rng.pick<Json>([true, false, 'true', 1, null])
    else if (pickOne === 'two') Object.assign(body, { sid: 's', jti: 'j' })
    else if (pickOne !== 'none') body[pickOne] = rng.pick(['x', '', 's'.repeat(256), '\u0000', '\ud800', 'é'])
    if (rng.chance(0.5)) body.before = rng.pick<Json>([0, -1, nowSeconds(), nowSeconds() + 61, nowSeconds() + 3600, nowSeconds() - 86401, 253402300799, 253402300800, 1.5, '1', 1e308])
    return `revocation ${JSON.stringify(body).slice(0, 120)}`
  }
}

/** How often each mutation is drawn: tokens and the body's fields most. */
const WEIGHTS: Record<string, number> = { token: 5, fieldType: 3, authorization: 2, rawBytes: 2, contentType: 2, hugeString: 2, revocation: 3, manyItems: 2 }
const MUTATION_NAMES = Object.keys(MUTATIONS).flatMap((name) => Array.from({ length: WEIGHTS[name] ?? 1 }, () => name))

/** Puts a token where the operation takes one (or, for an operation that takes none, somewhere anyway). */
function placeToken (rng: Rng, c: Case, op: Operation, token: string, alone = false): string {
  const where = op.tokenPlaces.length > 0 && rng.chance(0.9) ? rng.pick(op.tokenPlaces) : rng.pick(['authorization', 'token', 'cookie'])
  if (where === 'authorization') c.headers.authorization = `Bearer ${token}`
  else if (where === 'cookie') c.headers.cookie = rng.pick([`id_token=${token}`, `a=b; id_token="${token}"; c=d`, [`id_token=${token}`, `id_token=${good}`]])
  else if (where === 'token header') c.headers['x-id-token'] = rng.chance(0.1) ? [token, token] : token
  else {
    const body = ensureBody(c)
    body[where] = where === 'tokens' ? [token, ...(rng.chance(0.5) && Array.isArray(body.tokens) ? body.tokens as unknown[] : [])] : token
  }
  // One place at a time, mostly: a token in two places is a case of its own (token_ambiguous).
  if (where !== 'authorization' && c.headers.authorization !== undefined && (alone || rng.chance(0.8))) delete c.headers.authorization
  if (where !== 'token' && c.body !== undefined && 'token' in c.body && op.tokenPlaces.includes('authorization') && (alone || rng.chance(0.8))) delete c.body.token
  return where
}

/** Revoke by exactly one of these (openapi.yaml: "Exactly one of"). */
const ONE_OF = ['sid', 'sub', 'jti', 'all']

function makeCase (op: Operation, index: number): Case {
  const rng = new Rng(fnv1a(`${BASE_SEED}:${op.key}:${index}`))
  const headers: Headers = {}
  if (rng.chance(0.97)) headers['x-api-key'] = rng.chance(0.95) ? API_KEY : READER_KEY
  let body: Record<string, unknown> | undefined
  if (op.mediaType !== undefined) {
    headers['content-type'] = op.mediaType
    body = {}
    const oneOf = rng.pick(ONE_OF)
    for (const [name, schema] of Object.entries(op.fields)) {
      const wanted = ONE_OF.includes(name) ? name === oneOf : op.required.includes(name) || rng.chance(0.25)
      if (wanted) body[name] = plausible(rng, name, schema)
    }
  }
  const path = concretePath(rng, op.path)
  const c: Case = { desc: [], method: op.method, path, query: '', headers, body, raw: undefined, remoteAddress: rng.pick(REMOTE), own: { method: op.method, path } }
  if (c.path !== op.path) c.desc.push(`path ${c.path.slice(0, 80)}`)
  // The first cases of an operation that takes a token sweep every almost-valid token, one each, alone.
  if (index < ALMOST.length && op.tokenPlaces.length > 0) {
    const [name, make] = ALMOST[index]!
    c.headers['x-api-key'] = API_KEY
    // The token alone decides the answer: no optional checks beside it.
    if (c.body !== undefined) for (const field of Object.keys(c.body)) if (!op.required.includes(field)) delete c.body[field]
    c.desc.push(`${name} token in ${placeToken(rng, c, op, make(), true)}`)
    return c
  }
  // A plausible token where the operation takes one (a logout token is in the body already).
  if (op.tokenPlaces.length > 0 && !('logout_token' in op.fields)) placeToken(rng, c, op, good)
  const count = rng.chance(0.08) ? 0 : 1 + rng.int(4)
  for (let i = 0; i < count; i++) {
    let name = rng.pick(MUTATION_NAMES)
    // The route-specific mutations where they belong, most of the time.
    if ((name === 'revocation' && !('sid' in op.fields)) || (name === 'manyItems' && !('tokens' in op.fields))) name = 'token'
    if ((name === 'path' || name === 'method') && rng.chance(0.5)) name = 'fieldType'
    c.desc.push(MUTATIONS[name]!(rng, c, op))
  }
  if (c.desc.length === 0) c.desc.push('plausible request, no mutation')
  return c
}

function payloadOf (c: Case): string | Buffer | undefined {
  if (c.raw !== undefined) return c.raw
  if (c.body === undefined) return undefined
  const type = c.headers['content-type']
  if (typeof type === 'string' && type.startsWith('application/x-www-form-urlencoded')) {
    const params = new URLSearchParams()
    for (const [k, v] of Object.entries(c.body)) {
      if (Array.isArray(v)) for (const item of v) params.append(k, typeof item === 'string' ? item : JSON.stringify(item))
      else params.append(k, typeof v === 'string' ? v : JSON.stringify(v))
    }
    return params.toString()
  }
  return JSON.stringify(c.body)
}

// ---------------------------------------------------------------------------------------------------------
// Running a case and judging the answer
// ---------------------------------------------------------------------------------------------------------

const PROTOTYPE_KEYS = Object.getOwnPropertyNames(Object.prototype).sort().join(',')

function findInternalError (value: unknown, depth = 0): boolean {
  if (depth > 6 || value === null || typeof value !== 'object') return false
  if ((value as Record<string, unknown>).code === 'internal_error') return true
  return Object.values(value as Record<string, unknown>).some((v) => findInternalError(v, depth + 1))
}

interface Outcome { status: number, summary: string, problems: string[] }

async function runCase (op: Operation, c: Case): Promise<Outcome> {
  const problems: string[] = []
  const outboundBefore = outbound.length
  const logsBefore = errorLines.length
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<'hang'>((resolve) => { timer = setTimeout(() => resolve('hang'), HANG_MS) })
  let res: Awaited<ReturnType<typeof app.inject>> | 'hang'
  try {
    res = await Promise.race([
      app.inject({ method: c.method as 'GET', url: c.path + (c.query === '' ? '' : `?${c.query}`), headers: c.headers, payload: payloadOf(c), remoteAddress: c.remoteAddress }),
      timeout
    ])
  } catch (err) {
    const e = err as Error
    // inject() refusing to build the request (an assertion of light-my-request) is no answer of the app.
    if (e.name === 'AssertionError' || (e as { code?: string }).code === 'ERR_ASSERTION') return { status: 0, summary: 'not sendable through inject()', problems: [] }
    return { status: 0, summary: 'inject() threw', problems: [`inject() threw: ${e.stack ?? String(e)}`] }
  } finally {
    clearTimeout(timer)
  }
  if (res === 'hang') return { status: 0, summary: 'hang', problems: [`no answer within ${HANG_MS} ms`] }

  const status = res.statusCode
  const type = String(res.headers['content-type'] ?? '')
  let body: unknown
  if (type.startsWith('application/json') && res.body !== '') {
    try { body = JSON.parse(res.body) } catch { problems.push('a JSON content type with a body that is not JSON') }
  }
  const code = (body as { code?: unknown } | undefined)?.code
  const doc = op.documented.get(status)
  // Sent to the operation itself (method and path not mutated): a status its responses in openapi.yaml list. A path
  // with dot segments is another path (inject() resolves them as a URL parser does: /forward-auth/.. is /).
  if (doc === undefined && c.method === c.own.method && c.path === c.own.path && !DOT_SEGMENT.test(c.path)) {
    problems.push(`status ${status} is not documented for ${op.key}`)
  }
  if (status >= 500) {
    if (!(status === 503 && doc !== undefined)) problems.push(`status ${status}`)
    if (typeof code !== 'string' || !KNOWN_CODES.has(code)) problems.push(`${status} without a catalogue code`)
  }
  const headOnly = c.method.toUpperCase() === 'HEAD'
  const errorBodyExpected = status >= 300 && !headOnly && (doc === undefined || doc.errorBody)
  if (errorBodyExpected) {
    if (body === undefined) problems.push(`non-2xx answer without a JSON error body (content-type ${type}): ${res.body.slice(0, 120)}`)
    else if (typeof code !== 'string' || !KNOWN_CODES.has(code)) problems.push(`code ${JSON.stringify(code)} is not in the catalogue`)
    else if (typeof (body as { message?: unknown }).message !== 'string') problems.push('error body without a string message')
  }
  if (findInternalError(body)) problems.push('internal_error in the body')
  const requestId = res.headers['x-request-id']
  if (typeof requestId !== 'string' || requestId === '') problems.push('no x-request-id header')
  if (outbound.length > outboundBefore) problems.push(`outbound request attempted: ${outbound.slice(outboundBefore).join('; ')}`)
  const newLogs = errorLines.slice(logsBefore)
  const bugs = newLogs.filter((l) => /unexpected error/.test(String(l.msg)))
  if (bugs.length > 0) problems.push(`logged: ${bugs.map((l) => `${String(l.msg)}: ${JSON.stringify(l.err).slice(0, 1500)}`).join(' || ')}`)
  if (Object.getOwnPropertyNames(Object.prototype).sort().join(',') !== PROTOTYPE_KEYS || ({} as Record<string, unknown>).admin !== undefined || ({} as Record<string, unknown>).polluted !== undefined) {
    problems.push('Object.prototype was polluted')
  }
  if (problems.length > 0 && newLogs.length > 0 && bugs.length === 0) problems.push(`error log: ${JSON.stringify(newLogs).slice(0, 1500)}`)
  return { status, summary: `${status} ${typeof code === 'string' ? code : ''}`.trim(), problems }
}

// ---------------------------------------------------------------------------------------------------------
// The property, per operation
// ---------------------------------------------------------------------------------------------------------

t.test('openapi.yaml lists the routes this test is about', async (t) => {
  const keys = operations.map((o) => o.key)
  for (const key of ['POST /verify', 'POST /verify/batch', 'POST /introspect', 'GET /forward-auth', 'POST /backchannel-logout', 'POST /revocations']) {
    t.ok(keys.includes(key), key)
  }
})

const started = performance.now()
const only = ONLY === undefined ? undefined : /^(.+)#(\d+)$/.exec(ONLY)

for (const op of operations) {
  if (only !== null && only !== undefined && only[1] !== op.key) continue
  t.test(`${op.key}: hostile requests`, async (t) => {
    const failures: string[] = []
    const statuses = new Map<string, number>()
    const total = CASES_PER_OPERATION + (op.tokenPlaces.length > 0 ? ALMOST.length : 0)
    const indexes = only === null || only === undefined ? Array.from({ length: total }, (_, i) => i) : [Number(only[2])]
    for (const i of indexes) {
      const c = makeCase(op, i)
      const outcome = await runCase(op, c)
      statuses.set(outcome.summary, (statuses.get(outcome.summary) ?? 0) + 1)
      if (VERBOSE || (only !== null && only !== undefined)) t.comment(`${op.key}#${i}: ${c.method} ${c.path.slice(0, 100)} ${c.desc.join(' | ')} → ${outcome.summary}`)
      if (outcome.problems.length > 0) {
        failures.push(`[${op.key}#${i}] ${c.method} ${c.path.slice(0, 80)}${c.query === '' ? '' : '?…'} — ${c.desc.join(' | ')} → ${outcome.summary}: ${outcome.problems.join('; ')}`)
      }
    }
    for (const failure of failures.slice(0, 25)) t.fail(failure)
    if (failures.length > 25) t.fail(`${op.key}: ${failures.length - 25} more failing cases`)
    if (failures.length === 0) t.pass(`${indexes.length} requests, answers: ${[...statuses].map(([s, n]) => `${s} ×${n}`).join(', ').slice(0, 400)}`)
  })
}

t.test('afterwards: no outbound request, and the app still answers valid requests', async (t) => {
  t.same(outbound, [], 'no outbound request was ever attempted')
  const token = mint(sanityKey, idTokenClaims(ISS_SANITY, 'sanity-client', { groups: ['admins'] }))
  const key = { 'x-api-key': API_KEY }
  const verify = await app.inject({ method: 'POST', url: '/verify', headers: key, payload: { token } })
  t.equal(verify.statusCode, 200, `POST /verify: ${verify.body.slice(0, 200)}`)
  t.equal(verify.json().subject, 'user-123')
  const batch = await app.inject({ method: 'POST', url: '/verify/batch', headers: key, payload: { tokens: [token, 'x'] } })
  t.equal(batch.statusCode, 200, 'POST /verify/batch')
  t.same(batch.json().results.map((r: { ok: boolean }) => r.ok), [true, false])
  const introspect = await app.inject({ method: 'POST', url: '/introspect', headers: { ...key, 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${token}` })
  t.equal(introspect.json().active, true, 'POST /introspect')
  const fa = await app.inject({ method: 'GET', url: '/forward-auth?group=admins', headers: { ...key, authorization: `Bearer ${token}` } })
  t.equal(fa.statusCode, 200, 'GET /forward-auth')
  t.equal(fa.headers['x-auth-subject'], 'user-123')
  for (const url of ['/healthz', '/readyz', '/openapi.json', '/metrics']) {
    const res = await app.inject({ method: 'GET', url, headers: key })
    t.equal(res.statusCode, 200, `GET ${url}`)
  }
  const revoke = await app.inject({ method: 'POST', url: '/revocations', headers: key, payload: { issuer: 'hmac', jti: 'final' } })
  t.equal(revoke.statusCode, 200, 'POST /revocations')
  t.comment(`${operations.length} operations, ${only === undefined ? `${CASES_PER_OPERATION} random cases each (and ${ALMOST.length} token cases for those that take a token)` : '1 case'}, ${Math.round(performance.now() - started)} ms`)
})
