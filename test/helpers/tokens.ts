/**
 * Test keys and a token minter that signs whatever header and payload it is given, so tests can build
 * valid tokens and every hostile variant (wrong types, odd headers, bad encodings) with real signatures.
 */
import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, sign, constants, type KeyObject } from 'node:crypto'
import { join } from 'node:path'
import { TEST_CACHE, readCached, writeCached } from './test-cache.mjs'

export type TestAlg = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA'

export interface TestKey {
  alg: TestAlg
  kid: string
  privateKey: KeyObject
  /** Public JWK with kid, alg and use. */
  jwk: Record<string, unknown>
}

let counter = 0

/**
 * A key pair from generateKeyPairSync (RSA: from the pool below), re-imported from PEM. Node 20 can deadlock
 * exporting a KeyObject that came straight from generateKeyPairSync (as JWK, for one): a garbage collection
 * during the export finalizes the generation job, whose destructor waits for the lock the export holds. It
 * hung CI once (gdb: ExportJWKEcKey → GC → ~KeyGenJob → uv_mutex_lock) and hangs within seconds under GC
 * pressure. Keys re-imported from PEM belong to no job.
 */
export function generatePair (type: 'rsa' | 'ec' | 'ed25519' | 'ed448' | 'x25519', options: { modulusLength?: number, namedCurve?: string, publicExponent?: number } = {}): { privateKey: KeyObject, publicKey: KeyObject } {
  const key = createPrivateKey(type === 'rsa' ? pooledRsaPem(options) : generatedPem(type, options))
  return { privateKey: key, publicKey: createPublicKey(key) }
}

function generatedPem (type: string, options: object): string {
  const pem = { publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } } as const
  return (generateKeyPairSync as (t: string, o: object) => { privateKey: string })(type, { ...options, ...pem }).privateKey
}

const RSA_POOL = join(TEST_CACHE, 'rsa-keys')
const rsaTaken = new Map<string, number>()

/**
 * An RSA key from a pool kept on disk (rsa-keys/ in the tests' cache, test-cache.mjs): generating one costs
 * 50–500 ms of CPU, and the suite's processes asked for hundreds (~45 s of CPU per run, measured with
 * --cpu-prof). The n-th key of a size a process asks for is the pool's n-th of that size, generated and
 * written by the first process that needs it: keys are distinct within a process, as tests need, and the
 * same from one test file to the next, which never share one.
 */
function pooledRsaPem (options: { modulusLength?: number, publicExponent?: number }): string {
  const size = `${options.modulusLength ?? 2048}-${options.publicExponent ?? 65537}`
  const n = rsaTaken.get(size) ?? 0
  rsaTaken.set(size, n + 1)
  const file = join(RSA_POOL, `rsa-${size}-${n}.pem`)
  const kept = readCached(file)
  if (kept !== undefined) return kept
  const pem = generatedPem('rsa', options)
  writeCached(file, pem)
  return pem
}

export function makeKey (alg: TestAlg, opts: { kid?: string, modulusLength?: number, jwkExtras?: Record<string, unknown> } = {}): TestKey {
  let pair: { privateKey: KeyObject, publicKey: KeyObject }
  if (alg.startsWith('RS') || alg.startsWith('PS')) pair = generatePair('rsa', { modulusLength: opts.modulusLength ?? 2048 })
  else if (alg === 'ES256') pair = generatePair('ec', { namedCurve: 'P-256' })
  else if (alg === 'ES384') pair = generatePair('ec', { namedCurve: 'P-384' })
  else if (alg === 'ES512') pair = generatePair('ec', { namedCurve: 'P-521' })
  else pair = generatePair('ed25519')
  const kid = opts.kid ?? `test-${alg.toLowerCase()}-${++counter}`
  const jwk = { ...pair.publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig', ...opts.jwkExtras }
  return { alg, kid, privateKey: pair.privateKey, jwk }
}

export function jwksOf (...keys: TestKey[]): { keys: Array<Record<string, unknown>> } {
  return { keys: keys.map((k) => k.jwk) }
}

export const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

function signBytes (alg: string, key: KeyObject, data: Buffer): Buffer {
  const hash = alg.endsWith('384') ? 'sha384' : alg.endsWith('512') ? 'sha512' : 'sha256'
  if (alg.startsWith('RS')) return sign(hash, data, key)
  if (alg.startsWith('PS')) return sign(hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8 })
  if (alg.startsWith('ES')) return sign(hash, data, { key, dsaEncoding: 'ieee-p1363' })
  return sign(null, data, key)
}

export interface MintOptions {
  header?: Record<string, unknown>
  /** Replace the header entirely (no defaults). */
  rawHeader?: unknown
  /** Replace the payload entirely (no defaults). */
  rawPayload?: unknown
}

export function nowSeconds (): number {
  return Math.floor(Date.now() / 1000)
}

/** Standard ID-token claims for an issuer and audience, overridable. */
export function idTokenClaims (iss: string, aud: string | string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSeconds()
  return { iss, sub: 'user-123', aud, iat: now, exp: now + 600, auth_time: now - 10, email: 'user@example.com', email_verified: true, name: 'Ada Lovelace', ...extra }
}

/**
 * Signs with the key's own algorithm whatever header and payload it is given (a header claiming another
 * alg, "none" or HS256 still gets the key's signature: that is the attack being tested).
 */
export function mint (key: TestKey, payload: Record<string, unknown>, opts: MintOptions = {}): string {
  const header = opts.rawHeader ?? { alg: key.alg, kid: key.kid, typ: 'JWT', ...opts.header }
  const input = `${b64(header)}.${b64(opts.rawPayload ?? payload)}`
  return `${input}.${signBytes(key.alg, key.privateKey, Buffer.from(input)).toString('base64url')}`
}

export function mintHmac (secret: string, alg: 'HS256' | 'HS384' | 'HS512', payload: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const input = `${b64({ alg, typ: 'JWT', ...header })}.${b64(payload)}`
  const hash = alg === 'HS256' ? 'sha256' : alg === 'HS384' ? 'sha384' : 'sha512'
  return `${input}.${createHmac(hash, secret).update(input).digest('base64url')}`
}

/** Re-signs nothing: swaps the payload of a signed token (the signature then no longer matches). */
export function tamperPayload (token: string, payload: Record<string, unknown>): string {
  const [h, , s] = token.split('.')
  return `${h}.${b64(payload)}.${s}`
}

export function privateJwk (key: TestKey): Record<string, unknown> {
  return createPrivateKey(key.privateKey.export({ format: 'pem', type: 'pkcs8' })).export({ format: 'jwk' })
}
