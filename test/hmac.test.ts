/**
 * HS256/384/512 ID tokens signed with the configured client secret (OIDC Core §10.1): the secret never comes
 * from a JWKS, must be as long as the hash, and a token for several audiences signed with it is refused.
 */
import { createHmac } from 'node:crypto'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { ConfigError, parseConfig } from '../src/config/load.js'
import { KeySet } from '../src/core/key-set.js'
import { configFor, configProblems } from './helpers/config.js'
import { startJwksServer } from './helpers/jwks-server.js'
import { b64, idTokenClaims, jwksOf, makeKey, mintHmac } from './helpers/tokens.js'

const ISS = 'https://confidential.example.com'
const CLIENT = 'conf-client'
const SECRET = 's'.repeat(40) + 't'.repeat(24) // 64 bytes: enough for HS512
const rs = makeKey('RS256')

const app = await buildApp(configFor([
  { id: 'hs', issuer: ISS, audiences: [CLIENT], algorithms: ['HS256', 'HS384', 'HS512', 'RS256'], clientSecret: SECRET, jwks: jwksOf(rs) }
]))
t.teardown(() => app.close())

async function verify (token: string) {
  const res = await app.inject({ method: 'POST', url: '/verify', payload: { token } })
  return { status: res.statusCode, body: res.json() }
}

t.test('HS256, HS384 and HS512 with the client secret', async (t) => {
  for (const alg of ['HS256', 'HS384', 'HS512'] as const) {
    const res = await verify(mintHmac(SECRET, alg, idTokenClaims(ISS, CLIENT)))
    t.equal(res.status, 200, alg)
    t.equal(res.body.issuer.id, 'hs')
  }
  t.equal((await verify(mintHmac(SECRET, 'HS256', idTokenClaims(ISS, CLIENT), { kid: 'anything' }))).status, 200, 'a kid does not matter: there is one secret')
})

t.test('a wrong secret, a truncated or re-encoded MAC, and the algorithm-confusion attack fail', async (t) => {
  t.equal((await verify(mintHmac(`${SECRET}x`, 'HS256', idTokenClaims(ISS, CLIENT)))).body.code, 'signature_invalid')
  const token = mintHmac(SECRET, 'HS512', idTokenClaims(ISS, CLIENT))
  const [h, p, s] = token.split('.') as [string, string, string]
  const mac = Buffer.from(s, 'base64url')
  t.equal((await verify(`${h}.${p}.${mac.subarray(0, 32).toString('base64url')}`)).body.code, 'signature_invalid', 'an HS256-length MAC under HS512')
  t.equal((await verify(`${h}.${p}.`)).body.code, 'token_malformed')
  // The RSA public key, in either form, as an HMAC secret: the classic confusion attack.
  const pem = rs.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string
  for (const forged of [JSON.stringify(rs.jwk), pem, rs.jwk.n as string]) {
    t.equal((await verify(mintHmac(forged, 'HS256', idTokenClaims(ISS, CLIENT)))).body.code, 'signature_invalid')
  }
  // The same claims MAC'd with another hash under the advertised alg.
  const input = `${b64({ alg: 'HS384', typ: 'JWT' })}.${b64(idTokenClaims(ISS, CLIENT))}`
  t.equal((await verify(`${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`)).body.code, 'signature_invalid')
})

t.test('a token for several audiences cannot be signed with one client\'s secret', async (t) => {
  const several = await verify(mintHmac(SECRET, 'HS256', idTokenClaims(ISS, [CLIENT, 'conf-client-2'], { azp: CLIENT })))
  t.same([several.status, several.body.code, several.body.claim], [401, 'audience_mismatch', 'aud'])
  const single = await verify(mintHmac(SECRET, 'HS256', idTokenClaims(ISS, [CLIENT])))
  t.equal(single.status, 200, 'one audience in a list is one audience')
  const other = await verify(mintHmac(SECRET, 'HS256', idTokenClaims(ISS, ['conf-client-2'])))
  t.same([other.status, other.body.code], [401, 'audience_mismatch'], 'the secret\'s client is the only audience it signs for')
  const res = await app.inject({ method: 'POST', url: '/verify', payload: { token: mintHmac(SECRET, 'HS256', idTokenClaims(ISS, [CLIENT, 'conf-client-2'], { azp: CLIENT })) } })
  t.equal(res.json().code, 'audience_mismatch', 'also the second time (no cache entry was made)')
})

