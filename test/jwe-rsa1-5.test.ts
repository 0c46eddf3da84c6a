/**
 * RSA1_5 encrypted ID tokens, accepted only by issuers that list RSA1_5: tokens made by an independent
 * implementation (jose 5, which still encrypts with RSA1_5) decrypt for every enc; every padding, length and
 * tampering failure answers exactly like any other decryption failure (no Bleichenbacher oracle); the config
 * rules; and the PKCS#1 v1.5 unpadding itself, byte by byte.
 */
import { constants, createCipheriv, createHmac, createPrivateKey, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto'
import { join } from 'node:path'
import { deflateRawSync } from 'node:zlib'
import { CompactEncrypt as CompactEncrypt5, EncryptJWT as EncryptJWT5 } from 'jose5'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { CONTENT_ENCRYPTION_ALGORITHMS, DEFAULT_KEY_MANAGEMENT_ALGORITHMS } from '../src/config/types.js'
import { MAX_KEY_DECRYPTIONS_IN_FLIGHT, MAX_KEY_DECRYPTIONS_WAITING, TokenDecryptor } from '../src/core/jwe.js'
import { ContentDecryptionFailed } from '../src/core/jwe-content.js'
import { silentLogger } from '../src/core/logger.js'
import { decryptRsa15, Rsa15Failure, unpadOrSubstitute } from '../src/core/jwe-rsa1-5.js'
import { configFor, configProblems } from './helpers/config.js'
import { matchExactly } from './helpers/exact-match.js'
import { ecKey, encrypt, fakeJwe, rsaKey } from './helpers/jwe.js'
import { b64, idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const LEGACY = 'https://legacy.example.com'
const NOZIP = 'https://nozip.example.com'
const STRICT = 'https://strict.example.com'
const AUD = 'client-a'
const signer = makeKey('ES256')

const keys = {
  rsa: rsaKey(),
  rsa3072: rsaKey({ bits: 3072, format: 'jwk', kid: 'legacy-3072' }),
  pinned: rsaKey({ format: 'jwk', kid: 'pinned' }),
  nozip: rsaKey(),
  strict: rsaKey()
}
const dir = t.testdir({
  ...Object.fromEntries(Object.entries(keys).map(([name, key]) => [`${name}.key`, key.file])),
  'pinned.key': JSON.stringify({ ...JSON.parse(keys.pinned.file), alg: 'RSA1_5' }),
  'small.key': rsaKey({ bits: 1024 }).file,
  'ec.key': ecKey('P-256').file
})
const file = (name: string): string => join(dir, `${name}.key`)

const config = configFor([
  {
    id: 'legacy',
    issuer: LEGACY,
    audiences: [AUD],
    jwks: jwksOf(signer),
    decryptionKeys: [file('rsa'), file('rsa3072'), file('pinned')],
    keyManagementAlgorithms: ['RSA1_5', 'RSA-OAEP-256'],
    allowCompressedTokens: true
  },
  { id: 'nozip', issuer: NOZIP, audiences: [AUD], jwks: jwksOf(signer), decryptionKeys: [file('nozip')], keyManagementAlgorithms: ['RSA1_5'] },
  { id: 'strict', issuer: STRICT, audiences: [AUD], jwks: jwksOf(signer), decryptionKeys: [file('strict')] }
])
const app = await buildApp(config)
t.teardown(() => app.close())

async function verify (token: string): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await app.inject({ method: 'POST', url: '/verify', payload: { token } })
  return { status: res.statusCode, body: res.json() }
}

const signed = (iss = LEGACY): string => mint(signer, idTokenClaims(iss, AUD, { jti: randomBytes(8).toString('hex') }))
const publicKeyOf = (key: typeof keys.rsa): KeyObject => key.encryptTo as KeyObject

/** RSA1_5 by jose 5: the independent implementation. */
async function rsa15 (content: string, key: typeof keys.rsa, enc: string, header: Record<string, unknown> = {}): Promise<string> {
  return await new CompactEncrypt5(new TextEncoder().encode(content))
    .setProtectedHeader({ alg: 'RSA1_5', enc, cty: 'JWT', ...(key.kid !== undefined ? { kid: key.kid } : {}), ...header })
    .encrypt(publicKeyOf(key))
}

/** The bytes of an EME-PKCS1-v1_5 block 00 02 PS 00 M, with any part spoiled on request. */
function block (modulusBytes: number, message: Buffer, spoil: { first?: number, type?: number, separator?: number, psLength?: number } = {}): Buffer {
  const psLength = spoil.psLength ?? modulusBytes - 3 - message.length
  const ps = Buffer.from(randomBytes(psLength).map((b) => b === 0 ? 1 : b))
  const out = Buffer.concat([Buffer.from([spoil.first ?? 0, spoil.type ?? 2]), ps, Buffer.from([spoil.separator ?? 0]), message])
  if (out.length !== modulusBytes) throw new Error(`a block of ${out.length} bytes for a ${modulusBytes}-byte modulus`)
  return out
}

/**
 * A JWE whose encrypted key is the raw RSA encryption of a given block, and whose content is encrypted under
 * `cek` with A128GCM: the content is right, so only the block can make it fail.
 */
function handMade (key: typeof keys.rsa, encryptedBlock: Buffer, cek: Buffer, content: string, header: Record<string, unknown> = {}): string {
  const protectedSegment = b64({ alg: 'RSA1_5', enc: 'A128GCM', cty: 'JWT', ...header })
  // An empty block: node:crypto's own PKCS#1 v1.5 padding of the CEK.
  const encryptedKey = encryptedBlock.length === 0
    ? publicEncrypt({ key: publicKeyOf(key), padding: constants.RSA_PKCS1_PADDING }, cek)
    : publicEncrypt({ key: publicKeyOf(key), padding: constants.RSA_NO_PADDING }, encryptedBlock)
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-128-gcm', cek, iv)
  cipher.setAAD(Buffer.from(protectedSegment))
  const body = header.zip === undefined ? Buffer.from(content) : deflateRawSync(Buffer.from(content))
  const ciphertext = Buffer.concat([cipher.update(body), cipher.final()])
  return [protectedSegment, ...[encryptedKey, iv, ciphertext, cipher.getAuthTag()].map((b) => b.toString('base64url'))].join('.')
}

t.test('config: RSA1_5 only when listed, with RSA keys of 2048 bits or more', async (t) => {
  const legacy = config.issuers[0]!.decryption!
  t.same(legacy.keyManagementAlgorithms, ['RSA1_5', 'RSA-OAEP-256'])
  t.equal(legacy.keys.length, 3)
  t.notOk((DEFAULT_KEY_MANAGEMENT_ALGORITHMS as readonly string[]).includes('RSA1_5'), 'never a default')
  t.notOk((config.issuers[2]!.decryption!.keyManagementAlgorithms as string[]).includes('RSA1_5'), 'an issuer without the opt-in')
  const problems = (issuer: Record<string, unknown>): string[] => {
    return configProblems({ issuers: [{ id: 'a', issuer: LEGACY, audiences: ['x'], ...issuer }] })
  }
  t.same(problems({ decryptionKeys: [file('rsa')], keyManagementAlgorithms: ['RSA1_5'] }), [], 'RSA1_5 alone')
  matchExactly(t, problems({ decryptionKeys: [file('small')], keyManagementAlgorithms: ['RSA1_5'] }), [/decryptionKeys\[0\]: key file ".*small\.key": an RSA key of 1024 bits; expected at least 2048/])
  matchExactly(t, problems({ decryptionKeys: [file('ec')], keyManagementAlgorithms: ['RSA1_5'] }), [/decryptionKeys\[0\]: key file ".*ec\.key": an EC\/X25519 key, used only with ECDH-ES\*, and keyManagementAlgorithms allows none of them/])
  matchExactly(t, problems({ decryptionKeys: [file('rsa')], keyManagementAlgorithms: ['ECDH-ES'] }), [/an RSA key, used only with RSA-OAEP\* or RSA1_5, and keyManagementAlgorithms allows none of them/])
  matchExactly(t, problems({ decryptionKeys: [file('pinned')] }), [/decryptionKeys\[0\]: key file ".*pinned\.key": a key pinned to "RSA1_5", which keyManagementAlgorithms does not allow/], 'a key pinned to RSA1_5 needs the opt-in')
  matchExactly(t, problems({ decryptionKeys: [file('rsa')], keyManagementAlgorithms: ['RSA1_5', 'RSA1_6'] }), [/keyManagementAlgorithms\[1\]: unsupported JWE algorithm "RSA1_6"; expected one of .*RSA1_5/])
  matchExactly(t, problems({ keyManagementAlgorithms: ['RSA1_5'] }), [/keyManagementAlgorithms: only applies to encrypted ID tokens; set decryptionKeys too/])
})

t.test('jose 5 RSA1_5 tokens with every content encryption decrypt, and the inner token is verified', async (t) => {
  for (const key of [keys.rsa, keys.rsa3072, keys.pinned]) {
    for (const enc of CONTENT_ENCRYPTION_ALGORITHMS) {
      const res = await verify(await rsa15(signed(), key, enc))
      t.equal(res.status, 200, `${key.kid ?? 'no kid'} ${enc}: ${String(res.body.code)}`)
      t.equal((res.body.issuer as { id: string } | undefined)?.id, 'legacy')
    }
  }
  t.equal((await verify(await rsa15(signed(), keys.rsa, 'A128GCM', { cty: undefined }))).status, 200, 'cty may be left out')
  t.equal((await verify(await encrypt(signed(), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM' }))).status, 200, 'RSA-OAEP-256 with the same key')
  t.equal((await verify(await rsa15(signed(NOZIP), keys.nozip, 'A256CBC-HS512'))).status, 200, 'another issuer with its own key')
  t.equal((await verify(await rsa15(signed(STRICT), keys.rsa, 'A128GCM'))).body.code, 'token_decryption_failed', 'the inner issuer must own the key')
})

t.test('the content must be a signed ID token', async (t) => {
  const claims = idTokenClaims(LEGACY, AUD)
  const bare = await new EncryptJWT5(claims).setProtectedHeader({ alg: 'RSA1_5', enc: 'A128CBC-HS256' }).encrypt(publicKeyOf(keys.rsa))
  t.equal((await verify(bare)).body.code, 'token_not_signed', 'an encrypted claim set (jose 5 EncryptJWT)')
  t.equal((await verify(await rsa15(`${b64({ alg: 'none' })}.${b64(claims)}.`, keys.rsa, 'A256GCM'))).body.code, 'token_not_signed', 'alg none inside')
  const forged = mint(makeKey('ES256', { kid: signer.kid }), claims)
  t.equal((await verify(await rsa15(forged, keys.rsa, 'A192GCM'))).body.code, 'signature_invalid')
})

t.test('compressed content: only where allowed, inflated within server.maxTokenBytes', async (t) => {
  const cek = randomBytes(16)
  const good = handMade(keys.rsa, block(256, cek), cek, signed(), { zip: 'DEF' })
  t.equal((await verify(good)).status, 200, 'zip DEF on an issuer that allows it')
  const bomb = `${b64({ alg: 'ES256' })}.${'A'.repeat(200000)}.sig`
  const bombToken = handMade(keys.rsa, block(256, cek), cek, bomb, { zip: 'DEF' })
  t.ok(bombToken.length < config.server.maxTokenBytes, 'the bomb itself is small')
  t.equal((await verify(bombToken)).body.code, 'token_decryption_failed', 'inflated size capped')
  t.equal((await verify(handMade(keys.rsa, block(256, cek), cek, signed(), { zip: 'XYZ' }))).body.code, 'token_decryption_failed', 'only DEF')
  t.equal((await verify(handMade(keys.nozip, block(256, cek), cek, signed(NOZIP), { zip: 'DEF' }))).body.code, 'token_decryption_failed', 'zip without allowCompressedTokens')
  t.equal((await verify(handMade(keys.nozip, block(256, cek), cek, signed(NOZIP)))).status, 200, 'the same token uncompressed')
})

t.test('every failure answers the same, whatever failed (no padding oracle)', async (t) => {
  const cek = randomBytes(16)
  const content = signed()
  t.equal((await verify(handMade(keys.rsa, block(256, cek), cek, content))).status, 200, 'the hand-made token is right when its block is')
  t.equal((await verify(handMade(keys.rsa, Buffer.alloc(0), cek, content))).status, 200, 'and with node:crypto\'s PKCS#1 v1.5 padding')

  const failures: Record<string, string> = {
    'not opted in (the issuer\'s own key)': await rsa15(signed(STRICT), keys.strict, 'A128GCM'),
    'an RSA-OAEP token to an unknown key': await encrypt(signed(), rsaKey(), { alg: 'RSA-OAEP-256', enc: 'A256GCM' }),
    'an unknown key': await rsa15(signed(), rsaKey(), 'A128GCM'),
    'block type 1': handMade(keys.rsa, block(256, cek, { type: 1 }), cek, content),
    'block type 0': handMade(keys.rsa, block(256, cek, { type: 0 }), cek, content),
    'first byte 1': handMade(keys.rsa, block(256, cek, { first: 1 }), cek, content),
    'no separator': handMade(keys.rsa, block(256, cek, { separator: 0xff }), cek, content),
    'a padding string of 7 bytes': handMade(keys.rsa, block(256, Buffer.concat([randomBytes(256 - 10 - 16).map((b) => b | 1), cek]), { psLength: 7 }), cek, content),
    'no padding string': handMade(keys.rsa, block(256, Buffer.concat([Buffer.alloc(256 - 3 - 16, 1), cek]), { psLength: 0 }), cek, content),
    'valid padding, a CEK too short for A128GCM': handMade(keys.rsa, block(256, cek.subarray(0, 15)), cek, content),
    'valid padding, a CEK too long for A128GCM': handMade(keys.rsa, block(256, Buffer.concat([Buffer.alloc(1, 7), cek])), cek, content),
    'valid padding, a 16-byte CEK for A256GCM': handMade(keys.rsa, block(256, cek), cek, content, { enc: 'A256GCM' }),
    'node:crypto\'s PKCS#1 v1.5 padding of a 16-byte CEK for A256GCM': handMade(keys.rsa, Buffer.alloc(0), cek, content, { enc: 'A256GCM' }),
    'an encrypted key of random bytes': '', // filled below
    'an encrypted key one byte short': '',
    'an encrypted key one byte long': '',
    'an encrypted key not below the modulus': '',
    'no encrypted key': '',
    'an encrypted key not canonical base64url': ''
  }
  const good = await rsa15(content, keys.rsa, 'A128CBC-HS256')
  const parts = good.split('.')
  const withPart = (i: number, value: string): string => parts.map((p, j) => j === i ? value : p).join('.')
  const flip = (i: number): string => withPart(i, (parts[i]!.startsWith('A') ? 'B' : 'A') + parts[i]!.slice(1))
  failures['an encrypted key of random bytes'] = withPart(1, randomBytes(256).toString('base64url'))
  failures['an encrypted key one byte short'] = withPart(1, Buffer.from(parts[1]!, 'base64url').subarray(1).toString('base64url'))
  failures['an encrypted key one byte long'] = withPart(1, Buffer.concat([Buffer.alloc(1), Buffer.from(parts[1]!, 'base64url')]).toString('base64url'))
  failures['an encrypted key not below the modulus'] = withPart(1, Buffer.alloc(256, 0xff).toString('base64url'))
  failures['no encrypted key'] = withPart(1, '')
  failures['an encrypted key not canonical base64url'] = withPart(1, `${parts[1]!}=`)
  failures['tampered encrypted key'] = flip(1)
  failures['tampered iv'] = flip(2)
  failures['tampered ciphertext'] = flip(3)
  failures['tampered tag'] = flip(4)
  failures['a truncated tag'] = withPart(4, Buffer.from(parts[4]!, 'base64url').subarray(1).toString('base64url'))
  failures['an iv of 12 bytes for CBC'] = withPart(2, randomBytes(12).toString('base64url'))
  failures['another protected header'] = withPart(0, b64({ alg: 'RSA1_5', enc: 'A128CBC-HS256', cty: 'jwt' }))
  failures['another enc in the header'] = withPart(0, b64({ alg: 'RSA1_5', enc: 'A256CBC-HS512', cty: 'JWT' }))
  const gcm = (await rsa15(content, keys.rsa, 'A256GCM')).split('.')
  failures['GCM: tampered tag'] = gcm.map((p, j) => j === 4 ? (p.startsWith('A') ? 'B' : 'A') + p.slice(1) : p).join('.')
  failures['GCM: an iv of 16 bytes'] = gcm.map((p, j) => j === 2 ? randomBytes(16).toString('base64url') : p).join('.')
  failures['GCM: a tag of 12 bytes'] = gcm.map((p, j) => j === 4 ? Buffer.from(p, 'base64url').subarray(0, 12).toString('base64url') : p).join('.')
  failures['GCM: the ciphertext of a CBC token'] = gcm.map((p, j) => j === 3 ? parts[3]! : p).join('.')

  const answers = new Set<string>()
  for (const [name, token] of Object.entries(failures)) {
    const res = await verify(token)
    t.same([res.status, res.body.code], [401, 'token_decryption_failed'], name)
    const { requestId: _, ...rest } = res.body
    answers.add(JSON.stringify(rest))
  }
  t.equal(answers.size, 1, 'one body for all of them')
  t.equal((await verify(good)).status, 200, 'the untampered token still verifies')
})

t.test('private-key decryptions are bounded: RSA1_5 takes the event loop one key at a time, and at most a few tokens decrypt at once', async (t) => {
  const decryptor = new TokenDecryptor(config.issuers, silentLogger)
  // 20 forged tokens, each fitting the four RSA1_5 keys: 80 RSA operations on the event loop.
  let finished = 0
  const forged = Array.from({ length: 20 }, async () => await decryptor.decrypt(fakeJwe({ alg: 'RSA1_5', enc: 'A128GCM' })).then(() => 'decrypted', (err: { code?: string }) => { finished++; return err.code }))
  const atFirstTurn = await new Promise<number>((resolve) => { setImmediate(() => { resolve(finished) }) })
  t.ok(atFirstTurn < 20, `the event loop had a turn before the batch was done (${atFirstTurn} of 20 then)`)
  t.same(new Set(await Promise.all(forged)), new Set(['token_decryption_failed']))

  // RSA-OAEP in the thread pool: MAX_KEY_DECRYPTIONS_IN_FLIGHT at once, MAX_KEY_DECRYPTIONS_WAITING waiting, another is overloaded.
  const many = MAX_KEY_DECRYPTIONS_IN_FLIGHT + MAX_KEY_DECRYPTIONS_WAITING + 1
  const codes = await Promise.all(Array.from({ length: many }, async () =>
    await decryptor.decrypt(fakeJwe({ alg: 'RSA-OAEP', enc: 'A128GCM' })).then(() => 'decrypted', (err: { code?: string }) => err.code)))
  t.equal(codes.filter((c) => c === 'overloaded').length, 1, `one past ${MAX_KEY_DECRYPTIONS_IN_FLIGHT} + ${MAX_KEY_DECRYPTIONS_WAITING}: 503 overloaded`)
  t.equal(codes.filter((c) => c === 'token_decryption_failed').length, many - 1, 'the others are tried, and fail as forged tokens do')
})

t.test('a CBC-HS token made with node:crypto: the MAC key is the first half of the CEK', async (t) => {
  // RFC 7518 §5.2.2.1 by hand: a swap of the halves, or the MAC over the wrong AAD length, must not verify.
  const make = (swap: boolean, alBits: (n: number) => number): string => {
    const cek = randomBytes(32)
    const macKey = swap ? cek.subarray(16) : cek.subarray(0, 16)
    const encKey = swap ? cek.subarray(0, 16) : cek.subarray(16)
    const protectedSegment = b64({ alg: 'RSA1_5', enc: 'A128CBC-HS256', cty: 'JWT' })
    const aad = Buffer.from(protectedSegment)
    const iv = randomBytes(16)
    const cipher = createCipheriv('aes-128-cbc', encKey, iv)
    const ciphertext = Buffer.concat([cipher.update(signed()), cipher.final()])
    const al = Buffer.alloc(8)
    al.writeBigUInt64BE(BigInt(alBits(aad.length)))
    const tag = createHmac('sha256', macKey).update(Buffer.concat([aad, iv, ciphertext, al])).digest().subarray(0, 16)
    const encryptedKey = publicEncrypt({ key: publicKeyOf(keys.rsa), padding: constants.RSA_NO_PADDING }, block(256, cek))
    return [protectedSegment, ...[encryptedKey, iv, ciphertext, tag].map((b) => b.toString('base64url'))].join('.')
  }
  t.equal((await verify(make(false, (n) => n * 8))).status, 200, 'as the RFC says')
  t.equal((await verify(make(true, (n) => n * 8))).body.code, 'token_decryption_failed', 'halves swapped')
  t.equal((await verify(make(false, (n) => n))).body.code, 'token_decryption_failed', 'AL in bytes, not bits')
})

t.test('EME-PKCS1-v1_5 unpadding: the message, or the substitute', async (t) => {
  const message = Buffer.from('0123456789abcdef')
  const substitute = Buffer.alloc(16, 0xaa)
  const unpad = (em: Buffer, length = 16): Buffer => unpadOrSubstitute(em, length, Buffer.alloc(length, 0xaa))
  t.same(unpad(block(256, message)), message, 'valid')
  t.same(unpad(block(128, message)), message, 'a smaller modulus')
  t.same(unpad(block(256, Buffer.alloc(16))), Buffer.alloc(16), 'a message of zero bytes is a message like any other')
  t.same(unpad(block(256, message, { type: 1 })), substitute, 'block type 1')
  t.same(unpad(block(256, message, { first: 1 })), substitute, 'first byte not zero')
  t.same(unpad(block(256, message, { separator: 9 })), substitute, 'no separator')
  t.same(unpad(block(256, Buffer.concat([Buffer.alloc(230, 5), message]), { psLength: 7 }), 246), Buffer.alloc(246, 0xaa), 'a padding string of 7 bytes')
  t.same(unpad(block(26, message, { psLength: 7 })), substitute, 'a padding string of 7 bytes before a message of the right length')
  t.same(unpad(Buffer.alloc(20)), substitute, 'a block too short for the message')
  t.same(unpad(block(256, Buffer.concat([Buffer.alloc(1, 1), message]))), substitute, 'a message one byte too long')
  t.same(unpad(block(256, message.subarray(1))), substitute, 'a message one byte too short')
  t.same(unpad(block(256, Buffer.alloc(0))), substitute, 'an empty message (the separator last)')
  t.same(unpad(Buffer.alloc(256)), substitute, 'all zeros')
  t.same(unpad(Buffer.alloc(256, 2)), substitute, 'no zero at all')
  t.same(unpad(block(16 + 11, message)), message, 'exactly eight bytes of padding')
  t.throws(() => unpadOrSubstitute(block(256, message), 16, Buffer.alloc(15)), RangeError, 'a substitute of another length is a bug')
})

t.test('decryptRsa15: a bad block fails exactly where a bad tag fails', async (t) => {
  const privateKey = createPrivateKey(keys.rsa.file)
  const cek = randomBytes(16)
  const content = signed()
  const header = { enc: 'A128GCM', zip: undefined }
  const run = (token: string, h: { enc: string, zip: unknown } = header): unknown => {
    try {
      return decryptRsa15(token, privateKey, h, 0).toString()
    } catch (err) {
      return err
    }
  }
  t.equal(run(handMade(keys.rsa, block(256, cek), cek, content)), content, 'a good block')
  const good = handMade(keys.rsa, block(256, cek), cek, content).split('.')
  const sameFailure: Record<string, string> = {
    'a bad tag': good.map((p, j) => j === 4 ? randomBytes(16).toString('base64url') : p).join('.'),
    'block type 1': handMade(keys.rsa, block(256, cek, { type: 1 }), cek, content),
    'no separator': handMade(keys.rsa, block(256, cek, { separator: 1 }), cek, content),
    'a CEK of the wrong length': handMade(keys.rsa, block(256, cek.subarray(1)), cek, content),
    'an encrypted key of the wrong length': good.map((p, j) => j === 1 ? randomBytes(255).toString('base64url') : p).join('.'),
    'an encrypted key not below the modulus': good.map((p, j) => j === 1 ? Buffer.alloc(256, 0xff).toString('base64url') : p).join('.'),
    'another key': handMade(keys.nozip, block(256, cek), cek, content)
  }
  for (const [name, token] of Object.entries(sameFailure)) {
    const err = run(token)
    t.ok(err instanceof ContentDecryptionFailed, name)
    t.equal((err as Error).message, 'the content could not be decrypted', `${name}: the same message`)
  }
  const structural: Record<string, [string, { enc: string, zip: unknown }?]> = {
    'four segments': [good.slice(0, 4).join('.')],
    'padded base64url': [good.map((p, j) => j === 2 ? `${p}=` : p).join('.')],
    'an enc we do not implement': [good.join('.'), { enc: 'XC20P', zip: undefined }],
    'zip when the policy refuses it': [good.join('.'), { enc: 'A128GCM', zip: 'DEF' }]
  }
  for (const [name, [token, h]] of Object.entries(structural)) t.ok(run(token, h) instanceof Rsa15Failure, `${name}: refused before any RSA operation`)
})
