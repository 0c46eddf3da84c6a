// The benchmark's signing keys: one per algorithm (RS256 2048-bit, ES256 P-256, EdDSA Ed25519), generated
// per run with node:crypto. The kid is the RFC 7638 thumbprint, as many IdPs do; the IdP stand-in serves
// the public halves, the minter signs with the private ones.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto'

export const ALGS = ['ES256', 'RS256', 'EdDSA']

const GENERATE = {
  RS256: ['rsa', { modulusLength: 2048 }],
  ES256: ['ec', { namedCurve: 'P-256' }],
  EdDSA: ['ed25519', {}]
}

// RFC 7638 §3.2: only the required members, in lexicographic order.
const THUMBPRINT_MEMBERS = { RSA: ['e', 'kty', 'n'], EC: ['crv', 'kty', 'x', 'y'], OKP: ['crv', 'kty', 'x'] }

function thumbprint (jwk) {
  const members = THUMBPRINT_MEMBERS[jwk.kty]
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m]])))
  return createHash('sha256').update(canonical).digest('base64url')
}

/** { [alg]: { alg, kid, privateKey: KeyObject, publicJwk } } */
export function generateKeySet (algs = ALGS) {
  const set = {}
  for (const alg of algs) {
    const [type, options] = GENERATE[alg]
    // As PEM, then re-imported: Node 20 can deadlock exporting a KeyObject straight from generateKeyPairSync
    // (a GC during the export finalizes the generation job, which waits for the export's lock).
    const pem = generateKeyPairSync(type, { ...options, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } })
    const privateKey = createPrivateKey(pem.privateKey)
    const jwk = createPublicKey(privateKey).export({ format: 'jwk' })
    const kid = thumbprint(jwk)
    set[alg] = { alg, kid, privateKey, publicJwk: { ...jwk, kid, alg, use: 'sig' } }
  }
  return set
}

/** The JWKS document the IdP serves. */
export function publicJwks (keySet) {
  return { keys: Object.values(keySet).map((k) => k.publicJwk) }
}
