/**
 * at_hash and c_hash (OIDC Core §3.1.3.6, §3.2.2.9, §3.3.2.11): base64url of the left half of the hash of the
 * access token's (or the authorization code's) ASCII octets, the hash being the one of the ID token's signing
 * algorithm.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { Algorithm } from '../config/types.js'

function hashFor (alg: Algorithm, crv: string | undefined): { name: string, bytes: number } {
  if (alg.endsWith('384')) return { name: 'sha384', bytes: 48 }
  if (alg.endsWith('512')) return { name: 'sha512', bytes: 64 }
  // EdDSA: SHA-512 for Ed25519 and SHAKE256 (114 bytes) for Ed448, as OpenID Foundation implementations do.
  if (alg === 'EdDSA' || alg === 'Ed25519') return crv === 'Ed448' ? { name: 'shake256', bytes: 114 } : { name: 'sha512', bytes: 64 }
  return { name: 'sha256', bytes: 32 }
}

export function computeAtHash (accessToken: string, alg: Algorithm, crv?: string): string {
  const { name, bytes } = hashFor(alg, crv)
  const digest = name === 'shake256'
    ? createHash(name, { outputLength: bytes }).update(accessToken, 'ascii').digest()
    : createHash(name).update(accessToken, 'ascii').digest()
  return digest.subarray(0, bytes / 2).toString('base64url')
}

/** An access token's or a code's characters (RFC 6749 Appendix A.11, A.12, VSCHAR): printable ASCII, each one octet. */
const VSCHARS = /^[\x20-\x7e]*$/

/** Whether `hash` (an at_hash or c_hash claim) is the left-half hash of `value` (the access token, the code). */
export function atHashMatches (hash: string, value: string, alg: Algorithm, crv?: string): boolean {
  // Any other character has no single octet: hashing it would drop its high bits, so that another string
  // ("šbc" for "abc") would match the hash of a real token.
  if (!VSCHARS.test(value)) return false
  const expected = Buffer.from(computeAtHash(value, alg, crv))
  const actual = Buffer.from(hash)
  return expected.length === actual.length && timingSafeEqual(expected, actual)
}
