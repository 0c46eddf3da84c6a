/**
 * Encrypted ID tokens (compact JWE, RFC 7516) are decrypted here with jose's compactDecrypt (RSA1_5, which
 * jose 6 does not implement, with src/core/jwe-rsa1-5.ts), under each issuer's explicit algorithm policy,
 * with that issuer's private keys. What comes out is only plaintext: the
 * caller must still find a signed ID token inside and verify it exactly like an unencrypted one.
 *
 * Every failure is the same VerificationError (token_decryption_failed): which step failed (header, policy,
 * key, tag) is written to the debug log for operators, never told to the caller.
 */
import { compactDecrypt } from 'jose'
import type { DecryptionConfig, DecryptionKey, IssuerConfig } from '../config/types.js'
import { VerificationError } from '../errors.js'
import { decodeBase64url } from './base64url.js'
import { decryptRsa15 } from './jwe-rsa1-5.js'
import type { Logger } from './logger.js'

/** A token may make us try at most this many keys: decryption costs CPU an attacker does not pay. */
export const MAX_DECRYPTION_ATTEMPTS = 4

export interface JweHeader {
  alg: string
  enc: string
  kid: string | undefined
  zip: unknown
  cty: unknown
  /** ECDH-ES: the sender's ephemeral public key; only keys on its curve are tried. */
  epkCurve: string | undefined
}

export interface Decrypted {
  /** The decrypted content, as UTF-8 text. */
  plaintext: string
  header: JweHeader
  /** The key that decrypted it: the inner token's issuer must have it too. */
  key: DecryptionKey
}

interface Candidate {
  key: DecryptionKey
  policy: DecryptionConfig
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Whether an issuer's policy accepts a header: alg, enc and compression. */
export function policyAllows (policy: DecryptionConfig, header: JweHeader): boolean {
  return (policy.keyManagementAlgorithms as readonly string[]).includes(header.alg) &&
    (policy.contentEncryptionAlgorithms as readonly string[]).includes(header.enc) &&
    (header.zip === undefined || policy.maxDecompressedBytes > 0)
}

const CURVES: Readonly<Record<string, string>> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' }

/** Whether a key can serve the header at all: type, curve of the ephemeral key, and the JWK's own alg when pinned. */
function keyFits (key: DecryptionKey, header: JweHeader): boolean {
  const { alg } = header
  if (key.alg !== undefined && key.alg !== alg) return false
  if (key.key.type === 'secret') return alg === 'dir' || alg.startsWith('PBES2-')
  const type = key.key.asymmetricKeyType
  if (type === 'rsa') return alg.startsWith('RSA-OAEP') || alg === 'RSA1_5'
  if (!alg.startsWith('ECDH-ES')) return false
  const curve = type === 'x25519' ? 'X25519' : CURVES[key.key.asymmetricKeyDetails?.namedCurve ?? '']
  return curve !== undefined && curve === header.epkCurve
}

export class TokenDecryptor {
  private readonly candidates: Candidate[] = []
  private readonly logger: Logger

  constructor (issuers: readonly IssuerConfig[], logger: Logger) {
    this.logger = logger
    for (const issuer of issuers) {
      for (const key of issuer.decryption?.keys ?? []) this.candidates.push({ key, policy: issuer.decryption as DecryptionConfig })
    }
  }

  /** Whether any issuer can decrypt tokens; without, a JWE is token_encrypted. */
  get enabled (): boolean {
    return this.candidates.length > 0
  }

  async decrypt (token: string): Promise<Decrypted> {
    const header = this.header(token)
    const tried = new Set<string>()
    // Keys that name the token's kid first; keys without a kid may match any; keys with another kid never.
    const fitting = this.candidates.filter((c) => policyAllows(c.policy, header) && keyFits(c.key, header) &&
      (header.kid === undefined || c.key.kid === undefined || c.key.kid === header.kid))
    fitting.sort((a, b) => Number(b.key.kid !== undefined) - Number(a.key.kid !== undefined))
    if (fitting.length === 0) throw this.fail('no configured key and policy accepts the token\'s alg, enc, kid and zip')
    let lastError: unknown
    for (const { key, policy } of fitting) {
      if (tried.has(key.fingerprint)) continue
      if (tried.size >= MAX_DECRYPTION_ATTEMPTS) break
      tried.add(key.fingerprint)
      try {
        const content = header.alg === 'RSA1_5'
          ? decryptRsa15(token, key.key, header, policy.maxDecompressedBytes)
          : (await compactDecrypt(token, key.key, {
              keyManagementAlgorithms: [header.alg],
              contentEncryptionAlgorithms: [header.enc],
              maxPBES2Count: policy.maxPbes2Count,
              maxDecompressedLength: policy.maxDecompressedBytes
            })).plaintext
        let plaintext: string
        try {
          plaintext = utf8.decode(content)
        } catch {
          // Decrypted, so no oracle: but what is inside is not a token.
          throw new VerificationError('token_not_signed')
        }
        return { plaintext, header, key }
      } catch (err) {
        if (err instanceof VerificationError) throw err
        lastError = err
      }
    }
    throw this.fail((lastError as { code?: string } | undefined)?.code ?? 'no key decrypted the token')
  }

  /** Decodes the protected header strictly; what it says only selects keys, jose checks it again. */
  private header (token: string): JweHeader {
    const segment = token.slice(0, token.indexOf('.'))
    let value: unknown
    try {
      const bytes = decodeBase64url(segment)
      if (bytes === undefined) throw new Error('not canonical base64url')
      value = JSON.parse(utf8.decode(bytes))
    } catch {
      throw this.fail('the protected header is not base64url JSON')
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw this.fail('the protected header is not a JSON object')
    const h = value as Record<string, unknown>
    if (typeof h.alg !== 'string' || typeof h.enc !== 'string') throw this.fail('alg or enc is missing')
    if (h.kid !== undefined && typeof h.kid !== 'string') throw this.fail('kid is not a string')
    // Only extensions we understand may be critical, and we understand none.
    if (h.crit !== undefined) throw this.fail('crit is present')
    const epk = h.epk
    const epkCurve = typeof epk === 'object' && epk !== null && typeof (epk as Record<string, unknown>).crv === 'string' ? (epk as Record<string, string>).crv : undefined
    return { alg: h.alg, enc: h.enc, kid: h.kid, zip: h.zip, cty: h.cty, epkCurve }
  }

  private fail (reason: string): VerificationError {
    this.logger.debug({ reason }, 'an encrypted token could not be decrypted')
    return new VerificationError('token_decryption_failed')
  }
}
