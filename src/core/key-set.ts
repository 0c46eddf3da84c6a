/**
 * A verified issuer's public keys, imported once and kept as KeyObjects. Keys unfit for verifying a token
 * are never offered: `use: enc`, `key_ops` without "verify", RSA under 2048 or over 8192 bits, an EdDSA key of
 * small order, private key material, or a key type / curve / `alg` that does not match the token's algorithm. The
 * work one token can cause is bounded too: a key listed twice under the same kid is kept once, and at most
 * MAX_KEYS_PER_KID keys are kept under one kid (the rest are rejected, so they are reported like any unusable
 * key). Duplicates and keys over the bound are rejected before they are imported, in one pass. (A fetched JWKS
 * has at most MAX_JWKS_KEYS keys in all, src/jwks/parse-jwks.ts.)
 */
import { createPublicKey, type KeyObject } from 'node:crypto'
import { ASYMMETRIC_ALGORITHMS, type AsymmetricAlgorithm, type JsonWebKeySet, type PublicJwk } from '../config/types.js'

export const MIN_RSA_BITS = 2048
/**
 * Larger moduli are refused: no provider uses them, and each check of a forged signature against an RSA-16384
 * key costs about a millisecond. Checked on the JWK's `n` before the key is imported.
 */
export const MAX_RSA_BITS = 8192
/**
 * Keys kept under one kid, so a token with a kid is tried against at most this many keys; the same bound as
 * MAX_KEYS_TRIED_WITHOUT_KID in verifier.ts for a token without one.
 */
export const MAX_KEYS_PER_KID = 5

/** What a key must be to verify a given algorithm. */
const KEY_REQUIREMENTS: Record<AsymmetricAlgorithm, { kty: string, crv?: readonly string[] }> = {
  RS256: { kty: 'RSA' },
  RS384: { kty: 'RSA' },
  RS512: { kty: 'RSA' },
  PS256: { kty: 'RSA' },
  PS384: { kty: 'RSA' },
  PS512: { kty: 'RSA' },
  ES256: { kty: 'EC', crv: ['P-256'] },
  ES384: { kty: 'EC', crv: ['P-384'] },
  ES512: { kty: 'EC', crv: ['P-521'] },
  EdDSA: { kty: 'OKP', crv: ['Ed25519', 'Ed448'] },
  Ed25519: { kty: 'OKP', crv: ['Ed25519'] }
}

/** The members each key type must have, as strings. */
const KEY_MEMBERS: Record<'RSA' | 'EC' | 'OKP', readonly string[]> = { RSA: ['n', 'e'], EC: ['crv', 'x', 'y'], OKP: ['crv', 'x'] }

/** JWK members that only a private or symmetric key has; a JWKS that carries them is misconfigured. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const

export interface UsableKey {
  kid: string | undefined
  kty: string
  crv: string | undefined
  /** The JWK's own `alg`, when it pins one. */
  alg: string | undefined
  /** Entra ID publishes the issuer a key belongs to; checked by the multi-tenant rules when present. */
  issuer: string | undefined
  key: KeyObject
  /**
   * The public key material and what the JWKS pins it to (alg, issuer) as text: the same key in a later JWKS has
   * the same fingerprint; re-pinned (another alg or issuer), it is another key, and what it verified is not kept.
   */
  fingerprint: string
}

/** Characters of a rejected key's kid kept for reports (kids are short; a JWKS may hold up to 512 KiB of one). */
export const MAX_LOGGED_KID_LENGTH = 128

export interface RejectedKey {
  /** The key's kid, cut to MAX_LOGGED_KID_LENGTH characters: it is the provider's text, and only ever reported. */
  kid: string | undefined
  reason: string
}

function publicPart (jwk: PublicJwk): Record<string, unknown> {
  switch (jwk.kty) {
    case 'RSA': return { kty: 'RSA', n: jwk.n, e: jwk.e }
    case 'EC': return { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y }
    default: return { kty: jwk.kty, crv: jwk.crv, x: jwk.x }
  }
}

