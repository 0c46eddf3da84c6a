// Mints ID tokens signed with the benchmark's keys: compact JWS built by hand and signed with node:crypto
// (async form: the signatures run on libuv's thread pool and so use every core while minting).
// Token sets are written as request bodies, one `{"token":"..."}` per line, so the load generator can send
// slices of one Buffer without building a string per request, and a set of a million tokens never has to
// be one JavaScript string.
import { randomBytes, randomUUID, sign } from 'node:crypto'
import { openSync, writeSync, closeSync } from 'node:fs'

const DIGEST = { RS256: 'sha256', ES256: 'sha256', EdDSA: null }
const b64u = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

function signAsync (alg, data, privateKey) {
  const key = alg === 'ES256' ? { key: privateKey, dsaEncoding: 'ieee-p1363' } : privateKey
  return new Promise((resolve, reject) => {
    sign(DIGEST[alg], data, key, (err, sig) => (err ? reject(err) : resolve(sig)))
  })
}

/** Claims of a typical ID token (~0.7 kB signed with ES256/EdDSA, ~1 kB with RS256), user number i. */
export function claimsFor ({ issuer, audience, i, now, ttlSeconds = 3600 }) {
  return {
    iss: issuer,
    sub: `user-${i}-${randomBytes(4).toString('hex')}`,
    aud: audience,
    exp: now + ttlSeconds,
    iat: now,
    auth_time: now - 60,
    nonce: randomBytes(12).toString('base64url'),
    jti: randomUUID(),
    azp: audience,
    at_hash: randomBytes(16).toString('base64url'),
    email: `user${i}@example.com`,
    email_verified: true,
    name: `Bench User ${i}`,
    given_name: 'Bench',
    family_name: `User ${i}`,
    locale: 'en'
  }
}

export async function signToken (key, header, claims) {
  const input = `${b64u(header)}.${b64u(claims)}`
  const sig = await signAsync(key.alg, Buffer.from(input), key.privateKey)
  return `${input}.${sig.toString('base64url')}`
}

/**
 * One token. variant: valid | bad-sig | expired | wrong-aud | wrong-iss.
 * keySet from generateKeySet(); returns the compact JWS.
 */
export async function mintToken (keySet, { alg, issuer, audience, variant = 'valid', i = 0 }) {
  const key = keySet[alg]
  const now = Math.floor(Date.now() / 1000)
  const claims = claimsFor({ issuer, audience, i, now })
  const header = { alg, typ: 'JWT', kid: key.kid }
  if (variant === 'expired') Object.assign(claims, { iat: now - 7200, auth_time: now - 7200, exp: now - 3600 })
  if (variant === 'wrong-aud') claims.aud = claims.azp = 'another-client'
  if (variant === 'wrong-iss') claims.iss = 'https://issuer.invalid'
  const token = await signToken(key, header, claims)
  if (variant !== 'bad-sig') return token
  // A well-formed token carrying the signature of different claims.
  const other = await signToken(key, header, { ...claims, sub: 'mallory' })
  return token.slice(0, token.lastIndexOf('.')) + other.slice(other.lastIndexOf('.'))
}

/**
 * Writes `count` distinct valid tokens (users start .. start+count-1) as JSON request bodies, one per line
 * (each `repeat` times in a row). Returns the number of bytes written.
 */
export async function mintBodiesFile (keySet, { alg, issuer, audience, count, start = 0, file, inFlight = 64, repeat = 1 }) {
  const key = keySet[alg]
  const header = { alg, typ: 'JWT', kid: key.kid }
  const now = Math.floor(Date.now() / 1000)
  const fd = openSync(file, 'w')
  let bytes = 0
  try {
    const CHUNK = 4096
    for (let s = 0; s < count; s += CHUNK) {
      const n = Math.min(CHUNK, count - s)
      const lines = new Array(n)
      let next = 0
      const lane = async () => {
        while (next < n) {
          const k = next++
          const token = await signToken(key, header, claimsFor({ issuer, audience, i: start + s + k, now }))
          lines[k] = `{"token":"${token}"}\n`.repeat(repeat)
        }
      }
      await Promise.all(Array.from({ length: Math.min(inFlight, n) }, lane))
      const buf = Buffer.from(lines.join(''))
      writeSync(fd, buf)
      bytes += buf.length
    }
  } finally {
    closeSync(fd)
  }
  return bytes
}
