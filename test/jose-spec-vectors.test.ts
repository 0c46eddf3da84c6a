/**
 * The JOSE specifications' own examples through the signature step of the verification core: each published
 * public JWK imported as the service imports a JWKS key (src/core/key-set.ts: its checks, kid and alg
 * matching), each published JWS parsed by the strict parser when its payload is a JSON object
 * (src/core/compact-jws.ts) and its signature checked as the Verifier checks it (prepareAsymmetric, then both
 * places a check can run: src/core/signature.ts, src/core/signature-checks.ts). HS256 goes through verifyHmac
 * with the example's key bytes (the service derives its HMAC key from the client secret's UTF-8, OpenID
 * Connect Core §10.1, so a Verifier cannot be given those raw bytes).
 *
 * What this does not test: the Verifier end to end. The examples' payloads are not ID tokens (iss "joe", no
 * aud, a 2011 exp, or not JSON at all), so only the signature step is separable; the ID-token rules are
 * tested elsewhere on minted tokens.
 *
 * Each example must verify, and one flipped bit in its signature, its payload or its header must not. ECDSA
 * signatures whose r or s is shorter than the curve's order (leading zero bytes in the JWS's fixed-length
 * R || S, rewritten to minimal DER by src/core/ecdsa-der.ts) are generated on every curve and must verify.
 *
 * Sources: RFC 7515 Appendix A.1–A.4, RFC 7520 §4.1–4.3 (the ietf-jose/cookbook JSON files), RFC 8037 A.4.
 */
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import t, { type Test } from 'tap'
import type { AsymmetricAlgorithm, PublicJwk } from '../src/config/types.js'
import { parseCompactJws } from '../src/core/compact-jws.js'
import { KeySet } from '../src/core/key-set.js'
import { prepareAsymmetric, runCheck, verifyHmac } from '../src/core/signature.js'
import { createSignatureChecks, type SignatureCheckMode } from '../src/core/signature-checks.js'

/** RFC 7515 A.1–A.3's JWT claims set (with its CRLFs), base64url as published. */
const RFC7515_PAYLOAD = 'eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ'
/** RFC 7520 §4's payload (a Tolkien quote, not JSON). */
const RFC7520_PAYLOAD = 'SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4'
/** RFC 7520 §3.3's RSA key ("bilbo.baggins@hobbiton.example"), public part. */
const BILBO_RSA = {
  kty: 'RSA',
  kid: 'bilbo.baggins@hobbiton.example',
  use: 'sig',
  n: 'n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw',
  e: 'AQAB'
}

interface Vector {
  source: string
  alg: AsymmetricAlgorithm
  jwk: Record<string, unknown>
  jws: string
  /** The payload is a JSON object, so the strict parser must take the token as it is. */
  json: boolean
}