/** Bits of a base64url big-endian unsigned integer, leading zero octets ignored (a size estimate: invalid characters are skipped). */
function base64urlBits (value: string): number {
  const bytes = Buffer.from(value, 'base64url')
  let first = 0
  while (first < bytes.length && bytes[first] === 0) first++
  if (first === bytes.length) return 0
  return (bytes.length - first - 1) * 8 + (32 - Math.clz32(bytes[first] as number))
}

/** Bits an RSA public exponent may have (RFC 8017 allows up to the modulus; 65537 has 17). */
export const MAX_RSA_EXPONENT_BITS = 32

/** Whether a base64url RSA exponent is odd, at least 3 and at most MAX_RSA_EXPONENT_BITS bits long. */
function isUsualExponent (value: string): boolean {
  const bits = base64urlBits(value)
  if (bits < 2 || bits > MAX_RSA_EXPONENT_BITS) return false
  const bytes = Buffer.from(value, 'base64url')
  return ((bytes[bytes.length - 1] as number) & 1) === 1
}

/**
 * The Edwards curves of EdDSA keys (RFC 8032 §5.1, §5.2): a·x² + y² = 1 + d·x²·y² over GF(p), points encoded as y
 * in `bytes` little-endian bytes with x's sign in the last bit, and the cofactor as a number of doublings.
 */
const EDWARDS: Record<string, { p: bigint, a: bigint, d: bigint, bytes: number, cofactorDoublings: number }> = {
  Ed25519: {
    p: 2n ** 255n - 19n,
    a: -1n,
    d: 37095705934669439343138083508754565189542113879843219016388785533085940283555n, // -121665/121666
    bytes: 32,
    cofactorDoublings: 3
  },
  Ed448: { p: 2n ** 448n - 2n ** 224n - 1n, a: 1n, d: -39081n, bytes: 57, cofactorDoublings: 2 }
}

/**
 * Whether an EdDSA public key is a point of small order ([cofactor]·A is the identity). node:crypto (OpenSSL)
 * imports such a key and verifies cofactorless: with R the identity and S = 0, [S]B = R + [k]A holds whenever
 * [k]A is the identity, so anyone can forge signatures (for every message with the identity itself, for one in
 * four with the all-zero key). Worked out from y alone: a point's order does not depend on x's sign, and the
 * doubling formulas need only x², which the curve equation gives; y = Y/Z and x² = U/V are kept as fractions
 * (no inversion: well under a millisecond a key). y is read as OpenSSL reads it, modulo p.
 */
function isSmallOrderEdwardsPoint (crv: string, x: string): boolean {
  const curve = EDWARDS[crv]
  const bytes = Buffer.from(x, 'base64url')
  if (curve === undefined || bytes.length !== curve.bytes) return false // not a key at all: refused when imported
  const { p, a, d } = curve
  const mod = (v: bigint): bigint => ((v % p) + p) % p
  let y = 0n
  for (let i = bytes.length - 1; i >= 0; i--) y = (y << 8n) | BigInt(i === bytes.length - 1 ? (bytes[i] as number) & 0x7f : bytes[i] as number)
  // a·x² + y² = 1 + d·x²·y²  ⇒  x² = (1 − y²) / (a − d·y²)
  let Y = mod(y)
  let Z = 1n
  let U = mod(1n - y * y)
  let V = mod(a - d * y * y)
  for (let i = 0; i < curve.cofactorDoublings; i++) {
    if (Z === 0n || V === 0n) return false // not a point of the curve: refused when imported or verified
    // Doubling: y' = (y² − a·x²) / (1 − d·x²·y²), x'² = 4·x²·y² / (1 + d·x²·y²)², over the common denominator V·Z².
    const Y2 = Y * Y % p
    const VZ2 = V * (Z * Z % p) % p
    const DUY2 = mod(d * U % p * Y2)
    const plus = (VZ2 + DUY2) % p
    Y = mod(Y2 * V - a * U * (Z * Z % p))
    Z = mod(VZ2 - DUY2)
    U = 4n * U % p * Y2 % p * VZ2 % p
    V = plus * plus % p
  }
  return Z !== 0n && V !== 0n && U === 0n && Y === Z
}