t.test('a client secret belongs to one client: with HS*, one audience', async (t) => {
  const problems = configProblems({ issuers: [{ id: 'hs', issuer: ISS, audiences: [CLIENT, 'conf-client-2'], algorithms: ['HS256', 'RS256'], clientSecret: SECRET, jwks: jwksOf(rs) }] })
  t.match(problems, [/issuers\[0\]\.audiences: HS256 tokens are signed with the client secret of one client, so audiences must be that client's id alone, got 2; list only the client whose secret this is/])
  t.same(configProblems({ issuers: [{ id: 'rs', issuer: ISS, audiences: [CLIENT, 'conf-client-2'], algorithms: ['RS256'], jwks: jwksOf(rs) }] }), [], 'several audiences without HS*')
})

t.test('the secret never comes from a JWKS', async (t) => {
  const octKey = { kty: 'oct', k: Buffer.from(SECRET).toString('base64url'), alg: 'HS256', kid: 'shared' }
  const keySet = new KeySet({ keys: [octKey] })
  t.equal(keySet.keys.length, 0)
  t.match(keySet.rejected, [{ kid: 'shared', reason: /cannot verify signatures here|private key material/ }])
  try {
    parseConfig({ issuers: [{ id: 'a', issuer: ISS, audiences: [CLIENT], jwks: { keys: [octKey] } }] }, 'c.yaml', {})
    t.fail('expected a ConfigError')
  } catch (err) {
    t.match((err as ConfigError).problems, [/jwks\.keys\[0\]: contains private key members \(k\)/], 'an inline JWKS with a secret is a configuration error')
  }

  // A remote JWKS that publishes a symmetric key makes no HS* token valid, not even one MAC'd with that key.
  const idp = await startJwksServer({ json: { keys: [{ ...octKey, k: Buffer.from('k'.repeat(64)).toString('base64url') }, rs.jwk] } })
  t.teardown(() => idp.close())
  const remote = await buildApp(configFor([{ id: 'r', issuer: 'https://remote.example.com', audiences: [CLIENT], algorithms: ['HS256', 'RS256'], clientSecret: SECRET, jwksUri: idp.jwksUrl }]))
  t.teardown(() => remote.close())
  const res = await remote.inject({ method: 'POST', url: '/verify', payload: { token: mintHmac('k'.repeat(64), 'HS256', idTokenClaims('https://remote.example.com', CLIENT), { kid: 'shared' }) } })
  t.equal(res.json().code, 'signature_invalid')
  t.equal(idp.requests(), 0, 'an HS* token does not even make us fetch the JWKS')
})

t.test('the secret must be long enough for the strongest HS* allowed', async (t) => {
  const problems = (issuer: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): string[] => {
    return configProblems({ issuers: [{ id: 'a', issuer: ISS, audiences: [CLIENT], ...issuer }] }, env)
  }
  t.same(problems({ algorithms: ['HS256'], clientSecret: 'x'.repeat(32) }), [])
  t.same(problems({ algorithms: ['HS384'], clientSecret: 'x'.repeat(47) }), ['c.yaml: issuers[0].clientSecret: expected at least 48 bytes (HS384 in algorithms needs a key of at least 384 bits), got 47 bytes'])
  t.same(problems({ algorithms: ['HS256', 'HS512'], clientSecret: 'x'.repeat(63) }), ['c.yaml: issuers[0].clientSecret: expected at least 64 bytes (HS512 in algorithms needs a key of at least 512 bits), got 63 bytes'])
  t.same(problems({ algorithms: ['HS512'], clientSecret: 'é'.repeat(32) }), [], 'bytes, not characters: 32 × 2 bytes')
  t.match(problems({ algorithms: ['HS256'], clientSecretEnv: 'HS_SECRET' }, { HS_SECRET: 'short' }), [/clientSecretEnv: expected the value of HS_SECRET at least 32 bytes/])
  t.match(problems({ algorithms: ['HS256'] }), [/HS256 requires a client secret/])
  t.notMatch(problems({ algorithms: ['HS256'], clientSecret: 'hunter2-very-secret' }).join('\n'), /hunter2/, 'the secret is never echoed')
})
