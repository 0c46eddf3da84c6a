/**
 * JWE content decryption (RFC 7518 §5) with node:crypto, for the key management we do ourselves (RSA1_5,
 * src/core/jwe-rsa1-5.ts); jose does the rest. Every failure — a wrong key, an altered IV, ciphertext, tag or
 * header, an IV or tag of the wrong length — throws the same ContentDecryptionFailed, with nothing that says
 * which it was.
 */
import { createDecipheriv, createHmac, timingSafeEqual } from 'node:crypto'
import type { ContentEncryptionAlgorithm } from '../config/types.js'

/** Key, IV and tag sizes in bytes of each enc (RFC 7518 §5.2.3–5.2.5 and §5.3). */
interface ContentAlgorithm {
  mode: 'gcm' | 'cbc-hs'
  /** The CEK: for CBC-HS the MAC key and the AES key together. */
  keyBytes: number
  ivBytes: number
  tagBytes: number
  /** CBC-HS: the HMAC hash. */
  hash?: string
}

const CONTENT_ALGORITHMS: Readonly<Record<ContentEncryptionAlgorithm, ContentAlgorithm>> = {
  A128GCM: { mode: 'gcm', keyBytes: 16, ivBytes: 12, tagBytes: 16 },
  A192GCM: { mode: 'gcm', keyBytes: 24, ivBytes: 12, tagBytes: 16 },
  A256GCM: { mode: 'gcm', keyBytes: 32, ivBytes: 12, tagBytes: 16 },
  'A128CBC-HS256': { mode: 'cbc-hs', keyBytes: 32, ivBytes: 16, tagBytes: 16, hash: 'sha256' },
  'A192CBC-HS384': { mode: 'cbc-hs', keyBytes: 48, ivBytes: 16, tagBytes: 24, hash: 'sha384' },
  'A256CBC-HS512': { mode: 'cbc-hs', keyBytes: 64, ivBytes: 16, tagBytes: 32, hash: 'sha512' }
}

export class ContentDecryptionFailed extends Error {
  readonly code = 'ERR_JWE_DECRYPTION_FAILED'
  constructor () {
    super('the content could not be decrypted')
  }
}

/** The CEK length enc needs, in bytes; undefined for an enc we do not implement. */
export function contentKeyBytes (enc: string): number | undefined {
  return Object.hasOwn(CONTENT_ALGORITHMS, enc) ? CONTENT_ALGORITHMS[enc as ContentEncryptionAlgorithm].keyBytes : undefined
}

export interface ContentParts {
  /** The ASCII bytes of the protected header segment: the additional authenticated data. */
  aad: Buffer
  iv: Buffer
  ciphertext: Buffer
  tag: Buffer
}

/** Authenticates and decrypts the content; the plaintext is returned only when the tag is right. */
export function decryptContent (enc: string, cek: Buffer, parts: ContentParts): Buffer {
  if (!Object.hasOwn(CONTENT_ALGORITHMS, enc)) throw new ContentDecryptionFailed()
  const algorithm = CONTENT_ALGORITHMS[enc as ContentEncryptionAlgorithm]
  const { iv, tag } = parts
  if (cek.length !== algorithm.keyBytes || iv.length !== algorithm.ivBytes || tag.length !== algorithm.tagBytes) throw new ContentDecryptionFailed()
  try {
    return algorithm.mode === 'gcm' ? gcm(cek, parts) : cbcHmac(algorithm, cek, parts)
  } catch {
    // Bad tag, bad CBC padding (possible only with the right MAC key), or anything node:crypto refuses.
    throw new ContentDecryptionFailed()
  }
}

function gcm (cek: Buffer, { aad, iv, ciphertext, tag }: ContentParts): Buffer {
  const decipher = createDecipheriv(`aes-${cek.length * 8}-gcm` as 'aes-128-gcm', cek, iv, { authTagLength: 16 })
  decipher.setAAD(aad)
  decipher.setAuthTag(tag)
  // update() yields text before final() has checked the tag: it is kept only when final() does not throw.
  const head = decipher.update(ciphertext)
  return Buffer.concat([head, decipher.final()])
}

/** RFC 7518 §5.2.2.2: MAC key first, AES key second; the tag is checked before anything is decrypted. */
function cbcHmac (algorithm: ContentAlgorithm, cek: Buffer, { aad, iv, ciphertext, tag }: ContentParts): Buffer {
  const half = algorithm.keyBytes / 2
  const al = Buffer.alloc(8)
  al.writeBigUInt64BE(BigInt(aad.length) * 8n)
  const mac = createHmac(algorithm.hash as string, cek.subarray(0, half)).update(aad).update(iv).update(ciphertext).update(al).digest()
  // Equal lengths by construction (tagBytes was checked), as timingSafeEqual needs.
  if (!timingSafeEqual(mac.subarray(0, algorithm.tagBytes), tag)) throw new ContentDecryptionFailed()
  const decipher = createDecipheriv(`aes-${half * 8}-cbc` as 'aes-128-cbc', cek.subarray(half), iv)
  return Buffer.concat([decipher.update(ciphertext), decipher.final()])
}