const VECTORS: Vector[] = [
  {
    source: 'RFC 7515 A.2 (RS256)',
    alg: 'RS256',
    jwk: {
      kty: 'RSA',
      n: 'ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ',
      e: 'AQAB'
    },
    jws: `eyJhbGciOiJSUzI1NiJ9.${RFC7515_PAYLOAD}.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw`,
    json: true
  },
  {
    source: 'RFC 7515 A.3 (ES256)',
    alg: 'ES256',
    jwk: { kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' },
    jws: `eyJhbGciOiJFUzI1NiJ9.${RFC7515_PAYLOAD}.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q`,
    json: true
  },
  {
    source: 'RFC 7515 A.4 (ES512)',
    alg: 'ES512',
    jwk: {
      kty: 'EC',
      crv: 'P-521',
      x: 'AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk',
      y: 'ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2'
    },
    jws: 'eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA.AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn',
    json: false
  },
  {
    source: 'RFC 7520 §4.1 (RS256)',
    alg: 'RS256',
    jwk: BILBO_RSA,
    jws: `eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9.${RFC7520_PAYLOAD}.MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg`,
    json: false
  },
  {
    source: 'RFC 7520 §4.2 (PS384)',
    alg: 'PS384',
    jwk: BILBO_RSA,
    jws: `eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9.${RFC7520_PAYLOAD}.cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2IpN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXUvdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRXe8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw`,
    json: false
  },
  {
    // r begins with a zero byte ("AE_R..."): 65 significant bytes in a 66-byte half.
    source: 'RFC 7520 §4.3 (ES512)',
    alg: 'ES512',
    jwk: {
      kty: 'EC',
      kid: 'bilbo.baggins@hobbiton.example',
      use: 'sig',
      crv: 'P-521',
      x: 'AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt',
      y: 'AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1'
    },
    jws: `eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9.${RFC7520_PAYLOAD}.AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvbu9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kvAD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2`,
    json: false
  },
  {
    source: 'RFC 8037 A.4 (EdDSA, Ed25519)',
    alg: 'EdDSA',
    jwk: { kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' },
    jws: 'eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg',
    json: false
  }
]

const MODES: SignatureCheckMode[] = ['thread-pool', 'event-loop']

/** A check as the Verifier makes it: prepared (an impossible signature is false at once), then run. */
async function checks (mode: SignatureCheckMode, alg: AsymmetricAlgorithm, key: KeyObject, signingInput: string, signature: Buffer): Promise<boolean> {
  const prepared = prepareAsymmetric(alg, key, Buffer.from(signingInput, 'latin1'), signature)
  return prepared === undefined ? false : await createSignatureChecks(mode).check(prepared)
}

/** A base64url segment with bit `bit` of its decoded byte `at` flipped, re-encoded. */
function flipSegment (segment: string, at: number, bit = 0): string {
  const bytes = Buffer.from(segment, 'base64url')
  bytes[at] = (bytes[at] as number) ^ (1 << bit)
  return bytes.toString('base64url')
}

function flipBuffer (bytes: Buffer, at: number, bit = 0): Buffer {
  const copy = Buffer.from(bytes)
  copy[at] = (copy[at] as number) ^ (1 << bit)
  return copy
}

/** The published key as the service would take it from a JWKS: exactly one usable key for the example's alg. */
function importedKey (t: Test, v: Vector): KeyObject {
  const keySet = new KeySet({ keys: [v.jwk as unknown as PublicJwk] })
  t.same(keySet.rejected, [], 'the published key is not refused')
  const kid = typeof v.jwk.kid === 'string' ? v.jwk.kid : undefined
  const candidates = keySet.candidates(v.alg, kid)
  t.equal(candidates.length, 1, 'and is the one candidate for its alg (and kid)')
  return (candidates[0] as { key: KeyObject }).key
}

for (const v of VECTORS) {
  t.test(v.source, async (t) => {
    const key = importedKey(t, v)
    const [header, payload, sig] = v.jws.split('.') as [string, string, string]
    const signature = Buffer.from(sig, 'base64url')
    if (v.json) {
      // A claims-set payload: the strict parser takes the published text as it is, and reads the same bytes.
      const parsed = parseCompactJws(v.jws, 1 << 20)
      t.equal(parsed.signingInput.toString('latin1'), `${header}.${payload}`)
      t.same(parsed.signature, signature)
      t.equal(parsed.header.alg, v.alg)
    }
    for (const mode of MODES) {
      t.equal(await checks(mode, v.alg, key, `${header}.${payload}`, signature), true, `${mode}: the published signature verifies`)
      for (const at of [0, signature.length >> 1, signature.length - 1]) {
        t.equal(await checks(mode, v.alg, key, `${header}.${payload}`, flipBuffer(signature, at)), false, `${mode}: signature bit flipped at byte ${at}`)
      }
      // The high bit of the first byte of each half too (R and S for ECDSA, the modulus' top byte for RSA).
      t.equal(await checks(mode, v.alg, key, `${header}.${payload}`, flipBuffer(signature, 0, 7)), false, `${mode}: signature high bit flipped`)
      t.equal(await checks(mode, v.alg, key, `${flipSegment(header, 3)}.${payload}`, signature), false, `${mode}: header bit flipped`)
      t.equal(await checks(mode, v.alg, key, `${header}.${flipSegment(payload, 0)}`, signature), false, `${mode}: payload bit flipped (first byte)`)
      const last = Buffer.from(payload, 'base64url').length - 1
      t.equal(await checks(mode, v.alg, key, `${header}.${flipSegment(payload, last, 6)}`, signature), false, `${mode}: payload bit flipped (last byte)`)
      t.equal(await checks(mode, v.alg, key, `${header}.${payload}`, signature.subarray(1)), false, `${mode}: one byte short`)
    }
  })
}

t.test('a vector is refused under the other algorithms its key could verify', async (t) => {
  // The RFC 7520 RSA key signs both RS256 and PS384 examples: neither verifies as the other, nor under the
  // other hash of the same family.
  const rs = VECTORS.find((v) => v.source.startsWith('RFC 7520 §4.1')) as Vector
  const ps = VECTORS.find((v) => v.source.startsWith('RFC 7520 §4.2')) as Vector
  const key = importedKey(t, rs)
  for (const [v, others] of [[rs, ['RS384', 'RS512', 'PS256', 'PS384', 'PS512']], [ps, ['PS256', 'PS512', 'RS256', 'RS384']]] as const) {
    const [header, payload, sig] = v.jws.split('.') as [string, string, string]
    for (const alg of others) {
      const prepared = prepareAsymmetric(alg, key, Buffer.from(`${header}.${payload}`), Buffer.from(sig, 'base64url'))
      t.equal(prepared !== undefined && runCheck(prepared), false, `${v.source} as ${alg}`)
    }
  }
})

t.test('RFC 7515 A.1 (HS256), with the example\'s key bytes', async (t) => {
  const key = Buffer.from('AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow', 'base64url')
  const header = 'eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9'
  const jws = `${header}.${RFC7515_PAYLOAD}.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk`
  const parsed = parseCompactJws(jws, 1 << 20)
  t.equal(parsed.header.alg, 'HS256')
  t.equal(verifyHmac('HS256', key, parsed.signingInput, parsed.signature), true, 'the published MAC verifies')
  for (const at of [0, 31]) t.equal(verifyHmac('HS256', key, parsed.signingInput, flipBuffer(parsed.signature, at)), false, `MAC bit flipped at byte ${at}`)
  t.equal(verifyHmac('HS256', key, Buffer.from(`${flipSegment(header, 3)}.${RFC7515_PAYLOAD}`), parsed.signature), false, 'header bit flipped')
  t.equal(verifyHmac('HS256', key, Buffer.from(`${header}.${flipSegment(RFC7515_PAYLOAD, 5)}`), parsed.signature), false, 'payload bit flipped')
  t.equal(verifyHmac('HS384', key, parsed.signingInput, parsed.signature), false, 'not an HS384 MAC')
  t.equal(verifyHmac('HS256', flipBuffer(key, 63), parsed.signingInput, parsed.signature), false, 'another key')
})

/**
 * ECDSA signatures whose r or s is below 2^(bits-8) (a zero top byte in its fixed-length half; on P-521, whose
 * top byte is at most 1, a zero top byte and a second byte of 0 or 1), generated with node:crypto until every
 * curve has both, at most MAX_SIGNATURES per curve and MAX_MS in all.
 */
const MAX_SIGNATURES = 20_000
const MAX_MS = 60_000

t.test('ECDSA signatures with short r or s (leading zero bytes) verify on every curve, and a flipped bit does not', async (t) => {
  const curves = [
    { alg: 'ES256', curve: 'P-256', hash: 'sha256', half: 32 },
    { alg: 'ES384', curve: 'P-384', hash: 'sha384', half: 48 },
    { alg: 'ES512', curve: 'P-521', hash: 'sha512', half: 66 }
  ] as const
  const started = Date.now()
  /** Whether the half at `offset` is below 2^(bits-8): its top byte is zero (and, on P-521, its next byte < 2). */
  const short = (sig: Buffer, offset: number, half: number): boolean => sig[offset] === 0 && (half !== 66 || (sig[offset + 1] as number) < 2)
  for (const { alg, curve, hash, half } of curves) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve })
    const keySet = new KeySet({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: curve } as PublicJwk] })
    const key = (keySet.candidates(alg, curve)[0] as { key: KeyObject }).key
    const found = { r: 0, s: 0 }
    let tried = 0
    for (; tried < MAX_SIGNATURES && (found.r === 0 || found.s === 0) && Date.now() - started < MAX_MS; tried++) {
      const input = `eyJhbGciOiJFUzI1NiJ9.${Buffer.from(`{"n":${tried}}`).toString('base64url')}`
      const signature = sign(hash, Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' })
      const shortR = short(signature, 0, half)
      const shortS = short(signature, half, half)
      if (!shortR && !shortS) continue
      if (shortR) found.r++
      if (shortS) found.s++
      const which = shortR ? 'r' : 's'
      t.equal(signature.length, 2 * half, `${alg}: R || S keeps its fixed length`)
      for (const mode of MODES) {
        t.equal(await checks(mode, alg, key, input, signature), true, `${mode} ${alg}: a short ${which} verifies (signature ${tried})`)
        t.equal(await checks(mode, alg, key, input, flipBuffer(signature, shortR ? 0 : half)), false, `${mode} ${alg}: its leading zero byte altered`)
        t.equal(await checks(mode, alg, key, input, flipBuffer(signature, 2 * half - 1)), false, `${mode} ${alg}: its last bit altered`)
      }
    }
    t.ok(found.r > 0 && found.s > 0, `${alg}: short r and short s both seen (${tried} signatures)`)
  }
})
