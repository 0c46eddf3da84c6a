/**
 * A JWS ECDSA signature (R || S, each of fixed length: RFC 7518 §3.4) rewritten as the DER
 * `SEQUENCE { INTEGER r, INTEGER s }` OpenSSL reads natively. node:crypto converts it too when given
 * `dsaEncoding: 'ieee-p1363'`, but on Node 24 a key passed inside an options object takes a slow path
 * (about 22 µs more per ES256 check than the bare KeyObject; docs/benchmarks.md), so the conversion is done
 * here, in well under a microsecond, and the key is passed bare. The mapping is one to one (fixed-length
 * input, minimal DER output), so it adds no second spelling of a signature; r and s are range-checked by
 * OpenSSL's verification as before.
 */

/** `half` is the byte length of r and of s (32 for P-256, 48 for P-384, 66 for P-521). */
export function p1363ToDer (signature: Buffer, half: number): Buffer {
  const rStart = integerStart(signature, 0, half)
  const sStart = integerStart(signature, half, 2 * half)
  // A positive INTEGER whose first byte has its high bit set needs a leading zero byte.
  const rPad = (signature[rStart] as number) >= 0x80 ? 1 : 0
  const sPad = (signature[sStart] as number) >= 0x80 ? 1 : 0
  const rLength = half - rStart + rPad
  const sLength = 2 * half - sStart + sPad
  // At most 2 × (2 + 67) = 138 bytes of content (P-521): one length byte, in long form above 127.
  const contentLength = 2 + rLength + 2 + sLength
  const header = contentLength < 0x80 ? 2 : 3
  const der = Buffer.allocUnsafe(header + contentLength)
  let at = 0
  der[at++] = 0x30
  if (header === 3) der[at++] = 0x81
  der[at++] = contentLength
  at = writeInteger(der, at, signature, rStart, half, rPad, rLength)
  writeInteger(der, at, signature, sStart, 2 * half, sPad, sLength)
  return der
}

/** Where the minimal big-endian spelling of the integer in [start, end) begins: leading zeros dropped, one byte kept. */
function integerStart (bytes: Buffer, start: number, end: number): number {
  let i = start
  while (i < end - 1 && bytes[i] === 0) i++
  return i
}

function writeInteger (der: Buffer, at: number, source: Buffer, start: number, end: number, pad: number, length: number): number {
  der[at++] = 0x02
  der[at++] = length
  if (pad === 1) der[at++] = 0x00
  source.copy(der, at, start, end)
  return at + (end - start)
}
