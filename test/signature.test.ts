/**
 * Signature checks in both places they can run: every algorithm gives the same answers in the thread pool
 * and batched on the event loop, a malformed signature is "not valid" (never a throw); a burst never queues
 * more than the bound in the thread pool (the rest are verified inline, so an overload stays visible to load
 * shedding), and on the event loop it is verified in slices of at most MAX_CHECKS_PER_TURN, with the loop's
 * other work running between slices.
 */
import { constants, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto'
import t, { type Test } from 'tap'
import type { AsymmetricAlgorithm } from '../src/config/types.js'
import type { KeyObject } from 'node:crypto'
import { prepareAsymmetric, type PreparedCheck } from '../src/core/signature.js'
import {
  createSignatureChecks, MAX_CHECKS_PER_TURN, MAX_QUEUED_VERIFICATIONS, queuedVerifications, resolveSignatureChecks,
  type SignatureCheckMode
} from '../src/core/signature-checks.js'
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

const MODES: SignatureCheckMode[] = ['thread-pool', 'event-loop']

/** A check as the Verifier makes it: prepared (an impossible signature is false at once), then run. */
async function checkWith (mode: SignatureCheckMode, alg: AsymmetricAlgorithm, key: KeyObject, data: Buffer, signature: Buffer): Promise<boolean> {
  const prepared = prepareAsymmetric(alg, key, data, signature)
  return prepared === undefined ? false : await createSignatureChecks(mode).check(prepared)
}

for (const mode of MODES) {
  t.test(`${mode}: valid, altered and malformed signatures for every algorithm`, async (t) => {
    const verifyAsymmetric = async (alg: AsymmetricAlgorithm, key: KeyObject, data: Buffer, signature: Buffer): Promise<boolean> => await checkWith(mode, alg, key, data, signature)
    await checkEveryAlgorithm(t, verifyAsymmetric)
  })
}

async function checkEveryAlgorithm (t: Test, verifyAsymmetric: (alg: AsymmetricAlgorithm, key: KeyObject, data: Buffer, signature: Buffer) => Promise<boolean>): Promise<void> {
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
}

t.test('RS* and PS* are not interchangeable, and RS* takes only a plain RSA key (its default padding is PKCS#1 v1.5)', async (t) => {
  const key = makeKey('RS256')
  const publicKey = createPublicKey(key.privateKey)
  const data = Buffer.from('header.payload')
  for (const mode of MODES) {
    t.equal(await checkWith(mode, 'PS256', publicKey, data, SIGNING.RS256(data, key)), false, `${mode}: a PKCS#1 v1.5 signature is not a PS256 one`)
    t.equal(await checkWith(mode, 'RS256', publicKey, data, SIGNING.PS256(data, key)), false, `${mode}: a PSS signature is not an RS256 one`)
  }
  const pss = generateKeyPairSync('rsa-pss', { modulusLength: 2048 })
  t.equal(pss.publicKey.asymmetricKeyType, 'rsa-pss')
  t.equal(prepareAsymmetric('RS256', pss.publicKey, data, sign('sha256', data, pss.privateKey)), undefined, 'an rsa-pss key is refused for RS256 before any check')
  t.match(prepareAsymmetric('ES256', createPublicKey(makeKey('ES256').privateKey), data, Buffer.alloc(64, 1)), { key: { asymmetricKeyType: 'ec' } }, 'ES256: the bare key, the signature rewritten to DER')
})

t.test('an RSA signature must be exactly as long as the modulus: OpenSSL would take a PSS one without its leading zero', async (t) => {
  const key = makeKey('PS256')
  const publicKey = createPublicKey(key.privateKey)
  // A signature whose first byte is zero: one in 256.
  let data: Buffer = Buffer.alloc(0)
  let signature: Buffer = Buffer.alloc(0)
  for (let i = 0; i < 5000 && signature[0] !== 0; i++) {
    data = Buffer.from(`header.payload-${i}`)
    signature = SIGNING.PS256(data, key)
  }
  t.equal(signature[0], 0, 'found a PSS signature that starts with a zero byte')
  t.ok(verify('sha256', data, { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, signature.subarray(1)), 'node:crypto alone takes it shortened')
  for (const mode of MODES) {
    t.equal(await checkWith(mode, 'PS256', publicKey, data, signature), true, `${mode}: the full signature is valid`)
    t.equal(await checkWith(mode, 'PS256', publicKey, data, signature.subarray(1)), false, `${mode}: without its leading zero it is not`)
    t.equal(await checkWith(mode, 'PS256', publicKey, data, Buffer.concat([Buffer.alloc(1), signature])), false, `${mode}: nor with one more`)
  }
})

/** ES256 checks of one message: check(true) has a valid signature, check(false) one with a flipped bit. */
function es256Checks (message: string): (valid: boolean) => PreparedCheck {
  const key = makeKey('ES256')
  const publicKey = createPublicKey(key.privateKey)
  const data = Buffer.from(message)
  const good = SIGNING.ES256(data, key)
  const bad = Buffer.from(good)
  bad[5] = (bad[5] as number) ^ 0x01
  return (valid) => prepareAsymmetric('ES256', publicKey, data, valid ? good : bad) as PreparedCheck
}

t.test('a burst queues at most the bound in the thread pool, and every answer is right', async (t) => {
  const check = es256Checks('burst')
  const count = MAX_QUEUED_VERIFICATIONS * 3
  let most = 0
  const checks: Array<Promise<boolean>> = []
  const pool = createSignatureChecks('thread-pool')
  for (let i = 0; i < count; i++) {
    checks.push(pool.check(check(i % 2 === 0)))
    most = Math.max(most, queuedVerifications())
  }
  t.equal(most, MAX_QUEUED_VERIFICATIONS, 'the queue filled up to the bound, not beyond')
  const results = await Promise.all(checks)
  t.same(results, Array.from({ length: count }, (_, i) => i % 2 === 0), 'queued and inline checks alike are right')
  t.equal(queuedVerifications(), 0, 'nothing left queued')
})

t.test('event-loop: a burst is verified in slices, with the loop\'s other work between them, answers in order', async (t) => {
  const check = es256Checks('slices')
  const checks = createSignatureChecks('event-loop')
  t.equal(checks.mode, 'event-loop')
  const count = MAX_CHECKS_PER_TURN * 2 + 5
  const settled: number[] = []
  const results: Array<Promise<boolean>> = []
  for (let i = 0; i < count; i++) {
    const p = checks.check(check(i % 3 !== 0))
    void p.then(() => { settled.push(i) })
    results.push(p)
  }
  t.equal(settled.length, 0, 'nothing is checked while the current turn of the loop runs')
  // Each setImmediate below was queued before the next slice's: it runs between slices.
  const afterTurn = async (): Promise<number> => await new Promise((resolve) => setImmediate(() => { resolve(settled.length) }))
  t.equal(await afterTurn(), MAX_CHECKS_PER_TURN, 'the first turn checks one slice')
  t.equal(await afterTurn(), MAX_CHECKS_PER_TURN * 2, 'the loop ran other work before the second slice')
  t.equal(await afterTurn(), count, 'the rest in the third')
  t.same(settled, Array.from({ length: count }, (_, i) => i), 'answers in the order asked')
  t.same(await Promise.all(results), Array.from({ length: count }, (_, i) => i % 3 !== 0), 'every answer is right')
  // Idle again: a new check is scheduled afresh.
  t.equal(await checks.check(check(true)), true, 'a later check is answered')
})

t.test('event-loop: every check of a turn is answered before any continuation runs', async (t) => {
  const prepared = es256Checks('together')(true)
  const checks = createSignatureChecks('event-loop')
  const events: string[] = []
  const all = [0, 1, 2].map(async (i) => {
    await checks.check(prepared)
    events.push(`answer ${i}`)
  })
  await Promise.all(all)
  t.same(events, ['answer 0', 'answer 1', 'answer 2'])
})

t.test('auto picks the thread pool only with two cores or more for this process', async (t) => {
  t.equal(resolveSignatureChecks('auto', 1), 'event-loop', 'one core: no core to spare')
  t.equal(resolveSignatureChecks('auto', 1.5), 'event-loop', 'a core and a half (a quota shared by workers)')
  t.equal(resolveSignatureChecks('auto', 2), 'thread-pool')
  t.equal(resolveSignatureChecks('auto', 64), 'thread-pool')
  t.equal(resolveSignatureChecks('thread-pool', 1), 'thread-pool', 'an explicit setting is kept')
  t.equal(resolveSignatureChecks('event-loop', 64), 'event-loop', 'an explicit setting is kept')
})

t.test('runCheck: a check node:crypto throws on is not valid (never true)', async (t) => {
  const { runCheck } = await import('../src/core/signature.js')
  // An ES256 check on an Ed25519 key: node:crypto throws (a digest for a key that takes none).
  const ed = generateKeyPairSync('ed25519').publicKey
  const data = Buffer.from('payload')
  const prepared = prepareAsymmetric('ES256', ed, data, Buffer.alloc(64, 1)) as PreparedCheck
  t.throws(() => verify(prepared.hash, prepared.data, prepared.key as KeyObject, prepared.signature), 'node:crypto throws here')
  t.equal(runCheck(prepared), false)
})

t.test('RSA: the signature length is the modulus length rounded up to whole bytes', async (t) => {
  const { runCheck } = await import('../src/core/signature.js')
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 1025 })
  const data = Buffer.from('payload')
  const signature = sign('sha256', data, privateKey)
  t.equal(signature.length, 129)
  const prepared = prepareAsymmetric('RS256', createPublicKey({ key: publicKey.export({ format: 'jwk' }), format: 'jwk' }), data, signature)
  t.ok(prepared !== undefined && runCheck(prepared), 'a 129-byte signature of a 1025-bit key verifies')
})

t.test('algorithm names: only own entries, and errors name only registered algorithms', async (t) => {
  const { isAsymmetricAlgorithm, isHmacAlgorithm, registeredAlgorithm } = await import('../src/core/signature.js')
  for (const name of ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf']) {
    t.equal(isAsymmetricAlgorithm(name), false, `${name} is not an algorithm`)
    t.equal(isHmacAlgorithm(name), false)
  }
  t.equal(isAsymmetricAlgorithm('ES256'), true)
  t.equal(registeredAlgorithm('ES256K'), 'ES256K', 'registered though not ours')
  t.equal(registeredAlgorithm('none'), 'none')
  t.equal(registeredAlgorithm('<script>'), undefined, 'input is never echoed')
  t.equal(registeredAlgorithm('es256'), undefined, 'names are case-sensitive')
})
