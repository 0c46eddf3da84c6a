/**
 * Encryption keys and JWE minting for the encrypted-ID-token tests: real keys, written to key files the way an
 * operator would (PEM or JWK), and jose's CompactEncrypt for every algorithm, including the refused ones.
 */
import { CompactEncrypt } from 'jose'
import { randomBytes, type KeyObject } from 'node:crypto'
import { generatePair } from './tokens.js'

export interface EncryptionKey {
  /** What encrypts to it: the public key (or the secret). */
  encryptTo: KeyObject | Uint8Array
  /** The file content an operator would configure. */
  file: string
  kid?: string
}

function pem (privateKey: KeyObject, type: 'pkcs8' | 'pkcs1' | 'sec1' = 'pkcs8'): string {
  return privateKey.export({ format: 'pem', type } as never) as string
}

export function rsaKey (opts: { format?: 'pem' | 'pkcs1' | 'jwk', kid?: string, bits?: number } = {}): EncryptionKey {
  const { privateKey, publicKey } = generatePair('rsa', { modulusLength: opts.bits ?? 2048 })
  const file = opts.format === 'jwk'
    ? JSON.stringify({ ...privateKey.export({ format: 'jwk' }), use: 'enc', ...(opts.kid !== undefined ? { kid: opts.kid } : {}) })
    : pem(privateKey, opts.format === 'pkcs1' ? 'pkcs1' : 'pkcs8')
  return { encryptTo: publicKey, file, ...(opts.kid !== undefined ? { kid: opts.kid } : {}) }
}

export function ecKey (curve: 'P-256' | 'P-384' | 'P-521' | 'X25519', opts: { format?: 'pem' | 'sec1' | 'jwk', kid?: string } = {}): EncryptionKey {
  const { privateKey, publicKey } = curve === 'X25519'
    ? generatePair('x25519')
    : generatePair('ec', { namedCurve: curve })
  const file = opts.format === 'jwk'
    ? JSON.stringify({ ...privateKey.export({ format: 'jwk' }), ...(opts.kid !== undefined ? { kid: opts.kid } : {}) })
    : pem(privateKey, opts.format === 'sec1' ? 'sec1' : 'pkcs8')
  return { encryptTo: publicKey, file, ...(opts.kid !== undefined ? { kid: opts.kid } : {}) }
}

/** A secret for dir (its length must be the content key's) or PBES2 (a password). */
export function secretKey (bytes: number, kid?: string): EncryptionKey {
  const secret = randomBytes(bytes)
  return { encryptTo: new Uint8Array(secret), file: JSON.stringify({ kty: 'oct', k: secret.toString('base64url'), ...(kid !== undefined ? { kid } : {}) }), ...(kid !== undefined ? { kid } : {}) }
}

export function publicJwkOf (key: EncryptionKey): Record<string, unknown> {
  return (key.encryptTo as KeyObject).export({ format: 'jwk' }) as Record<string, unknown>
}

export interface EncryptOptions {
  alg: string
  enc: string
  kid?: string
  /** Default "JWT"; null leaves it out. */
  cty?: string | null
  zip?: 'DEF'
  p2c?: number
  header?: Record<string, unknown>
}

/** Encrypts any content (a signed token, or something that is not one) to a key. */
export async function encrypt (content: string, key: EncryptionKey, opts: EncryptOptions): Promise<string> {
  const header: Record<string, unknown> = { alg: opts.alg, enc: opts.enc, ...opts.header }
  if (opts.cty !== null) header.cty = opts.cty ?? 'JWT'
  const kid = opts.kid ?? key.kid
  if (kid !== undefined) header.kid = kid
  if (opts.zip !== undefined) header.zip = opts.zip
  const jwe = new CompactEncrypt(new TextEncoder().encode(content)).setProtectedHeader(header as never)
  if (opts.p2c !== undefined) jwe.setKeyManagementParameters({ p2c: opts.p2c })
  return await jwe.encrypt(key.encryptTo)
}

/** A five-segment token with the given header and random parts: what an attacker can always send. */
export function fakeJwe (header: Record<string, unknown>): string {
  const part = (n: number): string => randomBytes(n).toString('base64url')
  return [Buffer.from(JSON.stringify(header)).toString('base64url'), part(256), part(12), part(200), part(16)].join('.')
}
