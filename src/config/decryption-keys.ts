/**
 * Reads the private keys that decrypt encrypted ID tokens (JWE) from files: PEM (PKCS#8, PKCS#1, SEC1, one key
 * per file), a private JWK, or a JWK set of private keys (for dir and PBES2, `kty: oct` secrets). Every problem
 * is returned as text naming what is wrong, never the key material.
 *
 * An asymmetric key without a kid (every PEM key, and a JWK without one) gets its RFC 7638 JWK thumbprint as
 * kid, so that a token whose header names that thumbprint selects it exactly. A secret without a kid keeps
 * none: its thumbprint would be a fast hash of the secret (a PBES2 password), a gift to offline guessing.
 */
import { createECDH, createHash, createPrivateKey, createPublicKey, createSecretKey, type KeyObject } from 'node:crypto'
import { decodeBase64url } from '../core/base64url.js'
import { MAX_RSA_BITS, MIN_RSA_BITS } from '../core/key-set.js'
import { isRecord } from './document.js'
import type { DecryptionKey } from './types.js'

const EC_CURVES: Readonly<Record<string, string>> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' }
/** A secret shorter than an AES-128 key is not a key. */
const MIN_SECRET_BYTES = 16

export interface KeyFileResult {
  keys: DecryptionKey[]
  problems: string[]
}

/** The public key (SPKI), or a hash of the secret: equal for the same key read from two files. */
function fingerprintOf (key: KeyObject): string {
  if (key.type === 'secret') return `secret:${createHash('sha256').update(key.export()).digest('base64url')}`
  return `public:${createPublicKey(key).export({ type: 'spki', format: 'der' }).toString('base64url')}`
}

/** The RFC 7638 thumbprint (SHA-256, base64url) of an asymmetric key's public JWK. */
export function jwkThumbprint (key: KeyObject): string {
  const jwk = createPublicKey(key).export({ format: 'jwk' })
  // The required members only, in lexicographic order, without whitespace (RFC 7638 §3.2).
  const members = jwk.kty === 'RSA'
    ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
    : jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x }
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url')
}

/** The key read from a file, with its thumbprint as kid when it has none and is asymmetric. */
function decryptionKey (file: string, kid: string | undefined, alg: string | undefined, key: KeyObject): DecryptionKey {
  return { file, kid: kid ?? (key.type === 'secret' ? undefined : jwkThumbprint(key)), alg, key, fingerprint: fingerprintOf(key) }
}

/** Why a private key object cannot decrypt ID tokens, or undefined when it can. */
function unfit (key: KeyObject): string | undefined {
  const type = key.asymmetricKeyType
  if (type === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
    if (bits < MIN_RSA_BITS) return `an RSA key of ${bits} bits; expected at least ${MIN_RSA_BITS}`
    // Every token that fits the key costs a private-key operation before anything is proven: bounded as the
    // signature keys are.
    return bits > MAX_RSA_BITS ? `an RSA key of ${bits} bits; expected at most ${MAX_RSA_BITS}` : undefined
  }
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? ''
    return EC_CURVES[curve] === undefined ? `an EC key on curve ${curve}; expected P-256, P-384 or P-521` : ecPointProblem(key, curve)
  }
  if (type === 'x25519') return undefined
  return `a key of type ${type ?? 'unknown'}; expected RSA (RSA-OAEP, RSA1_5), EC or X25519 (ECDH-ES)`
}

/**
 * Why an EC private key cannot be the one its public point names: node:crypto takes any "d" and any "x"/"y" side
 * by side, and a "d" of zero or past the curve's order, or a point that is not d·G, makes a key no token can be
 * decrypted with (WebCrypto, which decrypts, refuses it; a sender encrypts to the published point). The point is
 * derived again with ECDH, which checks d's range without leaving an OpenSSL error behind
 * (test/openssl-error-queue.test.ts).
 */
function ecPointProblem (key: KeyObject, curve: string): string | undefined {
  const jwk = key.export({ format: 'jwk' })
  const ecdh = createECDH(curve)
  try {
    ecdh.setPrivateKey(Buffer.from(jwk.d ?? '', 'base64url'))
  } catch {
    return `an EC private key whose "d" is not a private key of ${EC_CURVES[curve] ?? curve} (zero, or not below the curve's order)`
  }
  const point = Buffer.concat([Buffer.of(4), Buffer.from(jwk.x ?? '', 'base64url'), Buffer.from(jwk.y ?? '', 'base64url')])
  return ecdh.getPublicKey().equals(point) ? undefined : 'an EC private key whose public point ("x", "y") is not the one its "d" gives; expected the key pair as generated'
}

