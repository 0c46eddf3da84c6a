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
import { CONTENT_ENCRYPTION_ALGORITHMS, KEY_MANAGEMENT_ALGORITHMS, type DecryptionConfig, type DecryptionKey, type IssuerConfig } from '../config/types.js'
import { VerificationError } from '../errors.js'
import { isBase64url } from './base64url.js'
import { contentKeyBytes } from './jwe-content.js'
import { decryptRsa15 } from './jwe-rsa1-5.js'
import { hasDuplicateMembers } from './json-members.js'
import type { Logger } from './logger.js'

/**
 * A token may make us try at most this many keys: decryption costs CPU an attacker does not pay. The
 * configuration refuses keys that would let a token fit more (src/config/provider-options.ts), so that no
 * configured key is out of reach; the cap here only guards that invariant.
 */
export const MAX_DECRYPTION_ATTEMPTS = 4

/**
 * Tokens whose key management costs a private-key operation or a password derivation (RSA-OAEP*, RSA1_5, ECDH-ES*,
 * PBES2-*: every algorithm but dir) decrypting at once. Each costs up to MAX_DECRYPTION_ATTEMPTS such operations
 * before any key is proven: RSA-OAEP, ECDH-ES and PBES2 (the sender's p2c PBKDF2 iterations) in libuv's thread
 * pool, where the event loop's load shedding cannot see them, and RSA1_5's raw RSA operation on the event loop.
 * So that forged ones cannot hold the pool's threads (DNS lookups and file reads wait for them too), nor a
 * /verify/batch of them the event loop for seconds, others wait their turn: at most MAX_KEY_DECRYPTIONS_WAITING
 * of them (a /verify/batch of 100 fits), each at most KEY_DECRYPTION_WAIT_MS; past either, such a token is 503
 * overloaded.
 */
export const MAX_KEY_DECRYPTIONS_IN_FLIGHT = 2
export const MAX_KEY_DECRYPTIONS_WAITING = 128
export const KEY_DECRYPTION_WAIT_MS = 2_000

/** Whether a token's key management algorithm costs a private-key operation or a password derivation (not dir). */
const costsKeyWork = (alg: string): boolean => alg !== 'dir'

export interface JweHeader {
  alg: string
  enc: string
  kid: string | undefined
  zip: unknown
  cty: unknown
  /** ECDH-ES: the sender's ephemeral public key; only keys on its curve are tried. */
  epkCurve: string | undefined
  /** PBES2: the iteration count the sender chose (jose checks it against maxPbes2Count). */
  p2c?: number | undefined
}

export interface Decrypted {
  /** The decrypted content, as UTF-8 text. */
  plaintext: string
  header: JweHeader
  /** The key that decrypted it: the inner token's issuer must have it too. */
  key: DecryptionKey
}

/** A key and the policy of the issuer it belongs to. */
export interface Candidate {
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

/**
 * Whether a key can serve the header at all: type, curve of the ephemeral key, the JWK's own alg when pinned,
 * and for dir (the secret is the content key, RFC 7518 §4.5) the key length enc needs.
 */
export function keyFits (key: DecryptionKey, header: JweHeader): boolean {
  const { alg } = header
  if (key.alg !== undefined && key.alg !== alg) return false
  if (key.key.type === 'secret') return alg === 'dir' ? key.key.symmetricKeySize === contentKeyBytes(header.enc) : alg.startsWith('PBES2-')
  const type = key.key.asymmetricKeyType
  if (type === 'rsa') return alg.startsWith('RSA-OAEP') || alg === 'RSA1_5'
  if (!alg.startsWith('ECDH-ES')) return false
  const curve = type === 'x25519' ? 'X25519' : CURVES[key.key.asymmetricKeyDetails?.namedCurve ?? '']
  return curve !== undefined && curve === header.epkCurve
}

/**
 * The keys a token makes us try, in configuration order, each key once: those whose kid is the header's when
 * the header names a configured key, else every key; of these, the ones that fit the header under their
 * issuer's policy.
 */
export function selectCandidates (candidates: readonly Candidate[], header: JweHeader): Candidate[] {
  const named = header.kid === undefined ? [] : candidates.filter((c) => c.key.kid === header.kid)
  const seen = new Set<string>()
  const out: Candidate[] = []
  for (const c of named.length > 0 ? named : candidates) {
    if (seen.has(c.key.fingerprint) || !policyAllows(c.policy, header) || !keyFits(c.key, header)) continue
    seen.add(c.key.fingerprint)
    out.push(c)
  }
  return out
}

/** Characters of a header's text (alg, enc, kid, curve: the sender's) kept in the debug log. */
const MAX_LOGGED_HEADER_TEXT = 64

/** The ephemeral key curves of ECDH-ES* headers: each selects other keys. */
const EPK_CURVES = ['P-256', 'P-384', 'P-521', 'X25519'] as const

/**
 * Where a token without a kid (or with a kid no key has) would fit more keys than MAX_DECRYPTION_ATTEMPTS:
 * one entry per set of such keys, with the headers (alg, enc and for ECDH-ES the curve) that select it.
 */
export function crowdedHeaders (candidates: readonly Candidate[]): Array<{ keys: Candidate[], headers: JweHeader[] }> {
  // No header can select more keys than there are (the usual case: this loop then never runs at start-up).
  if (candidates.length <= MAX_DECRYPTION_ATTEMPTS) return []
  const crowded = new Map<string, { keys: Candidate[], headers: JweHeader[] }>()
  for (const alg of KEY_MANAGEMENT_ALGORITHMS) {
    for (const epkCurve of alg.startsWith('ECDH-ES') ? EPK_CURVES : [undefined]) {
      for (const enc of CONTENT_ENCRYPTION_ALGORITHMS) {
        // zip only narrows the policies that allow a header; kid is the one a token need not send.
        const header: JweHeader = { alg, enc, kid: undefined, zip: undefined, cty: undefined, epkCurve }
        const keys = selectCandidates(candidates, header)
        if (keys.length <= MAX_DECRYPTION_ATTEMPTS) continue
        const id = keys.map((c) => c.key.fingerprint).join(' ')
        const entry = crowded.get(id) ?? { keys, headers: [] }
        entry.headers.push(header)
        crowded.set(id, entry)
      }
    }
  }
  return [...crowded.values()]
}

export class TokenDecryptor {
  private readonly candidates: Candidate[] = []
  private readonly logger: Logger
  private inFlight = 0
  /** Waiting decryptions, first come first served: each is handed a slot when one is given back. */
  private readonly waiting: Array<() => void> = []

