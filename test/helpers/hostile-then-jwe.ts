/**
 * Child process of test/openssl-error-queue.test.ts: runs every hostile input that makes node:crypto fail or
 * compare keys of different types (forged signatures of every shape and algorithm confusion, hostile JWKS keys,
 * hostile JWE headers and encrypted keys, refused TLS, client CA and decryption key files), each followed at once
 * by a WebCrypto AES-GCM job, then valid encrypted ID tokens through POST /verify: ECDH-ES+A128KW with A128GCM
 * (AES-KW and AES-GCM), RSA-OAEP-256 with A128CBC-HS256 (AES-CBC), ECDH-ES (X25519) with A256GCM, all WebCrypto
 * jobs of jose. On Node 20 a node:crypto call that leaves an error on OpenSSL's queue makes the next WebCrypto job
 * abort the process (`errors->Empty()`), so one hostile token would kill the service for every user after it.
 *
 * Prints one line per step: "<step>: <hostile answer> then aes-gcm ok, <valid answers>", then "done".
 *
 *   node test/helpers/hostile-then-jwe.ts thread-pool|event-loop
 */
import { constants, createPrivateKey, createPublicKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildApp } from '../../src/app.js'
import { ConfigError } from '../../src/config/load.js'
import type { JsonWebKeySet } from '../../src/config/types.js'
import { clientCaProblem } from '../../src/config/operations.js'
import { KeySet } from '../../src/core/key-set.js'
import { prepareAsymmetric, runCheck } from '../../src/core/signature.js'
import { createSignatureChecks, type SignatureCheckMode } from '../../src/core/signature-checks.js'
import { checkListener, TlsProblem, type TlsListener } from '../../src/http/tls-reload.js'
import { makeTestPki } from './certs.js'
import { configFor } from './config.js'
import { ecKey, encrypt, rsaKey } from './jwe.js'
import { b64, generatePair, idTokenClaims, jwksOf, makeKey, mint } from './tokens.js'

const mode = process.argv[2] as SignatureCheckMode
const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const es256 = makeKey('ES256')
const rs256 = makeKey('RS256')
const ps256 = makeKey('PS256')
const eddsa = makeKey('EdDSA')
const part = (bytes: Buffer | string): string => Buffer.from(bytes).toString('base64url')
const rsaJwk = rs256.jwk as Record<string, string> & { kty: string }
const ecJwk = es256.jwk as Record<string, string> & { kty: string }

// Keys a hostile or broken JWKS may list: some are refused when imported, some import and fail every check.
const hostileJwks: JsonWebKeySet = {
  keys: [
    { kty: 'EC', crv: 'P-256', kid: 'off-curve', x: ecJwk.x, y: ecJwk.x },
    { kty: 'EC', crv: 'P-256', kid: 'short-x', x: part(Buffer.alloc(31, 1)), y: ecJwk.y },
    { kty: 'EC', crv: 'P-256', kid: 'x-past-p', x: part(Buffer.alloc(32, 0xff)), y: ecJwk.y },
    { kty: 'EC', crv: 'P-384', kid: 'p256-point-as-p384', x: ecJwk.x, y: ecJwk.y },
    { kty: 'EC', crv: 'P-256', kid: 'empty-coordinates', x: '', y: '' },
    { kty: 'RSA', kid: 'tiny', n: 'AQ', e: 'AQAB' },
    { kty: 'RSA', kid: 'empty-n', n: '', e: 'AQAB' },
    { kty: 'RSA', kid: 'even-e', n: rsaJwk.n, e: 'Ag' },
    { kty: 'RSA', kid: 'e-one', n: rsaJwk.n, e: 'AQ' },
    { kty: 'RSA', kid: 'huge-n', n: part(Buffer.concat([Buffer.from([0xc1]), randomBytes(2047)])), e: 'AQAB' },
    { kty: 'RSA', kid: 'odd-params', alg: 'PS256', n: part(Buffer.alloc(256, 0xf2)), e: 'AQAB' },
    { kty: 'OKP', crv: 'Ed25519', kid: 'small-order', x: part(Buffer.concat([Buffer.from([1]), Buffer.alloc(31)])) },
    { kty: 'OKP', crv: 'Ed25519', kid: 'non-canonical', x: part(Buffer.alloc(32, 0xff)) },
    { kty: 'OKP', crv: 'Ed25519', kid: 'short-ed', x: part(Buffer.alloc(31, 3)) },
    { kty: 'OKP', crv: 'Ed448', kid: 'ed448-wrong-length', x: part(Buffer.alloc(32, 3)) },
    { ...ecJwk, kid: 'x5c-garbage', x5c: ['MIIB', part(randomBytes(64))], x5t: 'garbage' }
  ]
}