/** Why a JWK can never verify an ID token, or undefined when it is a usable signature key. */
export function unfitReason (jwk: PublicJwk): string | undefined {
  // Cut like crv and alg below: kty is the provider's text, of any length (the warning names each rejected key).
  if (jwk.kty !== 'RSA' && jwk.kty !== 'EC' && jwk.kty !== 'OKP') return `key type ${String(jwk.kty).slice(0, 32)} cannot verify signatures here`
  if (jwk.use !== undefined && jwk.use !== 'sig') return 'use is not "sig"'
  if (jwk.key_ops !== undefined && (!Array.isArray(jwk.key_ops) || !jwk.key_ops.includes('verify'))) return 'key_ops does not include "verify"'
  if (PRIVATE_MEMBERS.some((m) => m in jwk)) return 'contains private key material'
  if (jwk.kid !== undefined && typeof jwk.kid !== 'string') return 'kid is not a string'
  if (jwk.alg !== undefined && typeof jwk.alg !== 'string') return 'alg is not a string'
  // Before anything reads them: a member of another type (a number, an array nested 100,000 deep) is a bad key,
  // not a failure of the whole key set.
  for (const member of KEY_MEMBERS[jwk.kty]) {
    if (typeof jwk[member] !== 'string') return `${member} is missing or not a string`
  }
  // A key no algorithm of ours can use (an X25519 or secp256k1 key, alg RSA-OAEP) must not count as usable: a
  // key set of such keys would replace good keys and answer key_not_found to every token.
  const shape = { kty: jwk.kty, crv: jwk.crv, alg: jwk.alg }
  if (!ASYMMETRIC_ALGORITHMS.some((alg) => fitsAlgorithm(shape, alg))) {
    // Only a string is quoted: crv is not checked for an RSA key, and may be anything (an array nested deep).
    const curve = typeof jwk.crv === 'string' ? ` on curve ${jwk.crv.slice(0, 32)}` : ''
    if (jwk.alg === undefined) return `a ${jwk.kty} key${curve} cannot verify signatures here`
    return (ASYMMETRIC_ALGORITHMS as readonly string[]).includes(jwk.alg)
      ? `alg ${jwk.alg} does not fit a ${jwk.kty} key${curve}`
      : `alg ${jwk.alg.slice(0, 32)} is not a signature algorithm this service verifies`
  }
  if (jwk.kty === 'RSA' && typeof jwk.n === 'string' && base64urlBits(jwk.n) > MAX_RSA_BITS) {
    return `RSA modulus is longer than ${MAX_RSA_BITS} bits`
  }
  // OpenSSL takes an exponent up to the modulus (for moduli of 3072 bits or fewer), and each check costs in
  // proportion: a 3071-bit e makes one forged token cost ~7 ms. Every provider uses 65537.
  if (jwk.kty === 'RSA' && typeof jwk.e === 'string' && !isUsualExponent(jwk.e)) {
    return `RSA public exponent is not an odd number from 3 to 2^${MAX_RSA_EXPONENT_BITS}`
  }
  if (jwk.kty === 'OKP' && typeof jwk.crv === 'string' && isSmallOrderEdwardsPoint(jwk.crv, jwk.x as string)) {
    return `${jwk.crv} public key is a point of small order (anyone could forge signatures for it)`
  }
  return undefined
}

export class KeySet {
  readonly keys: readonly UsableKey[]
  readonly rejected: readonly RejectedKey[]
  private readonly byKid = new Map<string, UsableKey[]>()

