/**
 * PS* keys as rsa-pss keys restricted to the algorithm's parameters: the same AlgorithmIdentifier node:crypto
 * writes for such keys, every PS* signature of the right salt verifies, and no other salt, hash or padding does.
 */
import t from 'tap'
import { constants, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { pssKeyOf, type PssAlgorithm } from '../src/core/rsa-pss-key.js'
import { prepareAsymmetric, runCheck } from '../src/core/signature.js'
import { generatePair } from './helpers/tokens.js'

const PARAMS: Record<PssAlgorithm, { hash: 'sha256' | 'sha384' | 'sha512', salt: number }> = {
  PS256: { hash: 'sha256', salt: 32 },
  PS384: { hash: 'sha384', salt: 48 },
  PS512: { hash: 'sha512', salt: 64 }
}

const { privateKey, publicKey } = generatePair('rsa', { modulusLength: 2048 })
// As keys are imported from a JWKS: a plain rsa KeyObject.
const jwkKey: KeyObject = createPublicKey({ key: publicKey.export({ format: 'jwk' }), format: 'jwk' })
const data = Buffer.from('header.payload')

function algorithmIdentifier (spki: Buffer): string {
  // SEQUENCE { AlgorithmIdentifier, BIT STRING }: the first element, for keys of this size (short lengths inside).
  const header = (spki[1] as number) & 0x80 ? 2 + ((spki[1] as number) & 0x7f) : 2
  const length = spki[header + 1] as number
  return spki.subarray(header, header + 2 + length).toString('hex')
}

for (const alg of ['PS256', 'PS384', 'PS512'] as const) {
  t.test(alg, async (t) => {
    const { hash, salt } = PARAMS[alg]
    const pss = pssKeyOf(jwkKey, alg)
    t.ok(pss)
    t.equal(pss?.asymmetricKeyType, 'rsa-pss')
    t.match(pss?.asymmetricKeyDetails, { modulusLength: 2048, hashAlgorithm: hash, mgf1HashAlgorithm: hash, saltLength: salt })
    t.equal(pssKeyOf(jwkKey, alg), pss, 'built once per key and algorithm')
    // @types/node 20 types saltLength as a string; node takes the number.
    const reference = generateKeyPairSync('rsa-pss', { modulusLength: 1024, hashAlgorithm: hash, mgf1HashAlgorithm: hash, saltLength: salt as unknown as string })
    t.equal(algorithmIdentifier(pss!.export({ type: 'spki', format: 'der' })), algorithmIdentifier(reference.publicKey.export({ type: 'spki', format: 'der' })),
      'the AlgorithmIdentifier node:crypto writes for such a key')

    const check = (signature: Buffer): boolean => {
      const prepared = prepareAsymmetric(alg, jwkKey, data, signature)
      return prepared !== undefined && runCheck(prepared)
    }
    const pssSign = (h: string, saltLength: number): Buffer => sign(h, data, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength })
    t.ok(check(pssSign(hash, salt)), 'the algorithm\'s own signature verifies')
    t.notOk(check(pssSign(hash, salt + 16)), 'a longer salt does not')
    t.notOk(check(pssSign(hash, 20)), 'a shorter salt does not')
    t.notOk(check(pssSign(hash === 'sha256' ? 'sha512' : 'sha256', salt)), 'another hash does not')
    t.notOk(check(sign(hash, data, privateKey)), 'PKCS#1 v1.5 does not')
    t.notOk(check(pssSign(hash, salt).subarray(1)), 'nor a signature one byte short')
  })
}

t.test('an RS* check keeps the plain key', async (t) => {
  const prepared = prepareAsymmetric('RS256', jwkKey, data, sign('sha256', data, privateKey))
  t.equal(prepared?.key, jwkKey)
  t.ok(prepared !== undefined && runCheck(prepared))
})