const keys = { p256: ecKey('P-256'), x25519: ecKey('X25519'), rsa: rsaKey() }
const pki = makeTestPki()
const dir = mkdtempSync(join(tmpdir(), 'hostile-then-jwe-'))
const file = (name: string, content: string | Buffer): string => {
  const path = join(dir, name)
  writeFileSync(path, content)
  return path
}
const config = configFor([{
  id: 'enc',
  issuer: ISS,
  audiences: [AUD],
  jwks: { keys: [...jwksOf(es256, rs256, ps256, eddsa).keys, ...hostileJwks.keys] },
  decryptionKeys: [file('p256.key', keys.p256.file), file('x25519.key', keys.x25519.file), file('rsa.key', keys.rsa.file)],
  keyManagementAlgorithms: ['ECDH-ES+A128KW', 'ECDH-ES', 'RSA-OAEP-256', 'RSA1_5']
}], { server: { signatureChecks: mode } })
const app = await buildApp(config)

const signed = (): string => mint(es256, idTokenClaims(ISS, AUD, { jti: randomBytes(8).toString('hex') }))
const verify = async (token: string): Promise<number> =>
  (await app.inject({ method: 'POST', url: '/verify', payload: { token } })).statusCode

/** The tokens a user sends: each runs WebCrypto AES (and ECDH, RSA-OAEP) jobs. */
async function validAnswers (): Promise<number[]> {
  return [
    await verify(await encrypt(signed(), keys.p256, { alg: 'ECDH-ES+A128KW', enc: 'A128GCM' })),
    await verify(await encrypt(signed(), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A128CBC-HS256' })),
    await verify(await encrypt(signed(), keys.x25519, { alg: 'ECDH-ES', enc: 'A256GCM' }))
  ]
}

/**
 * A WebCrypto AES-GCM job right after the hostile step, before any other node:crypto call: most of them clear
 * OpenSSL's queue on their way out, which would hide an error left behind from the valid tokens that follow.
 */
async function aesJob (): Promise<string> {
  const key = await webcrypto.subtle.generateKey({ name: 'AES-GCM', length: 128 }, false, ['encrypt', 'decrypt'])
  const iv = new Uint8Array(12)
  const opened = await webcrypto.subtle.decrypt({ name: 'AES-GCM', iv }, key, await webcrypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, new Uint8Array(16)))
  return opened.byteLength === 16 ? 'aes-gcm ok' : 'aes-gcm wrong'
}

/** A compact JWE with the given header and raw parts: what an attacker can always send. */
const jwe = (header: Record<string, unknown>, encryptedKey: Buffer, iv = randomBytes(12), tag = randomBytes(16)): string =>
  [b64(header), part(encryptedKey), part(iv), part(randomBytes(64)), part(tag)].join('.')

/** A token of `alg` naming `kid`, with this signature (whatever the key's algorithm). */
const forged = (alg: string, kid: string | undefined, signature: Buffer): string => {
  const header = kid === undefined ? { alg, typ: 'JWT' } : { alg, kid, typ: 'JWT' }
  return `${b64(header)}.${b64(idTokenClaims(ISS, AUD))}.${part(signature)}`
}

const signatureShapes: Record<string, Buffer> = {
  empty: Buffer.alloc(0),
  'one byte': Buffer.from([0]),
  'DER garbage': Buffer.from('3006020101020101ff', 'hex'),
  '64 zero bytes': Buffer.alloc(64),
  '64 bytes 0xff (r, s past n)': Buffer.alloc(64, 0xff),
  '63 random bytes': randomBytes(63),
  '256 bytes 0xff (past the modulus)': Buffer.alloc(256, 0xff),
  '257 random bytes': randomBytes(257),
  '512 random bytes (longer than the modulus)': randomBytes(512)
}

type Step = [name: string, run: () => Promise<string>]
const steps: Step[] = [['startup with a hostile JWKS', async () => 'nothing']]

// Signatures: every alg against every kid (algorithm confusion), every shape, and without kid (all keys tried).
const kids = [es256.kid, rs256.kid, ps256.kid, eddsa.kid, 'odd-params', 'huge-n', 'non-canonical', undefined]
for (const alg of ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA', 'Ed25519']) {
  for (const kid of kids) {
    steps.push([`${alg} token, kid ${kid ?? 'none'}, every signature shape`, async () => {
      const answers = new Set<number>()
      for (const signature of Object.values(signatureShapes)) answers.add(await verify(forged(alg, kid, signature)))
      return [...answers].join(',')
    }])
  }
}
// node:crypto itself, past the length and key-type checks of prepareAsymmetric (they keep these calls from
// happening; a mistake there must not be able to kill the process either): every key type with every hash, PSS
// options on keys that are not RSA, signatures of every shape, on the event loop and in the thread pool.
const checks = createSignatureChecks(mode)
const publicKeys = [es256, rs256, ps256, eddsa].map((k) => createPublicKey(k.privateKey))
for (const alg of ['ES256', 'RS256', 'PS256', 'EdDSA'] as const) {
  steps.push([`${alg} checks on every key type (${mode})`, async () => {
    const answers = new Set<string>()
    for (const key of publicKeys) {
      for (const signature of Object.values(signatureShapes)) {
        const prepared = prepareAsymmetric(alg, key, Buffer.from('data'), signature)
        answers.add(prepared === undefined ? 'refused' : String(await checks.check(prepared)))
        for (const hash of ['sha256', 'sha512', null]) {
          for (const form of [key, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }]) {
            const raw = { hash, data: Buffer.from('data'), key: form, signature }
            answers.add(String(runCheck(raw)))
            answers.add(String(await checks.check(raw)))
          }
        }
      }
    }
    return [...answers].sort().join(',')
  }])
}
steps.push(['a JWKS refresh with hostile keys', async () => `${new KeySet(hostileJwks).rejected.length} rejected`])

