/**
 * Signature verification with node:crypto on pre-imported KeyObjects: the fastest correct primitive Node
 * offers (no WebCrypto promise round trip, no key import per call). Every algorithm is spelled out; there is
 * no default branch that could accept something unexpected.
 */
import { constants, createHmac, timingSafeEqual, verify, type KeyObject } from 'node:crypto'
import type { AsymmetricAlgorithm, HmacAlgorithm } from '../config/types.js'
import { p1363ToDer } from './ecdsa-der.js'
import { pssKeyOf, type PssAlgorithm } from './rsa-pss-key.js'

interface AsymmetricParams {
  hash: 'sha256' | 'sha384' | 'sha512' | null
  /** RSASSA-PKCS1-v1_5: node:crypto's default padding for an `rsa` key. */
  pkcs1?: true
  /** RSASSA-PSS with this salt length (RFC 7518 §3.5: the hash's length). */
  saltLength?: number
  /** ECDSA signatures in JWS are R || S of fixed length (RFC 7518 §3.4). */
  ecSignatureBytes?: number
}

const ASYMMETRIC: Record<AsymmetricAlgorithm, AsymmetricParams> = {
  RS256: { hash: 'sha256', pkcs1: true },
  RS384: { hash: 'sha384', pkcs1: true },
  RS512: { hash: 'sha512', pkcs1: true },
  PS256: { hash: 'sha256', saltLength: 32 },
  PS384: { hash: 'sha384', saltLength: 48 },
  PS512: { hash: 'sha512', saltLength: 64 },
  ES256: { hash: 'sha256', ecSignatureBytes: 64 },
  ES384: { hash: 'sha384', ecSignatureBytes: 96 },
  ES512: { hash: 'sha512', ecSignatureBytes: 132 },
  EdDSA: { hash: null },
  Ed25519: { hash: null }
}

/** A signature check ready to run: node:crypto's arguments, prepared once per check. */
export interface PreparedCheck {
  hash: string | null
  data: Buffer
  key: KeyObject | { key: KeyObject, padding: number, saltLength: number }
  signature: Buffer
}

/**
 * node:crypto's arguments for one check, or undefined when the signature cannot be valid whatever the key
 * (an ECDSA or RSA signature of the wrong length: node:crypto would otherwise try to read it, and takes a
 * PSS signature without its leading zero byte; an RS* or PS* key that is not a plain RSA key).
 *
 * The key goes to node:crypto bare wherever its defaults are the algorithm's: on Node 24 a key inside an
 * options object costs about 9 µs more per check (22 µs with `dsaEncoding`). So ECDSA signatures are
 * rewritten to DER here (src/core/ecdsa-der.ts), RS* relies on the default padding of an `rsa` key, PKCS#1
 * v1.5, and PS* gets the key as an `rsa-pss` key restricted to the algorithm's parameters.
 */
export function prepareAsymmetric (alg: AsymmetricAlgorithm, key: KeyObject, data: Buffer, signature: Buffer): PreparedCheck | undefined {
  const p = ASYMMETRIC[alg]
  if (p.ecSignatureBytes !== undefined) {
    if (signature.length !== p.ecSignatureBytes) return undefined
    return { hash: p.hash, data, key, signature: p1363ToDer(signature, p.ecSignatureBytes / 2) }
  }
  if (p.pkcs1 === true || p.saltLength !== undefined) {
    // A plain `rsa` key (an `rsa-pss` one would default to PSS padding; keys imported from JWKs are always
    // `rsa`, but say so here), and exactly the modulus' length (RFC 8017 §8.1.2, §8.2.2): OpenSSL would take a
    // PSS signature whose leading zero byte is left out, a second spelling of the same signature.
    if (key.asymmetricKeyType !== 'rsa' || signature.length !== modulusBytes(key)) return undefined
    if (p.saltLength !== undefined) {
      // PS*: the key restricted to the algorithm's PSS parameters (src/core/rsa-pss-key.ts), bare; options only
      // if it cannot be built.
      const pss = pssKeyOf(key, alg as PssAlgorithm)
      return { hash: p.hash, data, key: pss ?? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: p.saltLength }, signature }
    }
  }
  return { hash: p.hash, data, key, signature }
}

/** An RSA key's modulus in bytes, read once per key (asymmetricKeyDetails builds an object on every read). */
const MODULUS_BYTES = new WeakMap<KeyObject, number>()
function modulusBytes (key: KeyObject): number {
  let bytes = MODULUS_BYTES.get(key)
  if (bytes === undefined) {
    bytes = Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8)
    MODULUS_BYTES.set(key, bytes)
  }
  return bytes
}

/** Runs a prepared check on the calling thread; a malformed signature is simply not valid (never a throw). */
export function runCheck (c: PreparedCheck): boolean {
  try {
    return verify(c.hash, c.data, c.key, c.signature)
  } catch {
    return false // node:crypto throws on some malformed signatures (wrong length for the modulus)
  }
}

const HMAC_HASH: Record<HmacAlgorithm, { hash: 'sha256' | 'sha384' | 'sha512', bytes: number }> = {
  HS256: { hash: 'sha256', bytes: 32 },
  HS384: { hash: 'sha384', bytes: 48 },
  HS512: { hash: 'sha512', bytes: 64 }
}

/** The shortest secret RFC 7518 §3.2 allows for an HMAC algorithm: as long as the hash output. */
export function minimumHmacSecretBytes (alg: HmacAlgorithm): number {
  return HMAC_HASH[alg].bytes
}

export function verifyHmac (alg: HmacAlgorithm, secret: Buffer, data: Buffer, signature: Buffer): boolean {
  const { hash, bytes } = HMAC_HASH[alg]
  if (signature.length !== bytes) return false
  const expected = createHmac(hash, secret).update(data).digest()
  return timingSafeEqual(expected, signature)
}

export function isHmacAlgorithm (alg: string): alg is HmacAlgorithm {
  return alg === 'HS256' || alg === 'HS384' || alg === 'HS512'
}

export function isAsymmetricAlgorithm (alg: string): alg is AsymmetricAlgorithm {
  return Object.hasOwn(ASYMMETRIC, alg)
}

/**
 * The JWS algorithm names of IANA's "JSON Web Signature and Encryption Algorithms" registry, ours or not: an
 * error may name one of these, never another header value, which is input.
 */
const REGISTERED_JWS_ALGORITHMS: ReadonlySet<string> = new Set([
  'none', 'HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512',
  'ES256K', 'EdDSA', 'Ed25519', 'Ed448'
])

/** The token's alg as an error may show it: a registered name, else nothing. */
export function registeredAlgorithm (alg: string): string | undefined {
  return REGISTERED_JWS_ALGORITHMS.has(alg) ? alg : undefined
}