  constructor (jwks: JsonWebKeySet) {
    const keys: UsableKey[] = []
    const rejected: RejectedKey[] = []
    // kid, material, alg and issuer of every key kept: the same key listed again would only be tried again.
    const kept = new Set<string>()
    for (const jwk of jwks.keys) {
      const kid = typeof jwk.kid === 'string' ? jwk.kid : undefined
      const reason = unfitReason(jwk)
      if (reason !== undefined) {
        rejected.push({ kid, reason })
        continue
      }
      const issuer = typeof jwk.issuer === 'string' ? jwk.issuer : undefined
      // The kid is part of the key: a token naming a kid the JWKS no longer lists finds no key, cached or not.
      const fingerprint = JSON.stringify([kid ?? null, publicPart(jwk), jwk.alg ?? null, issuer ?? null])
      if (kept.has(fingerprint)) {
        rejected.push({ kid, reason: 'duplicate of a key listed earlier under the same kid' })
        continue
      }
      const sameKid = kid === undefined ? undefined : this.byKid.get(kid)
      if (sameKid !== undefined && sameKid.length >= MAX_KEYS_PER_KID) {
        rejected.push({ kid, reason: `more than ${MAX_KEYS_PER_KID} keys share this kid (only the first ${MAX_KEYS_PER_KID} are tried)` })
        continue
      }
      let key: KeyObject
      try {
        key = createPublicKey({ key: publicPart(jwk) as import('node:crypto').JsonWebKey, format: 'jwk' })
      } catch {
        rejected.push({ kid, reason: 'is not a valid public key' })
        continue
      }
      if (jwk.kty === 'RSA' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
        rejected.push({ kid, reason: `RSA modulus is shorter than ${MIN_RSA_BITS} bits` })
        continue
      }
      const usable: UsableKey = {
        kid,
        kty: jwk.kty,
        crv: typeof jwk.crv === 'string' ? jwk.crv : undefined,
        alg: jwk.alg,
        issuer,
        key,
        fingerprint
      }
      kept.add(fingerprint)
      keys.push(usable)
      if (kid !== undefined) {
        if (sameKid === undefined) this.byKid.set(kid, [usable])
        else sameKid.push(usable)
      }
    }
    this.keys = keys
    this.rejected = rejected.map(({ kid, reason }) => ({ kid: kid !== undefined && kid.length > MAX_LOGGED_KID_LENGTH ? `${kid.slice(0, MAX_LOGGED_KID_LENGTH)}…` : kid, reason }))
  }

  /**
   * The keys that may verify a token with this header: same kid (when the token names one; at most
   * MAX_KEYS_PER_KID), fit for alg.
   */
  candidates (alg: AsymmetricAlgorithm, kid: string | undefined): UsableKey[] {
    const pool = kid === undefined ? this.keys : (this.byKid.get(kid) ?? [])
    return pool.filter((k) => fitsAlgorithm(k, alg))
  }

  /** Fingerprints of every usable key, to tell which keys a newer JWKS no longer has. */
  fingerprints (): Set<string> {
    return new Set(this.keys.map((k) => k.fingerprint))
  }

  hasKid (kid: string): boolean {
    return this.byKid.has(kid)
  }
}

export function fitsAlgorithm (key: Pick<UsableKey, 'kty' | 'crv' | 'alg'>, alg: AsymmetricAlgorithm): boolean {
  const req = KEY_REQUIREMENTS[alg]
  if (key.kty !== req.kty) return false
  if (req.crv !== undefined && (key.crv === undefined || !req.crv.includes(key.crv))) return false
  // A key that pins an algorithm is used for that algorithm only ("EdDSA" and "Ed25519" name the same thing on
  // Ed25519; "Ed25519" on another curve is a contradiction, fit for nothing).
  if (key.alg !== undefined && key.alg !== alg && !(isEdDsa(key.alg) && isEdDsa(alg))) return false
  if (key.alg === 'Ed25519' && key.crv !== 'Ed25519') return false
  return true
}

function isEdDsa (alg: string): boolean {
  return alg === 'EdDSA' || alg === 'Ed25519'
}
