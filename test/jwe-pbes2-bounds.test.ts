/**
 * PBES2 costs the receiver the sender's p2c PBKDF2 iterations per key tried, in libuv's thread pool, before any
 * key is proven. So:
 * - maxPbes2Count is the budget of one token, whatever number of secrets it fits: a kid-less token is tried
 *   with as many secrets as its p2c fits into the budget, not with up to four at the full count each;
 * - at most MAX_KEY_DECRYPTIONS_IN_FLIGHT PBES2 tokens decrypt at once and MAX_KEY_DECRYPTIONS_WAITING wait their turn (a batch's
 *   tokens do); another is 503 overloaded, so forged ones cannot hold the pool's threads (DNS lookups, file
 *   reads) while load shedding, which watches the event loop, sees nothing;
 * - a decryption JWK whose key_ops say it signs is refused, as one with "use": "sig" is.
 */
import { join } from 'node:path'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { silentLogger } from '../src/core/logger.js'
import { MAX_KEY_DECRYPTIONS_IN_FLIGHT, MAX_KEY_DECRYPTIONS_WAITING, TokenDecryptor } from '../src/core/jwe.js'
import { configFor, configProblems } from './helpers/config.js'
import { encrypt, secretKey } from './helpers/jwe.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://sym.example.com'
const AUD = 'client-a'
const signer = makeKey('ES256')
const secrets = [secretKey(24), secretKey(24), secretKey(24)]
const dir = t.testdir(Object.fromEntries(secrets.map((s, i) => [`pw-${i}.key`, s.file])))
const files = secrets.map((_s, i) => join(dir, `pw-${i}.key`))
const ALG = 'PBES2-HS256+A128KW'
const issuer = { id: 'sym', issuer: ISS, audiences: [AUD], jwks: jwksOf(signer), decryptionKeys: files, keyManagementAlgorithms: [ALG], contentEncryptionAlgorithms: ['A128GCM'], maxPbes2Count: 4000 }
const config = configFor([issuer])
const signed = (): string => mint(signer, idTokenClaims(ISS, AUD, { jti: Math.random().toString(36) }))

t.test('maxPbes2Count is one token\'s budget across the secrets it is tried with', async (t) => {
  const app = await buildApp(config)
  t.teardown(() => app.close())
  const verify = async (token: string): Promise<{ status: number, code?: string }> => {
    const res = await app.inject({ method: 'POST', url: '/verify', payload: { token } })
    return { status: res.statusCode, code: res.json().code }
  }
  t.equal((await verify(await encrypt(signed(), secrets[2]!, { alg: ALG, enc: 'A128GCM', p2c: 1000 }))).status, 200, 'the third secret at p2c 1000: 3,000 iterations')
  t.equal((await verify(await encrypt(signed(), secrets[0]!, { alg: ALG, enc: 'A128GCM', p2c: 4000 }))).status, 200, 'the first secret at the whole budget')
  t.equal((await verify(await encrypt(signed(), secrets[1]!, { alg: ALG, enc: 'A128GCM', p2c: 2000 }))).status, 200, 'the second at half of it')
  const third = await verify(await encrypt(signed(), secrets[2]!, { alg: ALG, enc: 'A128GCM', p2c: 2000 }))
  t.same(third, { status: 401, code: 'token_decryption_failed' }, 'the third at half of it: the budget is spent on the first two')
})

t.test('each issuer\'s secret is tried within its own maxPbes2Count: a lower one elsewhere does not stop it', async (t) => {
  // A kid-less token fits the secrets of both issuers; the one with the lower budget comes first.
  const other = secretKey(24)
  const more = t.testdir({ 'other.key': other.file })
  const high = { ...issuer, id: 'high', issuer: 'https://high.example.com', decryptionKeys: [join(more, 'other.key')], maxPbes2Count: 8000 }
  const app = await buildApp(configFor([{ ...issuer, decryptionKeys: [files[0]!], maxPbes2Count: 2000 }, high]))
  t.teardown(() => app.close())
  const verify = async (token: string): Promise<{ status: number, code?: string }> => {
    const res = await app.inject({ method: 'POST', url: '/verify', payload: { token } })
    return { status: res.statusCode, code: res.json().code }
  }
  const token = async (iss: string, key: typeof other, p2c: number): Promise<string> =>
    await encrypt(mint(signer, idTokenClaims(iss, AUD, { jti: Math.random().toString(36) })), key, { alg: ALG, enc: 'A128GCM', p2c })
  t.equal((await verify(await token(high.issuer, other, 5000))).status, 200, 'p2c 5000: past the first issuer\'s budget, within the second\'s')
  t.equal((await verify(await token(high.issuer, other, 8000))).status, 200, 'the second issuer\'s whole budget: the first secret, which cannot take it, is not charged')
  t.equal((await verify(await token(ISS, secrets[0]!, 2000))).status, 200, 'the first issuer at its whole budget')
  t.same(await verify(await token(ISS, secrets[0]!, 5000)), { status: 401, code: 'token_decryption_failed' }, 'the first issuer past its budget, even though the second\'s is larger')
})