// Encrypted tokens.
const epk = (jwk: Record<string, unknown>): Record<string, unknown> => ({ alg: 'ECDH-ES+A128KW', enc: 'A128GCM', epk: jwk })
const p256Epk = keys.p256.encryptTo as KeyObject
const epkJwk = p256Epk.export({ format: 'jwk' })
const hostileJwes: Record<string, string> = {
  'epk off the curve': jwe(epk({ ...epkJwk, y: epkJwk.x }), randomBytes(24)),
  'epk x past p': jwe(epk({ ...epkJwk, x: part(Buffer.alloc(32, 0xff)) }), randomBytes(24)),
  'epk short coordinates': jwe(epk({ ...epkJwk, x: part(Buffer.alloc(31, 1)), y: part(Buffer.alloc(31, 1)) }), randomBytes(24)),
  'epk of another curve (P-384)': jwe(epk(generatePair('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' })), randomBytes(24)),
  'epk P-256 point named P-384': jwe(epk({ ...epkJwk, crv: 'P-384' }), randomBytes(24)),
  'epk X25519 all zero (small order)': jwe({ alg: 'ECDH-ES', enc: 'A256GCM', epk: { kty: 'OKP', crv: 'X25519', x: part(Buffer.alloc(32)) } }, Buffer.alloc(0)),
  'epk X25519 short': jwe({ alg: 'ECDH-ES', enc: 'A256GCM', epk: { kty: 'OKP', crv: 'X25519', x: part(Buffer.alloc(31, 9)) } }, Buffer.alloc(0)),
  'epk an RSA key': jwe(epk({ kty: 'RSA', n: rsaJwk.n, e: rsaJwk.e }), randomBytes(24)),
  'ECDH-ES+A128KW with a garbage wrapped key': jwe(epk(generatePair('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' })), randomBytes(24)),
  'RSA1_5 key 0xff (past the modulus)': jwe({ alg: 'RSA1_5', enc: 'A128CBC-HS256' }, Buffer.alloc(256, 0xff), randomBytes(16)),
  'RSA1_5 key 255 bytes': jwe({ alg: 'RSA1_5', enc: 'A128CBC-HS256' }, randomBytes(255), randomBytes(16)),
  'RSA1_5 key 257 bytes': jwe({ alg: 'RSA1_5', enc: 'A128CBC-HS256' }, randomBytes(257), randomBytes(16)),
  'RSA1_5 key empty': jwe({ alg: 'RSA1_5', enc: 'A128CBC-HS256' }, Buffer.alloc(0), randomBytes(16)),
  'RSA1_5 key random': jwe({ alg: 'RSA1_5', enc: 'A128GCM' }, randomBytes(256)),
  'RSA-OAEP-256 key 0xff': jwe({ alg: 'RSA-OAEP-256', enc: 'A128GCM' }, Buffer.alloc(256, 0xff)),
  'RSA-OAEP-256 key random': jwe({ alg: 'RSA-OAEP-256', enc: 'A128CBC-HS256' }, randomBytes(256), randomBytes(16))
}
const good = (await encrypt(signed(), keys.p256, { alg: 'ECDH-ES+A128KW', enc: 'A128GCM' })).split('.')
hostileJwes['AES-GCM tag altered'] = [...good.slice(0, 4), part(randomBytes(16))].join('.')
hostileJwes['AES-KW wrapped key altered'] = [good[0], part(randomBytes(24)), ...good.slice(2)].join('.')
const cbc = (await encrypt(signed(), keys.rsa, { alg: 'RSA-OAEP-256', enc: 'A128CBC-HS256' })).split('.')
hostileJwes['AES-CBC ciphertext altered'] = [...cbc.slice(0, 3), part(randomBytes(48)), cbc[4]].join('.')
for (const [name, token] of Object.entries(hostileJwes)) steps.push([name, async () => String(await verify(token))])

