/**
 * Encrypted ID tokens (JWE) made by jose: every allowed algorithm decrypts and the inner token is verified
 * exactly like an unencrypted one; the refused algorithms, compression and tampering all fail with one uniform
 * answer; key files, rotation and the verified-token cache.
 */
import { createCipheriv, randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { ConfigError, loadConfig } from '../src/config/load.js'
import { CONTENT_ENCRYPTION_ALGORITHMS, DEFAULT_KEY_MANAGEMENT_ALGORITHMS } from '../src/config/types.js'
import { configFor, configProblems } from './helpers/config.js'
import { matchExactly } from './helpers/exact-match.js'
import { ecKey, encrypt, fakeJwe, rsaKey, secretKey, type EncryptionKey } from './helpers/jwe.js'
import { b64, idTokenClaims, jwksOf, makeKey, mint, nowSeconds } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const SYM = 'https://sym.example.com'
const PLAIN = 'https://plain.example.com'
const AUD = 'client-a'
const signer = makeKey('ES256')

const keys = {
  rsa: rsaKey(),
  rsaPkcs1: rsaKey({ format: 'pkcs1' }),
  rsaNext: rsaKey({ format: 'jwk', kid: 'enc-2' }),
  p256: ecKey('P-256', { format: 'jwk', kid: 'ec-1' }),
  p384: ecKey('P-384', { format: 'sec1' }),
  p521: ecKey('P-521'),
  x25519: ecKey('X25519'),
  dir: secretKey(32, 'dir-1'),
  password: secretKey(24, 'pw-1')
}
const files: Record<string, string> = {}
const dir = t.testdir(Object.fromEntries(Object.entries(keys).map(([name, key]) => [`${name}.key`, key.file])))
for (const name of Object.keys(keys)) files[name] = join(dir, `${name}.key`)

const tokenCacheEvents: boolean[] = []
const config = configFor([
  { id: 'enc', issuer: ISS, audiences: [AUD], jwks: jwksOf(signer), decryptionKeys: ['rsa', 'rsaPkcs1', 'rsaNext', 'p256', 'p384', 'p521', 'x25519'].map((k) => files[k]) },
  {
    id: 'sym',
    issuer: SYM,
    audiences: [AUD],
    jwks: jwksOf(signer),
    decryptionKeys: [files.dir, files.password],
    keyManagementAlgorithms: ['dir', 'PBES2-HS256+A128KW', 'PBES2-HS384+A192KW', 'PBES2-HS512+A256KW'],
    contentEncryptionAlgorithms: ['A256GCM', 'A128CBC-HS256', 'A128GCM'],
    maxPbes2Count: 2000,
    allowCompressedTokens: true
  },
  { id: 'plain', issuer: PLAIN, audiences: [AUD], jwks: jwksOf(signer) }
])
const app = await buildApp(config, { events: { tokenCache: (e) => { tokenCacheEvents.push(e.hit) } } })
t.teardown(() => app.close())

async function verify (token: string, extra: Record<string, unknown> = {}) {
  const res = await app.inject({ method: 'POST', url: '/verify', payload: { token, ...extra } })
  return { status: res.statusCode, body: res.json() }
}

const signed = (iss = ISS, extra: Record<string, unknown> = {}): string => mint(signer, idTokenClaims(iss, AUD, { jti: Math.random().toString(36), ...extra }))

t.test('the key files resolve into the issuer\'s decryption policy', async (t) => {
  const enc = config.issuers[0]!.decryption!
  t.equal(enc.keys.length, 7)
  t.same(enc.keyManagementAlgorithms, DEFAULT_KEY_MANAGEMENT_ALGORITHMS)
  t.same(enc.contentEncryptionAlgorithms, CONTENT_ENCRYPTION_ALGORITHMS)
  t.equal(enc.maxPbes2Count, 10000)
  t.equal(enc.maxDecompressedBytes, 0, 'compressed tokens refused by default')
  t.equal(enc.keys.find((k) => k.kid === 'enc-2')?.key.asymmetricKeyType, 'rsa')
  const sym = config.issuers[1]!.decryption!
  t.equal(sym.maxDecompressedBytes, config.server.maxTokenBytes)
  t.equal(config.issuers[2]!.decryption, undefined)
  t.equal(JSON.stringify(enc), JSON.stringify({ ...enc, keys: enc.keys.map((k) => ({ ...k, key: {} })) }), 'no key material when serialized')
})

t.test('every allowed key management algorithm with every content encryption', async (t) => {
  const cases: Array<[string, EncryptionKey]> = [
    ['RSA-OAEP', keys.rsa], ['RSA-OAEP-256', keys.rsa], ['RSA-OAEP-256', keys.rsaPkcs1], ['RSA-OAEP', keys.rsaNext],
    ['ECDH-ES', keys.p256], ['ECDH-ES+A128KW', keys.p256], ['ECDH-ES+A192KW', keys.p256], ['ECDH-ES+A256KW', keys.p256],
    ['ECDH-ES', keys.p384], ['ECDH-ES+A256KW', keys.p521], ['ECDH-ES', keys.x25519], ['ECDH-ES+A128KW', keys.x25519]
  ]
  for (const [alg, key] of cases) {
    for (const enc of CONTENT_ENCRYPTION_ALGORITHMS) {
      const res = await verify(await encrypt(signed(), key, { alg, enc }))
      t.equal(res.status, 200, `${alg} ${enc}: ${res.body.code as string}`)
      t.equal(res.body.issuer.id, 'enc')
    }
  }
})

t.test('the opted-in algorithms: dir, PBES2 (bounded), compressed content (bounded)', async (t) => {
  for (const enc of ['A256GCM', 'A128CBC-HS256']) {
    t.equal((await verify(await encrypt(signed(SYM), keys.dir, { alg: 'dir', enc }))).status, 200, `dir ${enc}`)
  }
  for (const alg of ['PBES2-HS256+A128KW', 'PBES2-HS384+A192KW', 'PBES2-HS512+A256KW']) {
    t.equal((await verify(await encrypt(signed(SYM), keys.password, { alg, enc: 'A128GCM', p2c: 2000 }))).status, 200, alg)
  }
  const costly = await verify(await encrypt(signed(SYM), keys.password, { alg: 'PBES2-HS256+A128KW', enc: 'A128GCM', p2c: 2001 }))
  t.equal(costly.body.code, 'token_decryption_failed', 'p2c above maxPbes2Count')
  const zipped = await verify(await encrypt(signed(SYM), keys.dir, { alg: 'dir', enc: 'A256GCM', zip: 'DEF' }))
  t.equal(zipped.status, 200, 'compressed content when allowed')
  // A compression bomb: a small token that inflates past server.maxTokenBytes.
  const bomb = `${b64({ alg: 'ES256' })}.${'A'.repeat(200000)}.sig`
  const bombToken = await encrypt(bomb, keys.dir, { alg: 'dir', enc: 'A256GCM', zip: 'DEF' })
  t.ok(bombToken.length < config.server.maxTokenBytes, 'the bomb itself is small')
  t.equal((await verify(bombToken)).body.code, 'token_decryption_failed', 'inflated size capped')
})

t.test('the refused algorithms, compression and keys answer one uniform failure', async (t) => {
  const refused: Record<string, string> = {
    'RSA1_5 without the opt-in': fakeJwe({ alg: 'RSA1_5', enc: 'A128CBC-HS256', cty: 'JWT' }),
    'PBES2 without opt-in': await encrypt(signed(), keys.password, { alg: 'PBES2-HS256+A128KW', enc: 'A128GCM' }),
    'dir without opt-in': await encrypt(signed(), keys.dir, { alg: 'dir', enc: 'A256GCM' }),
    'zip without opt-in': await encrypt(signed(), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM', zip: 'DEF' }),
    'A128KW (not supported)': await encrypt(signed(), secretKey(16), { alg: 'A128KW', enc: 'A128GCM' }),
    'A256GCMKW (not supported)': await encrypt(signed(), secretKey(32), { alg: 'A256GCMKW', enc: 'A128GCM' }),
    'enc not in the policy': await encrypt(signed(SYM), keys.password, { alg: 'PBES2-HS256+A128KW', enc: 'A256CBC-HS512', p2c: 1000 }),
    'an unknown key': await encrypt(signed(), rsaKey(), { alg: 'RSA-OAEP-256', enc: 'A256GCM' }),
    'a kid of none of our keys, all keys named': await encrypt(signed(SYM), secretKey(32), { alg: 'dir', enc: 'A256GCM', kid: 'unknown' }),
    'the right key under the wrong kid': await encrypt(signed(SYM), keys.dir, { alg: 'dir', enc: 'A256GCM', kid: 'pw-1' }),
    'alg none': fakeJwe({ alg: 'none', enc: 'A256GCM' }),
    'no enc': fakeJwe({ alg: 'RSA-OAEP' }),
    'crit': fakeJwe({ alg: 'RSA-OAEP-256', enc: 'A256GCM', crit: ['exp'], exp: 1 }),
    'header not JSON': `${Buffer.from('{"alg":').toString('base64url')}.a.b.c.d`,
    'header padded': `${b64({ alg: 'RSA-OAEP', enc: 'A256GCM' })}=.a.b.c.d`,
    'header an array': `${b64([1])}.a.b.c.d`,
    'kid not a string': fakeJwe({ alg: 'RSA-OAEP', enc: 'A256GCM', kid: 5 }),
    'empty segments': '....'
  }
  const good = await encrypt(signed(), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM' })
  const parts = good.split('.')
  const flip = (i: number): string => parts.map((p, j) => j === i ? (p.startsWith('A') ? 'B' : 'A') + p.slice(1) : p).join('.')
  refused['tampered encrypted key'] = flip(1)
  refused['tampered iv'] = flip(2)
  refused['tampered ciphertext'] = flip(3)
  refused['tampered tag'] = flip(4)
  refused['another header'] = [b64({ alg: 'RSA-OAEP-256', enc: 'A256GCM', cty: 'jwt' }), ...parts.slice(1)].join('.')
  // The same bytes spelled another way: each would be another valid token (test/jwe-keys.test.ts has them all).
  const respell = (i: number, segment: string): string => parts.map((p, j) => j === i ? segment : p).join('.')
  refused['padded tag'] = respell(4, `${parts[4]!}==`)
  refused['a space in the ciphertext'] = respell(3, `${parts[3]!.slice(0, 8)} ${parts[3]!.slice(8)}`)
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  // A 16-byte tag is 22 characters: the last one carries 4 spare bits.
  refused['spare bits set in the tag'] = respell(4, parts[4]!.slice(0, -1) + alphabet[alphabet.indexOf(parts[4]!.at(-1)!) | 1]!)

  const answers = new Set<string>()
  for (const [name, token] of Object.entries(refused)) {
    const res = await verify(token)
    t.same([res.status, res.body.code], [401, 'token_decryption_failed'], name)
    t.notOk('issuer' in res.body || 'claim' in res.body, `${name}: no detail`)
    const { requestId: _, ...rest } = res.body
    answers.add(JSON.stringify(rest))
  }
  t.equal(answers.size, 1, 'the same answer whatever failed (no oracle)')
})

t.test('a protected header that names a member twice is refused, though the token decrypts', async (t) => {
  // dir + A256GCM by hand, so that the header's exact text is ours (jose's CompactEncrypt writes JSON.stringify's).
  const seal = (headerText: string): string => {
    const protectedHeader = Buffer.from(headerText).toString('base64url')
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', keys.dir.encryptTo as Uint8Array, iv)
    cipher.setAAD(Buffer.from(protectedHeader, 'ascii'))
    const ciphertext = Buffer.concat([cipher.update(signed(SYM)), cipher.final()])
    return [protectedHeader, '', iv.toString('base64url'), ciphertext.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.')
  }
  t.equal((await verify(seal('{"alg":"dir","enc":"A256GCM","kid":"dir-1"}'))).status, 200, 'the same token, each member once')
  t.equal((await verify(seal('{ "alg" : "dir" , "enc" : "A256GCM" , "kid" : "dir-1" , "note" : "\\":" }'))).status, 200, 'spaced out, `\\":` in a value')
  for (const header of [
    '{"alg":"dir","enc":"A256GCM","kid":"pw-1","kid":"dir-1"}',
    '{"alg":"RSA-OAEP","alg":"dir","enc":"A256GCM","kid":"dir-1"}',
    '{"alg":"dir","enc":"A256GCM","\\u0065nc":"A256GCM","kid":"dir-1"}'
  ]) {
    const res = await verify(seal(header))
    t.same([res.status, res.body.code], [401, 'token_decryption_failed'], header)
  }
})

t.test('a protected header nested thousands deep (no depth check before its JSON.parse) is refused like any other', async (t) => {
  // 5,800 levels fit a 16 KiB token; the duplicate-member check must not recurse once per level (a stack overflow).
  for (const header of ['['.repeat(5800) + ']'.repeat(5800), '[{"a":'.repeat(1200) + '1' + '}]'.repeat(1200)]) {
    const token = [Buffer.from(header).toString('base64url'), '', 'AAAAAAAAAAAAAAAA', 'AAAA', 'AAAAAAAAAAAAAAAAAAAAAA'].join('.')
    t.ok(token.length <= config.server.maxTokenBytes, 'within maxTokenBytes')
    const res = await verify(token)
    t.same([res.status, res.body.code], [401, 'token_decryption_failed'], header.slice(0, 10))
  }
})

t.test('the content must be a signed ID token, verified like any other', async (t) => {
  const claims = idTokenClaims(ISS, AUD)
  const notSigned: Record<string, string> = {
    'a bare claim set': await encrypt(JSON.stringify(claims), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM' }),
    'an unsecured JWT (alg none)': await encrypt(`${b64({ alg: 'none' })}.${b64(claims)}.`, keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM' }),
    'another JWE inside': await encrypt(await encrypt(signed(), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM' }), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM' }),
    'cty that is not JWT': await encrypt(signed(), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM', cty: 'json' }),
    'not UTF-8': '' // filled below
  }
  const { CompactEncrypt } = await import('jose')
  notSigned['not UTF-8'] = await new CompactEncrypt(new Uint8Array([0xff, 0xfe, 0x2e, 0x2e])).setProtectedHeader({ alg: 'RSA-OAEP-256', enc: 'A256GCM' }).encrypt(keys.rsa.encryptTo)
  for (const [name, token] of Object.entries(notSigned)) {
    t.equal((await verify(token)).body.code, 'token_not_signed', name)
  }
  t.equal((await verify(await encrypt(signed(), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM', cty: null }))).status, 200, 'cty may be left out')
  t.equal((await verify(await encrypt(signed(), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM', cty: 'application/jwt' }))).status, 200)

  const other = makeKey('ES256', { kid: signer.kid })
  const forged = mint(other, idTokenClaims(ISS, AUD))
  t.equal((await verify(await encrypt(forged, keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM' }))).body.code, 'signature_invalid')
  const expired = signed(ISS, { exp: nowSeconds() - 3600, iat: nowSeconds() - 7200 })
  t.equal((await verify(await encrypt(expired, keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM' }))).body.code, 'token_expired')
  t.equal((await verify(await encrypt(signed(ISS, { aud: 'other' }), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM' }))).body.code, 'audience_mismatch')
  const nonce = await verify(await encrypt(signed(ISS, { nonce: 'n1' }), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM' }), { nonce: 'n2' })
  t.equal(nonce.body.code, 'nonce_mismatch', 'request checks apply to the inner token')
  t.equal((await verify(await encrypt(`${b64({ alg: 'ES256' })}.!!.sig`, keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM' }))).body.code, 'token_malformed')
})

t.test('the decrypting key must belong to the inner token\'s issuer', async (t) => {
  // The plain issuer takes no encrypted tokens; sym takes only its own keys and policy.
  t.equal((await verify(await encrypt(signed(PLAIN), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM' }))).body.code, 'token_decryption_failed')
  t.equal((await verify(await encrypt(signed(SYM), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM' }))).body.code, 'token_decryption_failed')
  t.equal((await verify(await encrypt(signed(ISS), keys.dir, { alg: 'dir', enc: 'A256GCM' }))).body.code, 'token_decryption_failed')
  t.equal((await verify(signed(PLAIN))).status, 200, 'unencrypted tokens are untouched')
})

t.test('requireEncryption: an issuer entry that refuses unencrypted ID tokens, beside one of the same provider that takes them', async (t) => {
  const ENCRYPTING = 'encrypting-client'
  const agreed = await buildApp(configFor([
    { id: 'agreed', issuer: ISS, audiences: [ENCRYPTING], jwks: jwksOf(signer), decryptionKeys: [files.rsa], requireEncryption: true },
    { id: 'open', issuer: ISS, audiences: [AUD], jwks: jwksOf(signer) }
  ]))
  t.teardown(() => agreed.close())
  const check = async (token: string): Promise<{ status: number, code: unknown, issuer: unknown }> => {
    const res = await agreed.inject({ method: 'POST', url: '/verify', payload: { token } })
    const body = res.json() as { code?: unknown, identity?: { issuer?: { id?: unknown } }, issuer?: { id?: unknown } }
    return { status: res.statusCode, code: body.code, issuer: body.issuer?.id ?? body.identity?.issuer?.id }
  }
  const forEncrypting = mint(signer, idTokenClaims(ISS, ENCRYPTING, { jti: 'e1' }))
  const encrypted = await encrypt(forEncrypting, keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM' })
  for (let i = 0; i < 3; i++) t.equal((await check(encrypted)).status, 200, `encrypted: accepted (${i === 0 ? 'verified' : 'again, from the cache'})`)
  for (let i = 0; i < 3; i++) t.match(await check(forEncrypting), { status: 401, code: 'token_not_encrypted' }, 'the same ID token unencrypted: refused, every time (never cached)')
  t.equal((await check(mint(signer, idTokenClaims(ISS, AUD)))).status, 200, 'the other client\'s unencrypted token: the other entry takes it')
  const res = await agreed.inject({ method: 'POST', url: '/verify', payload: { token: forEncrypting } })
  t.match(res.json(), { code: 'token_not_encrypted', message: /not encrypted/, hint: /requireEncryption/ }, 'the answer says what to change')
  const introspected = await agreed.inject({ method: 'POST', url: '/introspect', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `token=${forEncrypting}` })
  t.same(introspected.json(), { active: false }, '/introspect: not active')
  t.match(configProblems({ issuers: [{ id: 'x', issuer: ISS, audiences: [AUD], requireEncryption: true }] }), [/requireEncryption: only applies to encrypted ID tokens; set decryptionKeys too/])
  t.equal(config.issuers[0]?.decryption?.required, false, 'off by default')
})

t.test('the verified-token cache is keyed by the JWE and keeps checking claims', async (t) => {
  const token = await encrypt(signed(ISS, { nonce: 'abc' }), keys.p256, { alg: 'ECDH-ES', enc: 'A256GCM' })
  tokenCacheEvents.length = 0
  t.equal((await verify(token)).status, 200)
  t.equal((await verify(token)).status, 200)
  t.equal((await verify(token)).status, 200)
  t.same(tokenCacheEvents, [false, false, true], 'the second verification caches the token, the third is a hit')
  t.equal((await verify(token, { nonce: 'other' })).body.code, 'nonce_mismatch', 'per-request checks on a hit')
  t.equal((await verify(token, { mode: 'id_token_hint' })).status, 200)
})

t.test('size and the issuers without keys', async (t) => {
  const huge = await encrypt(signed(ISS, { padding: 'x'.repeat(20000) }), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM' })
  t.equal((await verify(huge)).body.code, 'token_too_large')
  const none = await buildApp(configFor([{ id: 'plain', issuer: PLAIN, audiences: [AUD], jwks: jwksOf(signer) }]))
  t.teardown(() => none.close())
  const res = await none.inject({ method: 'POST', url: '/verify', payload: { token: await encrypt(signed(PLAIN), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A256GCM' }) } })
  t.equal(res.json().code, 'token_encrypted', 'no issuer decrypts: the token is reported as encrypted')
})

t.test('key file and policy configuration problems', async (t) => {
  const bad = t.testdir({
    'public.pem': (keys.rsa.encryptTo as import('node:crypto').KeyObject).export({ format: 'pem', type: 'spki' }) as string,
    'encrypted.pem': '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n',
    'garbage.pem': 'hello',
    'broken.pem': '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
    'small.pem': rsaKey({ bits: 1024 }).file,
    'ed25519.pem': makeKey('EdDSA').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
    'sig.jwk': JSON.stringify({ ...JSON.parse(keys.p256.file), use: 'sig' }),
    'public.jwk': JSON.stringify({ kty: 'RSA', n: 'AQAB', e: 'AQAB' }),
    'empty.jwks': JSON.stringify({ keys: [] }),
    'bad.json': '{ nope',
    'short.jwk': JSON.stringify({ kty: 'oct', k: 'AAAA' }),
    'pinned.jwk': JSON.stringify({ ...JSON.parse(rsaKey({ format: 'jwk' }).file), alg: 'RSA-OAEP-512' }),
    'set.jwks': JSON.stringify({ keys: [JSON.parse(keys.p256.file), JSON.parse(keys.rsaNext.file)] })
  })
  const problems = (issuer: Record<string, unknown>): string[] => {
    return configProblems({ issuers: [{ id: 'a', issuer: ISS, audiences: ['x'], ...issuer }] })
  }
  const at = (name: string): string => join(bad, name)
  t.same(problems({ decryptionKeys: [at('set.jwks')] }), [], 'a JWK set of private keys')
  matchExactly(t, problems({ decryptionKeys: ['public.pem', 'encrypted.pem', 'garbage.pem', 'broken.pem', 'small.pem', 'ed25519.pem', 'sig.jwk', 'public.jwk', 'empty.jwks', 'bad.json', 'missing.pem'].map(at) }), [
    /decryptionKeys\[0\]: key file ".*public\.pem": contains a public key or certificate; expected the private key alone \(remove the CERTIFICATE or PUBLIC KEY block/,
    /decryptionKeys\[1\]: key file ".*encrypted\.pem": is a passphrase-protected PEM key/,
    /decryptionKeys\[2\]: key file ".*garbage\.pem": expected a PEM private key/,
    /decryptionKeys\[3\]: key file ".*broken\.pem": is not a valid PEM private key/,
    /decryptionKeys\[4\]: key file ".*small\.pem": an RSA key of 1024 bits; expected at least 2048/,
    /decryptionKeys\[5\]: key file ".*ed25519\.pem": a key of type ed25519; expected RSA/,
    /decryptionKeys\[6\]: key file ".*sig\.jwk": has "use": "sig"/,
    /decryptionKeys\[7\]: key file ".*public\.jwk": is a public key/,
    /decryptionKeys\[8\]: key file ".*empty\.jwks": the JWK set has no keys/,
    /decryptionKeys\[9\]: key file ".*bad\.json": .*not valid JSON/,
    /decryptionKeys\[10\]: cannot read the key file ".*missing\.pem": no such file/
  ])
  matchExactly(t, problems({ decryptionKeys: [at('short.jwk')], keyManagementAlgorithms: ['dir'] }), [/a secret of 3 bytes; expected at least 16/])
  // Every token that fits a key costs its private-key operation before anything is proven: bounded like signature
  // keys. test/fixtures/rsa-8200-private.pem is a throwaway key made for this test (generating one takes ~12 s).
  matchExactly(t, problems({ decryptionKeys: [join(import.meta.dirname, 'fixtures', 'rsa-8200-private.pem')] }), [/an RSA key of 8200 bits; expected at most 8192/])
  matchExactly(t, problems({ decryptionKeys: [files.dir] }), [/a secret \(oct\) key, used only with dir or PBES2-\*, and keyManagementAlgorithms allows none of them/], 'a secret needs the opt-in')
  matchExactly(t, problems({ decryptionKeys: [files.rsa], keyManagementAlgorithms: ['ECDH-ES'] }), [/an RSA key, used only with RSA-OAEP\* or RSA1_5, and keyManagementAlgorithms allows none/])
  matchExactly(t, problems({ decryptionKeys: [at('pinned.jwk')] }), [/a key pinned to "RSA-OAEP-512", which keyManagementAlgorithms does not allow/])
  // RSA1_5 is accepted when listed (test/jwe-rsa1-5.test.ts); it used to be refused here.
  const listed = problems({ decryptionKeys: [files.rsa], keyManagementAlgorithms: ['RSA1_5', 'A128KW', 'RSA-OAEP'], contentEncryptionAlgorithms: ['A128GCM', 'XC20P'] })
  t.equal(listed.length, 2)
  matchExactly(t, listed, [
    /keyManagementAlgorithms\[1\]: unsupported JWE algorithm "A128KW"; expected one of RSA-OAEP, RSA-OAEP-256, ECDH-ES/,
    /contentEncryptionAlgorithms\[1\]: unsupported JWE content encryption "XC20P"/
  ])
  matchExactly(t, problems({ keyManagementAlgorithms: ['dir'], allowCompressedTokens: true, maxPbes2Count: 5000 }), [
    /keyManagementAlgorithms: only applies to encrypted ID tokens; set decryptionKeys too/,
    /allowCompressedTokens: only applies/,
    /maxPbes2Count: only applies/
  ])
  matchExactly(t, problems({ decryptionKeys: [files.rsa], maxPbes2Count: 10 }), [/maxPbes2Count: expected an integer from 1000 to 1000000, got 10/])
  const message = problems({ decryptionKeys: [at('sig.jwk')] }).join('\n')
  t.notMatch(message, JSON.parse(keys.p256.file).d as string, 'key material never in messages')
})

t.test('environment-only mode: OIDC_DECRYPTION_KEY_FILE, one path or several', async (t) => {
  const env = { OIDC_ISSUER: ISS, OIDC_AUDIENCE: AUD, OIDC_JWKS_URI: 'https://idp.example.com/jwks' }
  const one = loadConfig({ argv: [], env: { ...env, OIDC_DECRYPTION_KEY_FILE: files.rsa } })
  t.equal(one.issuers[0]!.decryption?.keys.length, 1)
  const several = loadConfig({ argv: [], env: { ...env, OIDC_DECRYPTION_KEY_FILE: `${files.rsa}, ${files.p256}` } })
  t.equal(several.issuers[0]!.decryption?.keys.length, 2)
  t.equal(loadConfig({ argv: [], env }).issuers[0]!.decryption, undefined)
  const missing = join(dir, 'nope.pem')
  writeFileSync(join(dir, 'public.pem'), 'hello')
  try {
    loadConfig({ argv: [], env: { ...env, OIDC_DECRYPTION_KEY_FILE: `${files.rsa},${missing}` } })
    t.fail('expected a ConfigError')
  } catch (err) {
    t.ok(err instanceof ConfigError)
    matchExactly(t, (err as ConfigError).problems, [/^environment: OIDC_DECRYPTION_KEY_FILE \(item 2\): cannot read the key file ".*nope\.pem": no such file$/])
  }
  const cfg = t.testdir({ 'c.yaml': 'issuers: [{ id: a, issuer: "https://a.example", audiences: [x] }]\n' })
  try {
    loadConfig({ argv: ['--config', join(cfg, 'c.yaml')], env: { OIDC_DECRYPTION_KEY_FILE: files.rsa } })
    t.fail('expected a ConfigError')
  } catch (err) {
    matchExactly(t, (err as ConfigError).problems, [/OIDC_DECRYPTION_KEY_FILE: ambiguous/])
  }
})