  /** How long a token waits for a decryption slot (KEY_DECRYPTION_WAIT_MS; tests shorten it). */
  private readonly slotWaitMs: number

  constructor (issuers: readonly IssuerConfig[], logger: Logger, options: { slotWaitMs?: number } = {}) {
    this.logger = logger
    this.slotWaitMs = options.slotWaitMs ?? KEY_DECRYPTION_WAIT_MS
    for (const issuer of issuers) {
      for (const key of issuer.decryption?.keys ?? []) this.candidates.push({ key, policy: issuer.decryption as DecryptionConfig })
    }
  }

  /** Whether any issuer can decrypt tokens; without, a JWE is token_encrypted. */
  get enabled (): boolean {
    return this.candidates.length > 0
  }

  async decrypt (token: string): Promise<Decrypted> {
    // Every segment strictly, before anything else: jose's decoder is lenient (padding, whitespace, spare bits),
    // and each respelling of a token would be another valid token, missing the verified-token cache. Checked,
    // not decoded: jose decodes them itself.
    const segments = token.split('.')
    if (segments.length !== 5 || !segments.every(isBase64url)) {
      throw this.fail('a segment is not canonical base64url, or there are not five')
    }
    const header = this.header(segments[0] as string)
    const fitting = selectCandidates(this.candidates, header)
    if (fitting.length === 0) throw this.fail('no configured key and policy accepts the token\'s alg, enc, kid and zip', header)
    if (!costsKeyWork(header.alg)) return await this.tryKeys(token, header, fitting)
    await this.slot(header.alg)
    try {
      return await this.tryKeys(token, header, fitting)
    } finally {
      // The slot goes to the first waiting decryption, or back to the pool.
      const next = this.waiting.shift()
      if (next !== undefined) next()
      else this.inFlight--
    }
  }