t.test(`at most ${MAX_KEY_DECRYPTIONS_IN_FLIGHT} PBES2 tokens decrypt at once, ${MAX_KEY_DECRYPTIONS_WAITING} wait their turn, another is overloaded`, async (t) => {
  const decryptor = new TokenDecryptor(config.issuers, silentLogger)
  const token = await encrypt(signed(), secrets[0]!, { alg: ALG, enc: 'A128GCM', p2c: 1000 })
  const accepted = Array.from({ length: MAX_KEY_DECRYPTIONS_IN_FLIGHT + MAX_KEY_DECRYPTIONS_WAITING }, async () => await decryptor.decrypt(token))
  await t.rejects(decryptor.decrypt(token), { code: 'overloaded', details: { retryAfterSeconds: 1 } }, 'one more than run and wait')
  const done = await Promise.all(accepted)
  t.ok(done.every((d) => d.header.alg === ALG), `the ${done.length} others decrypt, in turn`)
  t.equal((await decryptor.decrypt(token)).header.alg, ALG, 'and once they are done, the next one at once')
})

t.test('a PBES2 token that waits longer than its turn allows is overloaded, and gives its place back', async (t) => {
  // Slow enough to hold both slots for longer than the wait (tens of milliseconds of PBKDF2 each).
  const slow = { ...issuer, maxPbes2Count: 200_000 }
  const decryptor = new TokenDecryptor(configFor([slow]).issuers, silentLogger, { slotWaitMs: 1 })
  const heavy = await encrypt(signed(), secrets[0]!, { alg: ALG, enc: 'A128GCM', p2c: 200_000 })
  const light = await encrypt(signed(), secrets[0]!, { alg: ALG, enc: 'A128GCM', p2c: 1000 })
  const running = Array.from({ length: MAX_KEY_DECRYPTIONS_IN_FLIGHT }, async () => await decryptor.decrypt(heavy))
  const waited = await decryptor.decrypt(light).catch((err: unknown) => err)
  t.match(waited, { code: 'overloaded', details: { retryAfterSeconds: 1 } }, 'refused once its wait is over')
  t.equal((await Promise.all(running)).length, MAX_KEY_DECRYPTIONS_IN_FLIGHT, 'the running ones finish')
  // Nothing is left behind by the one that gave up: every slot and every place in the queue is free again.
  const again = Array.from({ length: MAX_KEY_DECRYPTIONS_IN_FLIGHT }, async () => await decryptor.decrypt(light))
  t.equal((await Promise.all(again)).length, MAX_KEY_DECRYPTIONS_IN_FLIGHT, 'the slots are free again')
})

t.test('a /verify/batch of PBES2 tokens waits its turn rather than being refused', async (t) => {
  const app = await buildApp(config)
  t.teardown(() => app.close())
  const tokens = await Promise.all(Array.from({ length: 5 }, async () => await encrypt(signed(), secrets[0]!, { alg: ALG, enc: 'A128GCM', p2c: 1000 })))
  const res = await app.inject({ method: 'POST', url: '/verify/batch', payload: { tokens } })
  t.equal(res.statusCode, 200)
  t.same(res.json().results.map((r: { ok: boolean }) => r.ok), [true, true, true, true, true], 'five new PBES2 tokens in one batch')
})

t.test('a decryption JWK whose key_ops say it signs is refused', async (t) => {
  const withOps = (keyOps: unknown): string[] => {
    const jwkDir = t.testdir({ 'k.key': JSON.stringify({ ...JSON.parse(secrets[0]!.file) as object, key_ops: keyOps }) })
    return configProblems({ issuers: [{ ...issuer, decryptionKeys: [join(jwkDir, 'k.key')] }] })
  }
  for (const ops of [['sign'], ['sign', 'verify'], ['verify'], [], 'decrypt']) {
    t.match(withOps(ops), [/"key_ops": .*a decryption key's key_ops, when given, include "decrypt", "unwrapKey", "deriveKey" or "deriveBits"/], JSON.stringify(ops))
  }
  for (const ops of [['decrypt'], ['unwrapKey'], ['deriveKey', 'deriveBits'], ['encrypt', 'decrypt']]) {
    t.same(withOps(ops), [], JSON.stringify(ops))
  }
})
