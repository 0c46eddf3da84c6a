/**
 * Which decryption keys a token reaches, and the key configurations refused because some key could never
 * decrypt: the kid (a key's own, or its RFC 7638 thumbprint) selects exactly; a token without a kid, or with
 * one no key has, tries every fitting key of every issuer, so the configuration refuses more fitting keys than
 * are tried per token; keys pinned to another type's alg, dir secrets of no allowed length, PEM files with
 * several keys, JWK secrets that are not strict base64url; and every segment of a JWE read strictly.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto'
import { join } from 'node:path'
import { calculateJwkThumbprint } from 'jose'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { parseDecryptionKeyFile } from '../src/config/decryption-keys.js'
import type { DecryptionConfig, DecryptionKey, IssuerConfig } from '../src/config/types.js'
import { MAX_DECRYPTION_ATTEMPTS, TokenDecryptor } from '../src/core/jwe.js'
import { silentLogger } from '../src/core/logger.js'
import { configFor, configProblems } from './helpers/config.js'
import { matchExactly } from './helpers/exact-match.js'
import { ecKey, encrypt, fakeJwe, rsaKey, secretKey, type EncryptionKey } from './helpers/jwe.js'
import { generatePair, idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const AUD = 'client-a'
const signer = makeKey('ES256')
const I = (n: number): string => `https://i${n}.example.com`
const signed = (iss: string): string => mint(signer, idTokenClaims(iss, AUD, { jti: Math.random().toString(36) }))

const pem = Array.from({ length: 5 }, () => rsaKey())
const named = Array.from({ length: 4 }, (_, i) => rsaKey({ format: 'jwk', kid: `k${i}` }))
const p256 = ecKey('P-256')
const x25519 = ecKey('X25519')
const dir32 = secretKey(32)
const files: Record<string, string> = {
  ...Object.fromEntries(pem.map((k, i) => [`pem${i}.key`, k.file])),
  ...Object.fromEntries(named.map((k, i) => [`named${i}.key`, k.file])),
  'p256.key': p256.file,
  'x25519.key': x25519.file,
  'dir32.key': dir32.file
}
const dir = t.testdir(files)
const f = (name: string): string => join(dir, `${name}.key`)

async function verifyWith (app: Awaited<ReturnType<typeof buildApp>>, token: string): Promise<{ status: number, code: unknown }> {
  const res = await app.inject({ method: 'POST', url: '/verify', payload: { token } })
  return { status: res.statusCode, code: res.json().code }
}

const problemsOf = (issuers: Array<Record<string, unknown>>): string[] => configProblems({ issuers })
const issuer = (n: number, extra: Record<string, unknown>): Record<string, unknown> => ({ id: `i${n}`, issuer: I(n), audiences: [AUD], jwks: jwksOf(signer), ...extra })

t.test('a key without a kid gets its RFC 7638 thumbprint, which selects it exactly', async (t) => {
  const publicJwk = (key: EncryptionKey): Record<string, unknown> => (key.encryptTo as KeyObject).export({ format: 'jwk' }) as Record<string, unknown>
  for (const key of [pem[0]!, p256, x25519]) {
    const [read] = parseDecryptionKeyFile('k', key.file).keys
    t.equal(read?.kid, await calculateJwkThumbprint(publicJwk(key) as never, 'sha256'), 'the same thumbprint as jose computes')
  }
  const [kidLessJwk] = parseDecryptionKeyFile('k', JSON.stringify(createPrivateKey(pem[1]!.file).export({ format: 'jwk' }))).keys
  t.equal(kidLessJwk?.kid, await calculateJwkThumbprint(publicJwk(pem[1]!) as never, 'sha256'), 'a JWK without a kid too')
  t.equal(parseDecryptionKeyFile('k', named[0]!.file).keys[0]?.kid, 'k0', 'a JWK keeps its own kid')
  t.equal(parseDecryptionKeyFile('k', dir32.file).keys[0]?.kid, undefined, 'a secret gets none (its thumbprint would be a fast hash of it)')

  const app = await buildApp(configFor([issuer(1, { decryptionKeys: [f('pem0'), f('pem1')] })]))
  t.teardown(() => app.close())
  const thumbprint0 = await calculateJwkThumbprint(publicJwk(pem[0]!) as never, 'sha256')
  const thumbprint1 = await calculateJwkThumbprint(publicJwk(pem[1]!) as never, 'sha256')
  t.equal((await verifyWith(app, await encrypt(signed(I(1)), pem[0]!, { alg: 'RSA-OAEP-256', enc: 'A256GCM', kid: thumbprint0 }))).status, 200)
  t.equal((await verifyWith(app, await encrypt(signed(I(1)), pem[1]!, { alg: 'RSA-OAEP-256', enc: 'A256GCM', kid: thumbprint1 }))).status, 200)
  t.equal((await verifyWith(app, await encrypt(signed(I(1)), pem[1]!, { alg: 'RSA-OAEP-256', enc: 'A256GCM', kid: thumbprint0 }))).code,
    'token_decryption_failed', 'a kid that names one key selects that key only')
})

t.test('a token with a kid no key has, or none, is tried with every fitting key of every issuer', async (t) => {
  // Two issuers with a current and a previous key each; the provider names its keys its own way.
  const app = await buildApp(configFor([
    issuer(1, { decryptionKeys: [f('named0'), f('pem0')] }),
    issuer(2, { decryptionKeys: [f('pem1'), f('named1')] }),
    issuer(3, { decryptionKeys: [f('p256'), f('x25519')] })
  ]))
  t.teardown(() => app.close())
  const cases: Array<[number, string, EncryptionKey]> = [
    [1, 'named0', named[0]!], [1, 'pem0', pem[0]!], [2, 'pem1', pem[1]!], [2, 'named1', named[1]!], [3, 'p256', p256], [3, 'x25519', x25519]
  ]
  for (const [n, name, key] of cases) {
    for (const kid of [undefined, 'provider-kid']) {
      const alg = key === p256 || key === x25519 ? 'ECDH-ES' : 'RSA-OAEP'
      const res = await verifyWith(app, await encrypt(signed(I(n)), { ...key, kid: undefined }, { alg, enc: 'A128GCM', ...(kid !== undefined ? { kid } : {}) }))
      t.equal(res.status, 200, `issuer ${n}, key ${name}, kid ${String(kid)}: ${String(res.code)}`)
    }
  }
  // A kid that names a configured key selects it only: another key under that kid is not tried.
  t.equal((await verifyWith(app, await encrypt(signed(I(2)), pem[1]!, { alg: 'RSA-OAEP', enc: 'A128GCM', kid: 'k0' }))).code, 'token_decryption_failed')
})

t.test('more keys than are tried per token, for some kid-less header, are refused at load', async (t) => {
  const five = problemsOf([issuer(1, { decryptionKeys: pem.map((_, i) => f(`pem${i}`)) })])
  t.equal(five.length, 1, five.join('\n'))
  t.match(five[0], new RegExp(`^c\\.yaml: issuers\\[0\\]\\.decryptionKeys\\[4\\]: a token without a kid \\(or with a kid no key has\\) for RSA-OAEP, RSA-OAEP-256 fits 5 decryption keys of all issuers together \\(".*pem0\\.key", .*".*pem4\\.key"\\), but at most ${MAX_DECRYPTION_ATTEMPTS} keys are tried per token, so some would never decrypt one; expected at most ${MAX_DECRYPTION_ATTEMPTS}: remove retired keys`))

  // Across issuers: kid-bearing keys count too, and the report names the issuer whose key is past the cap.
  const across = problemsOf([
    issuer(1, { decryptionKeys: named.map((_, i) => f(`named${i}`)) }),
    issuer(2, { decryptionKeys: [f('p256'), f('pem0')] })
  ])
  t.equal(across.length, 1, across.join('\n'))
  t.match(across[0], /^c\.yaml: issuers\[1\]\.decryptionKeys\[1\]: a token without a kid .* for RSA-OAEP, RSA-OAEP-256 fits 5 decryption keys/)
  // Three issuers with two keys each: the review's repro, refused instead of silently unreachable.
  const three = problemsOf([0, 1, 2].map((n) => issuer(n, { decryptionKeys: [f(`pem${n}`), f(`named${n}`)] })))
  t.equal(three.length, 1)
  t.match(three[0], /issuers\[2\]\.decryptionKeys\[0\]: .*fits 6 decryption keys/)

  t.same(problemsOf([issuer(1, { decryptionKeys: pem.slice(0, 4).map((_, i) => f(`pem${i}`)) })]), [], 'four keys')
  t.same(problemsOf([
    issuer(1, { decryptionKeys: [f('pem0'), f('pem1'), f('pem2'), f('pem3')] }),
    issuer(2, { decryptionKeys: [f('pem0'), f('pem1'), f('p256'), f('x25519')] })
  ]), [], 'a key shared by issuers counts once, and EC keys of other curves do not fit RSA headers')
  t.same(problemsOf([
    issuer(1, { decryptionKeys: [f('pem0'), f('pem1'), f('pem2')], keyManagementAlgorithms: ['RSA-OAEP'] }),
    issuer(2, { decryptionKeys: [f('pem3'), f('pem4')], keyManagementAlgorithms: ['RSA-OAEP-256'] })
  ]), [], 'issuers whose policies share no alg')
  const dirs = t.testdir(Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`d${i}.jwk`, secretKey(i < 4 ? 32 : 16, `d${i}`).file])))
  const sym = { keyManagementAlgorithms: ['dir'] }
  t.same(problemsOf([issuer(1, { decryptionKeys: [0, 1, 2, 3, 4].map((i) => join(dirs, `d${i}.jwk`)), ...sym })]), [],
    'dir: only secrets of the length enc needs fit (four of 32 bytes, one of 16)')
  const crowdedDir = problemsOf([issuer(1, { decryptionKeys: [0, 1, 2, 3].map((i) => join(dirs, `d${i}.jwk`)), ...sym }), issuer(2, { decryptionKeys: [f('dir32')], ...sym })])
  t.equal(crowdedDir.length, 1)
  t.match(crowdedDir[0], /issuers\[1\]\.decryptionKeys\[0\]: a token without a kid \(or with a kid no key has\) for dir with A256GCM\/A128CBC-HS256 fits 5/)
  // ECDH-ES: each curve on its own.
  const ecs = Array.from({ length: 5 }, () => ecKey('P-256'))
  const ecDir = t.testdir(Object.fromEntries(ecs.map((k, i) => [`e${i}.pem`, k.file])))
  t.match(problemsOf([issuer(1, { decryptionKeys: ecs.map((_, i) => join(ecDir, `e${i}.pem`)) })]), [/decryptionKeys\[4\]: a token without a kid .* for ECDH-ES \(P-256\), ECDH-ES\+A128KW \(P-256\), .* fits 5 /])
})

t.test('the cap still holds, and says so, when a decryptor is given more keys than the configuration allows', async (t) => {
  const debug: string[] = []
  const logger = { ...silentLogger, debug: (obj: object) => { debug.push((obj as { reason: string }).reason) } }
  const keys: DecryptionKey[] = pem.map((k, i) => ({ file: `pem${i}`, kid: undefined, alg: undefined, key: createPrivateKey(k.file), fingerprint: `fp${i}` }))
  const decryption: DecryptionConfig = { keys, keyManagementAlgorithms: ['RSA-OAEP'], contentEncryptionAlgorithms: ['A128GCM'], maxPbes2Count: 1000, maxDecompressedBytes: 0, required: false }
  const decryptor = new TokenDecryptor([{ decryption } as IssuerConfig], logger)
  t.equal((await decryptor.decrypt(await encrypt('x.y.z', pem[3]!, { alg: 'RSA-OAEP', enc: 'A128GCM' }))).key.file, 'pem3')
  await t.rejects(decryptor.decrypt(await encrypt('x.y.z', pem[4]!, { alg: 'RSA-OAEP', enc: 'A128GCM' })), { code: 'token_decryption_failed' })
  t.match(debug.at(-1), /^candidates cut by the cap: 5 keys fit, only 4 were tried/)
  await t.rejects(decryptor.decrypt(await encrypt('x.y.z', rsaKey(), { alg: 'RSA-OAEP', enc: 'A128GCM' })), { code: 'token_decryption_failed' })
  t.match(debug.at(-1), /^candidates cut by the cap/, 'a token of no key: the same reason, as some keys were not tried')
})

t.test('the debug log says why a token did not decrypt: the step, what its header asked for, the keys tried', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const logger = { ...silentLogger, debug: (obj: object) => { lines.push(obj as Record<string, unknown>) } }
  const keys: DecryptionKey[] = pem.slice(0, 2).map((k, i) => ({ file: `/keys/pem${i}.pem`, kid: i === 0 ? 'enc-2025' : undefined, alg: undefined, key: createPrivateKey(k.file), fingerprint: `fp${i}` }))
  const decryption: DecryptionConfig = { keys, keyManagementAlgorithms: ['RSA-OAEP'], contentEncryptionAlgorithms: ['A128GCM'], maxPbes2Count: 1000, maxDecompressedBytes: 0, required: false }
  const decryptor = new TokenDecryptor([{ decryption } as IssuerConfig], logger)
  await t.rejects(decryptor.decrypt(await encrypt('x.y.z', rsaKey(), { alg: 'RSA-OAEP', enc: 'A128GCM', kid: 'enc-2023' })), { code: 'token_decryption_failed' })
  t.match(lines.at(-1), { reason: /^ERR_JWE_DECRYPTION_FAILED \(.+\)$/, alg: 'RSA-OAEP', enc: 'A128GCM', kid: 'enc-2023', keysTried: ['enc-2025', '/keys/pem1.pem'] }, 'a retired key: every key tried, none fits')
  await t.rejects(decryptor.decrypt(await encrypt('x.y.z', pem[0]!, { alg: 'RSA-OAEP', enc: 'A256GCM' })), { code: 'token_decryption_failed' })
  t.match(lines.at(-1), { reason: /^no configured key and policy accepts/, alg: 'RSA-OAEP', enc: 'A256GCM' }, 'an enc the policy does not allow: named')
  t.notOk('keysTried' in (lines.at(-1) as object), 'no key was tried')
  await t.rejects(decryptor.decrypt(fakeJwe({ alg: 'RSA-OAEP', enc: 'A128GCM', kid: 'k'.repeat(5000) })), { code: 'token_decryption_failed' })
  t.equal((lines.at(-1)?.kid as string).length, 65, 'the sender\'s kid is cut')
})

t.test('keys that could never decrypt are refused at load', async (t) => {
  const rsaJwk = JSON.parse(named[0]!.file) as Record<string, unknown>
  const ecJwk = createPrivateKey(p256.file).export({ format: 'jwk' })
  const secret = (bytes: number): string => Buffer.alloc(bytes, 7).toString('base64url')
  const bad = t.testdir({
    'rsa-ecdh.jwk': JSON.stringify({ ...rsaJwk, alg: 'ECDH-ES' }),
    'ec-oaep.jwk': JSON.stringify({ ...ecJwk, alg: 'RSA-OAEP' }),
    'oct-oaep.jwk': JSON.stringify({ kty: 'oct', k: secret(32), alg: 'RSA-OAEP' }),
    'dir20.jwk': JSON.stringify({ kty: 'oct', k: secret(20) }),
    'dir16.jwk': JSON.stringify({ kty: 'oct', k: secret(16) }),
    'dir20-pinned.jwk': JSON.stringify({ kty: 'oct', k: secret(20), alg: 'dir' }),
    'two.pem': pem[0]!.file + pem[1]!.file,
    'padded.jwk': JSON.stringify({ kty: 'oct', k: `${secret(32)}=` }),
    'spaced.jwk': JSON.stringify({ kty: 'oct', k: `${secret(16)} ${secret(16)}` }),
    'base64.jwk': JSON.stringify({ kty: 'oct', k: Buffer.alloc(32, 0xfb).toString('base64') }),
    'spare-bits.jwk': JSON.stringify({ kty: 'oct', k: `${secret(32).slice(0, -1)}F` })
  })
  const at = (name: string): string => join(bad, name)
  const one = (doc: Record<string, unknown>): string[] => problemsOf([issuer(0, doc)])

  t.same(one({ decryptionKeys: [at('rsa-ecdh.jwk')] }), [
    `c.yaml: issuers[0].decryptionKeys[0]: key file ${JSON.stringify(at('rsa-ecdh.jwk'))}: an RSA key, used only with RSA-OAEP* or RSA1_5, is pinned to "ECDH-ES", which it cannot serve; expected its "alg" to be one of those, or none`
  ])
  t.same(one({ decryptionKeys: [at('ec-oaep.jwk')] }), [
    `c.yaml: issuers[0].decryptionKeys[0]: key file ${JSON.stringify(at('ec-oaep.jwk'))}: an EC/X25519 key, used only with ECDH-ES*, is pinned to "RSA-OAEP", which it cannot serve; expected its "alg" to be one of those, or none`
  ])
  t.same(one({ decryptionKeys: [at('oct-oaep.jwk')], keyManagementAlgorithms: ['dir', 'RSA-OAEP'] }), [
    `c.yaml: issuers[0].decryptionKeys[0]: key file ${JSON.stringify(at('oct-oaep.jwk'))}: a secret (oct) key, used only with dir or PBES2-*, is pinned to "RSA-OAEP", which it cannot serve; expected its "alg" to be one of those, or none`
  ])

  // dir: the secret is the content key, so its length must be one an allowed enc uses.
  t.same(one({ decryptionKeys: [at('dir20.jwk')], keyManagementAlgorithms: ['dir'] }), [
    `c.yaml: issuers[0].decryptionKeys[0]: key file ${JSON.stringify(at('dir20.jwk'))}: a secret of 20 bytes, used only with dir, where the secret is the content key; expected the key length of an allowed contentEncryptionAlgorithms value (A128GCM 16, A192GCM 24, A256GCM 32, A128CBC-HS256 32, A192CBC-HS384 48, A256CBC-HS512 64 bytes)`
  ])
  t.same(one({ decryptionKeys: [at('dir16.jwk')], keyManagementAlgorithms: ['dir'], contentEncryptionAlgorithms: ['A256GCM', 'A128CBC-HS256'] }), [
    `c.yaml: issuers[0].decryptionKeys[0]: key file ${JSON.stringify(at('dir16.jwk'))}: a secret of 16 bytes, used only with dir, where the secret is the content key; expected the key length of an allowed contentEncryptionAlgorithms value (A256GCM 32, A128CBC-HS256 32 bytes)`
  ])
  t.equal(one({ decryptionKeys: [at('dir20-pinned.jwk')], keyManagementAlgorithms: ['dir', 'PBES2-HS256+A128KW'] }).length, 1, 'pinned to dir: a PBES2 policy does not help')
  t.same(one({ decryptionKeys: [at('dir20.jwk')], keyManagementAlgorithms: ['dir', 'PBES2-HS256+A128KW'] }), [], 'with PBES2 it is a password')
  t.same(one({ decryptionKeys: [at('dir16.jwk')], keyManagementAlgorithms: ['dir'] }), [], 'A128GCM')

  t.same(one({ decryptionKeys: [at('two.pem')] }), [
    `c.yaml: issuers[0].decryptionKeys[0]: key file ${JSON.stringify(at('two.pem'))}: holds 2 private keys; expected exactly one per file (list each key's file in decryptionKeys, or use a JWK set)`
  ])
  t.same(parseDecryptionKeyFile('two.pem', pem[0]!.file + pem[1]!.file).keys, [])
  // `openssl ecparam -genkey -name prime256v1` writes the curve's parameters before the SEC1 key: one key.
  const sec1 = generatePair('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'sec1' }) as string
  const withParameters = parseDecryptionKeyFile('ec.pem', `-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n${sec1}`)
  t.same([withParameters.keys.length, withParameters.problems], [1, []], 'EC PARAMETERS before a SEC1 key')

  for (const name of ['padded.jwk', 'spaced.jwk', 'base64.jwk', 'spare-bits.jwk']) {
    const problems = one({ decryptionKeys: [at(name)], keyManagementAlgorithms: ['dir'] })
    t.same(problems, [
      `c.yaml: issuers[0].decryptionKeys[0]: key file ${JSON.stringify(at(name))}: "k" is not base64url (RFC 7515 §2: the url-safe alphabet, no padding, no whitespace, canonical); expected the secret encoded as base64url`
    ], name)
  }
})

t.test('an EC private key must be a key pair: d in range, and x, y the point d gives', async (t) => {
  const ORDERS: Record<string, bigint> = {
    'P-256': 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    'P-384': 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    'P-521': 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n
  }
  for (const [curve, order] of Object.entries(ORDERS)) {
    const jwk = generatePair('ec', { namedCurve: curve }).privateKey.export({ format: 'jwk' })
    const other = generatePair('ec', { namedCurve: curve }).privateKey.export({ format: 'jwk' })
    const size = Buffer.from(jwk.d!, 'base64url').length
    const d = (value: bigint): string => Buffer.from(value.toString(16).padStart(size * 2, '0'), 'hex').toString('base64url')
    const read = (key: Record<string, unknown>) => parseDecryptionKeyFile('k.jwk', JSON.stringify(key))
    t.same([read(jwk).keys.length, read(jwk).problems], [1, []], `${curve}: a key pair`)
    for (const [name, bad, problem] of [
      ['d = 0', { ...jwk, d: d(0n) }, /"d" is not a private key of P-\d+/],
      ['d = the order', { ...jwk, d: d(order) }, /"d" is not a private key of P-\d+/],
      ['d past the order', { ...jwk, d: d(order + 1n) }, /"d" is not a private key of P-\d+/],
      ["another key's d", { ...jwk, d: other.d }, /public point \("x", "y"\) is not the one its "d" gives/]
    ] as const) {
      const result = read(bad)
      t.equal(result.keys.length, 0, `${curve}, ${name}: refused`)
      matchExactly(t, result.problems, [problem], `${curve}, ${name}`)
    }
  }
  // The checked keys still decrypt (the suite's own P-256 key, as PEM and through a whole token).
  const app = await buildApp(configFor([issuer(1, { decryptionKeys: [f('p256')] })]))
  t.teardown(() => app.close())
  t.equal((await verifyWith(app, await encrypt(signed(I(1)), p256, { alg: 'ECDH-ES+A128KW', enc: 'A256GCM' }))).status, 200)
})

t.test('every segment of a JWE is read strictly: a respelled token is refused like any other failure', async (t) => {
  const sym = I(9)
  const app = await buildApp(configFor([
    issuer(1, { decryptionKeys: [f('pem0')] }),
    { id: 'sym', issuer: sym, audiences: [AUD], jwks: jwksOf(signer), decryptionKeys: [f('dir32')], keyManagementAlgorithms: ['dir'] }
  ]))
  t.teardown(() => app.close())
  const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  /** The same bytes, spelled with the spare bits of the last character set. */
  const spare = (segment: string): string | undefined => {
    const rest = segment.length % 4
    if (rest === 0) return undefined
    const last = ALPHABET.indexOf(segment.at(-1) as string)
    return segment.slice(0, -1) + (ALPHABET[last | (rest === 2 ? 0x0f : 0x03)] as string)
  }
  for (const [name, token] of [
    ['RSA-OAEP', await encrypt(signed(I(1)), pem[0]!, { alg: 'RSA-OAEP-256', enc: 'A256GCM' })],
    ['dir', await encrypt(signed(sym), dir32, { alg: 'dir', enc: 'A256GCM' })]
  ] as const) {
    t.equal((await verifyWith(app, token)).status, 200, `${name}: the token itself`)
    const parts = token.split('.')
    const respell = (i: number, how: (s: string) => string | undefined): string | undefined => {
      const segment = how(parts[i] as string)
      return segment === undefined ? undefined : parts.map((p, j) => j === i ? segment : p).join('.')
    }
    for (let i = 1; i < 5; i++) {
      if (parts[i] === '') continue // dir: no encrypted key
      const spellings: Record<string, string | undefined> = {
        'spare bits set': respell(i, spare),
        padded: respell(i, (s) => s.length % 4 === 0 ? undefined : `${s}${'='.repeat(4 - (s.length % 4))}`),
        'a space': respell(i, (s) => `${s.slice(0, 4)} ${s.slice(4)}`),
        'a newline': respell(i, (s) => `${s.slice(0, 4)}\n${s.slice(4)}`),
        'base64 alphabet': respell(i, (s) => /[-_]/.test(s) ? s.replace(/-/g, '+').replace(/_/g, '/') : undefined)
      }
      for (const [how, respelled] of Object.entries(spellings)) {
        if (respelled === undefined) continue
        t.same(await verifyWith(app, respelled), { status: 401, code: 'token_decryption_failed' }, `${name}, segment ${i}: ${how}`)
      }
    }
  }
})
