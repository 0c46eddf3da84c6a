/**
 * Signature checks off the event loop: every algorithm gives the same answers as a synchronous check, a
 * malformed signature is "not valid" (never a throw), and a burst never queues more than the bound in the
 * thread pool (the rest are verified inline, so an overload stays visible to load shedding).
 */
import { createPublicKey, sign } from 'node:crypto'
import t from 'tap'
import type { AsymmetricAlgorithm } from '../src/config/types.js'
import { MAX_QUEUED_VERIFICATIONS, queuedVerifications, verifyAsymmetric } from '../src/core/signature.js'
import { makeKey, type TestAlg } from './helpers/tokens.js'

const SIGNING: Record<TestAlg, (data: Buffer, key: ReturnType<typeof makeKey>) => Buffer> = {
  RS256: (d, k) => sign('sha256', d, k.privateKey),
  RS384: (d, k) => sign('sha384', d, k.privateKey),
  RS512: (d, k) => sign('sha512', d, k.privateKey),
  PS256: (d, k) => sign('sha256', d, { key: k.privateKey, padding: 6, saltLength: 32 }),
  PS384: (d, k) => sign('sha384', d, { key: k.privateKey, padding: 6, saltLength: 48 }),
  PS512: (d, k) => sign('sha512', d, { key: k.privateKey, padding: 6, saltLength: 64 }),
  ES256: (d, k) => sign('sha256', d, { key: k.privateKey, dsaEncoding: 'ieee-p1363' }),
  ES384: (d, k) => sign('sha384', d, { key: k.privateKey, dsaEncoding: 'ieee-p1363' }),
  ES512: (d, k) => sign('sha512', d, { key: k.privateKey, dsaEncoding: 'ieee-p1363' }),
  EdDSA: (d, k) => sign(null, d, k.privateKey)
}

t.test('valid, altered and malformed signatures for every algorithm', async (t) => {
  for (const alg of Object.keys(SIGNING) as TestAlg[]) {
    const key = makeKey(alg)
    const publicKey = createPublicKey(key.privateKey)
    const data = Buffer.from(`header.payload-${alg}`)
    const signature = SIGNING[alg](data, key)
    const a = alg as AsymmetricAlgorithm
    t.equal(await verifyAsymmetric(a, publicKey, data, signature), true, `${alg}: valid`)
    t.equal(await verifyAsymmetric(a, publicKey, Buffer.from(`${data.toString()}x`), signature), false, `${alg}: other data`)
    const flipped = Buffer.from(signature)
    flipped[flipped.length - 1] = (flipped[flipped.length - 1] as number) ^ 1
    t.equal(await verifyAsymmetric(a, publicKey, data, flipped), false, `${alg}: altered signature`)
    for (const bad of [Buffer.alloc(0), Buffer.alloc(1), signature.subarray(1), Buffer.concat([signature, Buffer.alloc(7)])]) {
      t.equal(await verifyAsymmetric(a, publicKey, data, bad), false, `${alg}: ${bad.length}-byte signature is not valid`)
    }
    const other = createPublicKey(makeKey(alg).privateKey)
    t.equal(await verifyAsymmetric(a, other, data, signature), false, `${alg}: another key`)
  }
})

t.test('a burst queues at most the bound in the thread pool, and every answer is right', async (t) => {
  const key = makeKey('ES256')
  const publicKey = createPublicKey(key.privateKey)
  const data = Buffer.from('burst')
  const good = SIGNING.ES256(data, key)
  const bad = Buffer.from(good)
  bad[0] = (bad[0] as number) ^ 0xff
  const count = MAX_QUEUED_VERIFICATIONS * 3
  let most = 0
  const checks: Array<Promise<boolean>> = []
  for (let i = 0; i < count; i++) {
    checks.push(verifyAsymmetric('ES256', publicKey, data, i % 2 === 0 ? good : bad))
    most = Math.max(most, queuedVerifications())
  }
  t.equal(most, MAX_QUEUED_VERIFICATIONS, 'the queue filled up to the bound, not beyond')
  const results = await Promise.all(checks)
  t.same(results, Array.from({ length: count }, (_, i) => i % 2 === 0), 'queued and inline checks alike are right')
  t.equal(queuedVerifications(), 0, 'nothing left queued')
})
