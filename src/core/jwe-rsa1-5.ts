/**
 * RSA1_5 key management (RSAES-PKCS1-v1_5, RFC 7518 §4.2) for encrypted ID tokens, for issuers that list it
 * explicitly. jose 6 does not implement it and Node.js refuses PKCS#1 v1.5 decryption (CVE-2023-46809), so the
 * RSA operation here is the raw one (RSA_NO_PADDING) and the padding is removed below.
 *
 * Against Bleichenbacher's padding oracle (RFC 7516 §11.5, RFC 3218 §2.3.2): a block that is not valid
 * padding, or whose message is not exactly the CEK length `enc` needs, is replaced by a random CEK of that
 * length and decryption carries on. Such a token then fails where any altered token fails, at the content
 * tag, with the same error after the same work; no branch depends on the decrypted block, and nothing (not
 * even the debug log) says whether the padding was right.
 *
 * Cost per tried key: one RSA private-key operation (keys of 2048 bits or more, by configuration), one
 * content decryption of a token no larger than server.maxTokenBytes, and, when allowed, one bounded inflate.
 */
import { constants, privateDecrypt, randomBytes, type KeyObject } from 'node:crypto'
import { inflateRawSync } from 'node:zlib'
import { decodeBase64url } from './base64url.js'
import { contentKeyBytes, decryptContent } from './jwe-content.js'

/** RFC 8017 §7.2.2: the padding string PS is at least eight bytes. */
const MIN_PADDING_BYTES = 8

/** A failure of the token's structure or policy: public facts, never the padding. */
export class Rsa15Failure extends Error {
  constructor (readonly code: string, reason: string) {
    super(reason)
  }
}

export interface Rsa15Header {
  enc: string
  zip: unknown
}

/** Decodes a segment, refusing padding, foreign characters and a second spelling of the same bytes. */
function segmentBytes (segment: string): Buffer {
  const bytes = decodeBase64url(segment)
  if (bytes === undefined) throw new Rsa15Failure('ERR_JWE_INVALID', 'a segment is not canonical base64url')
  return bytes
}

// Branch-free helpers on small non-negative integers (below 2^30): 1 or 0, never a comparison the JIT can branch on.
const isZero = (x: number): number => ((x | -x) >>> 31) ^ 1
const isEqual = (a: number, b: number): number => isZero(a ^ b)
const isAtLeast = (a: number, b: number): number => ((a - b) >>> 31) ^ 1
const select = (bit: number, a: number, b: number): number => b ^ ((a ^ b) & -bit)

/**
 * EME-PKCS1-v1_5 decoding (RFC 8017 §7.2.2 step 3) of the block `em` = 0x00 || 0x02 || PS || 0x00 || M, where M
 * must be exactly `length` bytes: M when it is, else `substitute`. Every byte is read and the same operations
 * run whatever the block holds; the result is chosen with a mask, not a branch.
 */
export function unpadOrSubstitute (em: Uint8Array, length: number, substitute: Uint8Array): Buffer {
  if (substitute.length !== length) throw new RangeError('the substitute must be as long as the message')
  const k = em.length
  // Depends on sizes only (the key's and enc's): a block too small for any valid padding of this length.
  if (k < length + 3 + MIN_PADDING_BYTES) return Buffer.from(substitute)
  const out = Buffer.alloc(length)
  let good = isZero(em[0] as number) & isEqual(em[1] as number, 2)
  let looking = 1
  let separator = 0
  for (let i = 2; i < k; i++) {
    const zero = isZero(em[i] as number)
    separator = select(looking & zero, i, separator)
    looking &= zero ^ 1
  }
  good &= looking ^ 1
  good &= isAtLeast(separator, 2 + MIN_PADDING_BYTES)
  good &= isEqual(k - separator - 1, length)
  const keep = -good & 0xff
  const start = k - length
  for (let j = 0; j < length; j++) out[j] = ((em[start + j] as number) & keep) | ((substitute[j] as number) & ~keep & 0xff)
  return out
}

/**
 * Decrypts a compact JWE whose protected header says alg RSA1_5 with an RSA private key. Throws Rsa15Failure
 * (structure, zip) or ContentDecryptionFailed (anything about the key, the padding or the content).
 */
export function decryptRsa15 (token: string, key: KeyObject, header: Rsa15Header, maxDecompressedBytes: number): Buffer {
  const segments = token.split('.')
  if (segments.length !== 5) throw new Rsa15Failure('ERR_JWE_INVALID', 'not five segments')
  const [protectedSegment, keySegment, ivSegment, ciphertextSegment, tagSegment] = segments as [string, string, string, string, string]
  if (protectedSegment === '' || keySegment === '') throw new Rsa15Failure('ERR_JWE_INVALID', 'the protected header or the encrypted key is empty')
  segmentBytes(protectedSegment)
  const encryptedKey = segmentBytes(keySegment)
  const iv = segmentBytes(ivSegment)
  const ciphertext = segmentBytes(ciphertextSegment)
  const tag = segmentBytes(tagSegment)
  const cekBytes = contentKeyBytes(header.enc)
  if (cekBytes === undefined) throw new Rsa15Failure('ERR_JOSE_NOT_SUPPORTED', 'enc is not supported')
  // The same zip rules as jose's: only DEF, only when the policy allows it.
  if (header.zip !== undefined && (header.zip !== 'DEF' || maxDecompressedBytes <= 0)) throw new Rsa15Failure('ERR_JOSE_NOT_SUPPORTED', 'zip is not allowed')

  // Drawn before the RSA operation, whatever its outcome, so that both outcomes do the same work.
  const substitute = randomBytes(cekBytes)
  const modulusBytes = Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8)
  let em: Uint8Array = new Uint8Array(modulusBytes)
  // A length other than the modulus's, or a value not below the modulus, is a fact about the input alone.
  if (encryptedKey.length === modulusBytes) {
    try {
      em = privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, encryptedKey)
    } catch {
      // The all-zero block is not valid padding: the substitute is used.
    }
  }
  const cek = unpadOrSubstitute(em, cekBytes, substitute)
  const plaintext = decryptContent(header.enc, cek, { aad: Buffer.from(protectedSegment, 'latin1'), iv, ciphertext, tag })
  if (header.zip === undefined) return plaintext
  try {
    return inflateRawSync(plaintext, { maxOutputLength: maxDecompressedBytes })
  } catch {
    throw new Rsa15Failure('ERR_JWE_INVALID', 'the content does not inflate within the limit')
  }
}