  /** Takes one of the MAX_KEY_DECRYPTIONS_IN_FLIGHT slots, waiting for one within the bounds; else 503 overloaded. */
  private async slot (alg: string): Promise<void> {
    if (this.inFlight < MAX_KEY_DECRYPTIONS_IN_FLIGHT) {
      this.inFlight++
      return
    }
    const overloaded = (): VerificationError => {
      this.logger.debug({ alg, inFlight: this.inFlight, waiting: this.waiting.length }, 'an encrypted token refused: too many are being decrypted or waiting')
      return new VerificationError('overloaded', { retryAfterSeconds: 1 })
    }
    if (this.waiting.length >= MAX_KEY_DECRYPTIONS_WAITING) throw overloaded()
    await new Promise<void>((resolve, reject) => {
      const handOver = (): void => {
        clearTimeout(timer)
        resolve()
      }
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(handOver), 1)
        reject(overloaded())
      }, this.slotWaitMs)
      timer.unref()
      this.waiting.push(handOver)
    })
  }

  /**
   * Tries the fitting keys in order, at most MAX_DECRYPTION_ATTEMPTS; for PBES2, only those whose issuer's
   * maxPbes2Count still fits the token's p2c, counted over the keys tried so far: that is the iteration budget of
   * one token, whatever number of secrets it may fit (at most the largest maxPbes2Count of them).
   */
  private async tryKeys (token: string, header: JweHeader, fitting: readonly Candidate[]): Promise<Decrypted> {
    let lastError: unknown
    let iterations = 0
    for (const { key, policy } of fitting.slice(0, MAX_DECRYPTION_ATTEMPTS)) {
      if (header.p2c !== undefined) {
        // A key whose issuer's budget this attempt would pass is skipped, not charged: another issuer's key
        // further on may allow more (each issuer has its own maxPbes2Count).
        if (iterations + header.p2c > policy.maxPbes2Count) {
          lastError ??= { code: `p2c ${header.p2c} is more than maxPbes2Count (${policy.maxPbes2Count}) allows a token` }
          continue
        }
        iterations += header.p2c
      }
      try {
        // RSA1_5's RSA operation runs on the event loop (Node has no asynchronous raw RSA): each waits for the
        // loop's turn, whatever the padding, so that the requests waiting meanwhile are served between them.
        if (header.alg === 'RSA1_5') await new Promise<void>((resolve) => { setImmediate(resolve) })
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
    // jose's code and message say which step failed (never a secret); RSA1_5's padding is never one of them.
    const failure = lastError as { code?: string, message?: string } | undefined
    const reason = failure?.code === undefined ? 'no key decrypted the token' : `${failure.code}${failure.message === undefined || failure.message === '' ? '' : ` (${failure.message})`}`
    const keysTried = fitting.slice(0, MAX_DECRYPTION_ATTEMPTS).map((c) => c.key.kid ?? c.key.file)
    if (fitting.length > MAX_DECRYPTION_ATTEMPTS) {
      // The configuration refuses this; should it happen, the skipped keys must not look like wrong keys.
      throw this.fail(`candidates cut by the cap: ${fitting.length} keys fit, only ${MAX_DECRYPTION_ATTEMPTS} were tried (${reason})`, header, keysTried)
    }
    throw this.fail(reason, header, keysTried)
  }

  /** Decodes the protected header (already checked to be strict base64url); what it says only selects keys, jose checks it again. */
  private header (segment: string): JweHeader {
    let value: unknown
    let text: string
    try {
      text = utf8.decode(Buffer.from(segment, 'base64url'))
      value = JSON.parse(text)
    } catch {
      throw this.fail('the protected header is not base64url JSON')
    }
    if (hasDuplicateMembers(text, value)) throw this.fail('the protected header names a member twice')
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw this.fail('the protected header is not a JSON object')
    const h = value as Record<string, unknown>
    if (typeof h.alg !== 'string' || typeof h.enc !== 'string') throw this.fail('alg or enc is missing')
    if (h.kid !== undefined && typeof h.kid !== 'string') throw this.fail('kid is not a string')
    // Only extensions we understand may be critical, and we understand none.
    if (h.crit !== undefined) throw this.fail('crit is present')
    const epk = h.epk
    const epkCurve = typeof epk === 'object' && epk !== null && typeof (epk as Record<string, unknown>).crv === 'string' ? (epk as Record<string, string>).crv : undefined
    const p2c = h.alg.startsWith('PBES2-') && typeof h.p2c === 'number' && Number.isSafeInteger(h.p2c) && h.p2c > 0 ? h.p2c : undefined
    return { alg: h.alg, enc: h.enc, kid: h.kid, zip: h.zip, cty: h.cty, epkCurve, p2c }
  }

  /**
   * The one answer of every decryption failure; the debug log says why, with what the header asked for (alg, enc,
   * kid cut to MAX_LOGGED_HEADER_TEXT characters, the ephemeral key's curve) and the keys tried (kid, or file).
   */
  private fail (reason: string, header?: JweHeader, keysTried?: string[]): VerificationError {
    const cut = (text: string | undefined): string | undefined => text === undefined || text.length <= MAX_LOGGED_HEADER_TEXT ? text : `${text.slice(0, MAX_LOGGED_HEADER_TEXT)}…`
    const asked = header === undefined ? {} : { alg: cut(header.alg), enc: cut(header.enc), kid: cut(header.kid), epkCurve: cut(header.epkCurve) }
    this.logger.debug({ reason, ...asked, ...(keysTried === undefined ? {} : { keysTried }) }, 'an encrypted token could not be decrypted')
    return new VerificationError('token_decryption_failed')
  }
}