/** RFC 7517 §4.3: the operations a key that decrypts ID tokens (or unwraps or derives their content keys) is for. */
const DECRYPTION_KEY_OPS: ReadonlySet<unknown> = new Set(['decrypt', 'unwrapKey', 'deriveKey', 'deriveBits'])

function fromJwk (jwk: unknown, where: string, file: string, out: KeyFileResult): void {
  if (!isRecord(jwk) || typeof jwk.kty !== 'string') {
    out.problems.push(`${where}expected a JWK object with "kty"`)
    return
  }
  if (jwk.use !== undefined && jwk.use !== 'enc') {
    out.problems.push(`${where}has "use": ${JSON.stringify(jwk.use)}; a decryption key has "use": "enc" or none (never reuse a signing key)`)
    return
  }
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.some((op) => DECRYPTION_KEY_OPS.has(op)))) {
    out.problems.push(`${where}has "key_ops": ${JSON.stringify(jwk.key_ops).slice(0, 80)}; a decryption key's key_ops, when given, include "decrypt", "unwrapKey", "deriveKey" or "deriveBits" (never reuse a signing key)`)
    return
  }
  const kid = typeof jwk.kid === 'string' ? jwk.kid : undefined
  const alg = typeof jwk.alg === 'string' ? jwk.alg : undefined
  let key: KeyObject
  try {
    if (jwk.kty === 'oct') {
      if (typeof jwk.k !== 'string') throw new Error('no "k"')
      const secret = decodeBase64url(jwk.k)
      if (secret === undefined) {
        out.problems.push(`${where}"k" is not base64url (RFC 7515 §2: the url-safe alphabet, no padding, no whitespace, canonical); expected the secret encoded as base64url`)
        return
      }
      if (secret.length < MIN_SECRET_BYTES) {
        out.problems.push(`${where}a secret of ${secret.length} bytes; expected at least ${MIN_SECRET_BYTES}`)
        return
      }
      key = createSecretKey(secret)
    } else {
      if (jwk.d === undefined) {
        out.problems.push(`${where}is a public key; decryption needs the private key (with "d")`)
        return
      }
      key = createPrivateKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' })
      const why = unfit(key)
      if (why !== undefined) {
        out.problems.push(`${where}${why}`)
        return
      }
    }
  } catch {
    out.problems.push(`${where}is not a valid ${String(jwk.kty)} private key`)
    return
  }
  out.keys.push(decryptionKey(file, kid, alg, key))
}

/** Parses one key file's text. */
export function parseDecryptionKeyFile (file: string, text: string): KeyFileResult {
  const out: KeyFileResult = { keys: [], problems: [] }
  const body = text.trim()
  if (body.startsWith('{')) {
    let doc: unknown
    try {
      doc = JSON.parse(body)
    } catch {
      out.problems.push('expected a PEM private key or a private JWK / JWK set (JSON); the file is not valid JSON')
      return out
    }
    if (isRecord(doc) && Array.isArray(doc.keys)) {
      if (doc.keys.length === 0) out.problems.push('the JWK set has no keys')
      doc.keys.forEach((jwk, i) => fromJwk(jwk, `keys[${i}]: `, file, out))
    } else {
      fromJwk(doc, '', file, out)
    }
    return out
  }
  if (!body.startsWith('-----BEGIN ')) {
    out.problems.push('expected a PEM private key ("-----BEGIN PRIVATE KEY-----") or a private JWK / JWK set (JSON)')
    return out
  }
  if (/-----BEGIN (PUBLIC KEY|RSA PUBLIC KEY|CERTIFICATE)-----/.test(body)) {
    out.problems.push('contains a public key or certificate; expected the private key alone (remove the CERTIFICATE or PUBLIC KEY block; a file of only a certificate or public key cannot decrypt)')
    return out
  }
  if (body.includes('ENCRYPTED')) {
    out.problems.push('is a passphrase-protected PEM key; expected an unencrypted one (protect the file instead)')
    return out
  }
  // createPrivateKey would read the first key only: the others would be silently ignored. Other blocks (the
  // EC PARAMETERS that `openssl ecparam -genkey` writes before a SEC1 key) are not keys.
  const blocks = body.match(/-----BEGIN (?:RSA |EC |DSA )?PRIVATE KEY-----/g)?.length ?? 0
  if (blocks > 1) {
    out.problems.push(`holds ${blocks} private keys; expected exactly one per file (list each key's file in decryptionKeys, or use a JWK set)`)
    return out
  }
  let key: KeyObject
  try {
    key = createPrivateKey(body)
  } catch {
    out.problems.push('is not a valid PEM private key')
    return out
  }
  const why = unfit(key)
  if (why !== undefined) out.problems.push(why)
  else out.keys.push(decryptionKey(file, undefined, undefined, key))
  return out
}
