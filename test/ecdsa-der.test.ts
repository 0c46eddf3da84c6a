/**
 * src/core/ecdsa-der.ts: a JWS ECDSA signature (R || S) rewritten as DER is exactly the DER OpenSSL itself
 * writes for the same (r, s), for every curve, including integers with leading zero bytes and with the high
 * bit set, and P-521's long-form length; node:crypto verifies the result with the bare key.
 */
import { generateKeyPairSync, sign, verify } from 'node:crypto'
import t from 'tap'
import { p1363ToDer } from '../src/core/ecdsa-der.js'

const CURVES = [
  { curve: 'P-256', hash: 'sha256', half: 32 },
  { curve: 'P-384', hash: 'sha384', half: 48 },
  { curve: 'P-521', hash: 'sha512', half: 66 }
] as const

/** (r, s) of a DER ECDSA signature, each left-padded to `half` bytes: the JWS spelling. */
function derToP1363 (der: Buffer, half: number): Buffer {
  let at = 0
  if (der[at++] !== 0x30) throw new Error('not a SEQUENCE')
  let length = der[at++] as number
  if (length === 0x81) length = der[at++] as number
  if (at + length !== der.length) throw new Error('bad SEQUENCE length')
  const out = Buffer.alloc(2 * half)
  for (const offset of [0, half]) {
    if (der[at++] !== 0x02) throw new Error('not an INTEGER')
    const n = der[at++] as number
    let bytes = der.subarray(at, at + n)
    at += n
    while (bytes.length > 1 && bytes[0] === 0) bytes = bytes.subarray(1)
    bytes.copy(out, offset + half - bytes.length)
  }
  return out
}

t.test('the same bytes OpenSSL writes, and they verify, on every curve', async (t) => {
  for (const { curve, hash, half } of CURVES) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve })
    let leadingZero = 0
    let highBit = 0
    for (let i = 0; i < 300; i++) {
      const data = Buffer.from(`message ${i} on ${curve}`)
      const der = sign(hash, data, privateKey)
      const jws = derToP1363(der, half)
      if (jws[0] === 0 || jws[half] === 0) leadingZero++
      if ((jws[0] as number) >= 0x80 || (jws[half] as number) >= 0x80) highBit++
      const ours = p1363ToDer(jws, half)
      if (!ours.equals(der)) { t.fail(`${curve}: differs from OpenSSL's DER for signature ${i}`); break }
      if (!verify(hash, data, publicKey, ours)) { t.fail(`${curve}: does not verify (signature ${i})`); break }
    }
    // P-256 and P-384 integers fill their bytes, so half of them start with the high bit set (a DER zero byte
    // is added); P-521's 66 bytes hold 521 bits, so its first byte is 0 or 1 and often dropped.
    if (curve === 'P-521') t.ok(leadingZero > 100, `${curve}: leading zero bytes covered (${leadingZero})`)
    else t.ok(highBit > 100, `${curve}: integers with the high bit set covered (${highBit})`)
    // And from node:crypto's own P1363 signatures, as a token carries them.
    const data = Buffer.from('header.payload')
    const p1363 = sign(hash, data, { key: privateKey, dsaEncoding: 'ieee-p1363' })
    t.ok(verify(hash, data, publicKey, p1363ToDer(p1363, half)), `${curve}: a JWS-style signature verifies once rewritten`)
    const tampered = Buffer.from(p1363)
    tampered[half - 1] = (tampered[half - 1] as number) ^ 1
    t.notOk(verify(hash, data, publicKey, p1363ToDer(tampered, half)), `${curve}: a changed r does not`)
  }
})

t.test('hand-checked encodings: minimal integers, a zero byte before a high bit, zero, long form', async (t) => {
  t.same([...p1363ToDer(Buffer.from([0x00, 0x80, 0x01, 0x02]), 2)], [0x30, 0x08, 0x02, 0x02, 0x00, 0x80, 0x02, 0x02, 0x01, 0x02])
  t.same([...p1363ToDer(Buffer.from([0x00, 0x00, 0x00, 0x7f]), 2)], [0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x7f], 'zero is one 0x00 byte')
  const big = p1363ToDer(Buffer.alloc(132, 0xff), 66)
  t.same([...big.subarray(0, 5)], [0x30, 0x81, 138, 0x02, 67], 'P-521 with both integers at full length: long-form SEQUENCE length')
  t.equal(big.length, 141)
  // r = 0 is never a valid signature: OpenSSL says so, without a throw.
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  t.notOk(verify('sha256', Buffer.from('x'), publicKey, p1363ToDer(Buffer.alloc(64), 32)), 'all zeros: not valid')
})

t.test('the SEQUENCE length at the short/long form boundary: 127 short, 128 long (0x80 alone would be indefinite)', async (t) => {
  /** A P-521 (R || S) whose r and s have `r` and `s` significant bytes (0x01 each, so no zero byte is added). */
  const withLengths = (r: number, s: number): Buffer => Buffer.concat([Buffer.alloc(66 - r), Buffer.alloc(r, 1), Buffer.alloc(66 - s), Buffer.alloc(s, 1)])
  const short = p1363ToDer(withLengths(62, 61), 66)
  t.same([...short.subarray(0, 3)], [0x30, 127, 0x02], 'content of 127 bytes: one length byte')
  t.equal(short.length, 2 + 127)
  const long = p1363ToDer(withLengths(62, 62), 66)
  t.same([...long.subarray(0, 4)], [0x30, 0x81, 128, 0x02], 'content of 128 bytes: long form')
  t.equal(long.length, 3 + 128)
})