// Decryption key files, read again by every reload in the serving process.
const encryptedKey = generatePair('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-128-cbc', passphrase: 'x' })
const p256Private = createPrivateKey(keys.p256.file).export({ format: 'jwk' }) as Record<string, string>
const badKeyFiles: Record<string, string | Buffer> = {
  'garbage PEM': '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n',
  'an encrypted key': encryptedKey,
  'a JWK whose d is past the order': JSON.stringify({ ...p256Private, d: part(Buffer.alloc(32, 0xff)) }),
  'a JWK whose point is off the curve': JSON.stringify({ ...p256Private, y: p256Private.x }),
  'an Ed25519 key': generatePair('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }),
  'a certificate': readFileSync(pki.caCert)
}
for (const [name, content] of Object.entries(badKeyFiles)) {
  steps.push([`decryption key file: ${name}`, async () => {
    try {
      configFor([{ id: 'enc', issuer: ISS, audiences: [AUD], jwks: jwksOf(es256), decryptionKeys: [file('bad.key', content)] }])
      return 'accepted'
    } catch (err) {
      return err instanceof ConfigError ? 'refused' : `threw ${String(err)}`
    }
  }])
}

// Operator files a reload or the certificate watch checks in the serving process.
const rsaPair = generatePair('rsa', { modulusLength: 2048 })
const ecPair = generatePair('ec', { namedCurve: 'P-256' })
const garbageCert = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'
const listener = (certFile: string, keyFile: string, clientCaFile?: string): TlsListener =>
  ({ name: 'main', setting: 'server.tls', tls: { certFile, keyFile, ...(clientCaFile !== undefined ? { clientCaFile } : {}) }, server: {} as never })
const serverKey = readFileSync(pki.serverKey)
const tlsCases: Record<string, { cert: string | Buffer, key: string | Buffer, ca?: string | Buffer }> = {
  'an RSA key beside an EC certificate': { cert: pki.pem.serverCert, key: rsaPair.privateKey.export({ type: 'pkcs8', format: 'pem' }) },
  'an EC key of another certificate': { cert: pki.pem.serverCert, key: pki.pem.strangerKey },
  'a client CA file with a garbage block after the CA': { cert: pki.pem.serverCert, key: serverKey, ca: Buffer.concat([pki.pem.ca, Buffer.from(garbageCert)]) },
  'a client CA file holding a key': { cert: pki.pem.serverCert, key: serverKey, ca: pki.pem.clientKey },
  'a garbage certificate': { cert: garbageCert, key: ecPair.privateKey.export({ type: 'pkcs8', format: 'pem' }) },
  'a garbage key': { cert: pki.pem.serverCert, key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' },
  // Taken by createSecureContext (given an empty passphrase), refused by createPrivateKey (test/tls-key-empty-passphrase.test.ts).
  'a key encrypted with an empty passphrase': { cert: pki.pem.serverCert, key: createPrivateKey(serverKey).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: '' }) },
  'a chain in reverse order': { cert: Buffer.concat([pki.pem.ca, pki.pem.serverCert]), key: serverKey },
  'a key where the certificate goes': { cert: rsaPair.privateKey.export({ type: 'pkcs8', format: 'pem' }), key: rsaPair.privateKey.export({ type: 'pkcs8', format: 'pem' }) },
  'a garbage client CA': { cert: pki.pem.serverCert, key: serverKey, ca: `${garbageCert}garbage` }
}
for (const [name, files] of Object.entries(tlsCases)) {
  steps.push([`TLS files: ${name}`, async () => {
    const problem = checkListener(listener('cert.pem', 'key.pem', files.ca !== undefined ? 'ca.pem' : undefined),
      { cert: Buffer.from(files.cert), key: Buffer.from(files.key), ...(files.ca !== undefined ? { ca: Buffer.from(files.ca) } : {}) })
    const ca = files.ca === undefined ? undefined : clientCaProblem(file('ca.pem', files.ca), Buffer.from(files.ca))
    return `${problem instanceof TlsProblem ? `refused (${problem.reason.slice(0, 60)})` : 'accepted'}${ca !== undefined ? ', CA refused' : ''}`
  }])
}

try {
  for (const [name, run] of steps) {
    const hostile = await run()
    process.stdout.write(`${name}: ${hostile} then ${await aesJob()}, ${(await validAnswers()).join(',')}\n`)
  }
  process.stdout.write('done\n')
} finally {
  await app.close()
  rmSync(dir, { recursive: true, force: true })
  pki.remove()
}
