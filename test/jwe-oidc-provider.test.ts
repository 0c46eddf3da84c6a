/**
 * Encrypted ID tokens issued by a REAL OpenID Provider (oidc-provider, id_token_encrypted_response_alg/enc):
 * signed with the provider's key, encrypted to the client's, obtained through the authorization-code login,
 * decrypted with the configured private keys and verified end to end.
 */
import { join } from 'node:path'
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { ecKey, publicJwkOf, rsaKey } from './helpers/jwe.js'
import { startOidcProvider } from './helpers/oidc-provider.js'

const rsa = rsaKey({ format: 'jwk', kid: 'rp-rsa-1' })
const ec = ecKey('P-256')
const stranger = rsaKey({ kid: 'not-configured' })
const enc = (key: typeof rsa, kid: string) => ({ keys: [{ ...publicJwkOf(key), kid, use: 'enc' }] })

const op = await startOidcProvider({
  clients: [
    { alg: 'RS256', clientId: 'rp-rsa-oaep-256', idTokenEncryption: { alg: 'RSA-OAEP-256', enc: 'A256GCM', jwks: enc(rsa, 'rp-rsa-1') } },
    { alg: 'ES256', clientId: 'rp-rsa-oaep', idTokenEncryption: { alg: 'RSA-OAEP', enc: 'A128CBC-HS256', jwks: enc(rsa, 'rp-rsa-1') } },
    { alg: 'PS256', clientId: 'rp-ecdh-es', idTokenEncryption: { alg: 'ECDH-ES', enc: 'A128GCM', jwks: enc(ec, 'rp-ec-1') } },
    { alg: 'EdDSA', clientId: 'rp-ecdh-es-kw', idTokenEncryption: { alg: 'ECDH-ES+A256KW', enc: 'A256CBC-HS512', jwks: enc(ec, 'rp-ec-1') } },
    { alg: 'ES256', clientId: 'rp-stranger', idTokenEncryption: { alg: 'RSA-OAEP-256', enc: 'A256GCM', jwks: enc(stranger, 'not-configured') } },
    { alg: 'ES256', clientId: 'rp-plain' }
  ]
})
t.teardown(() => op.close())

const dir = t.testdir({ 'rp-rsa.jwk': rsa.file, 'rp-ec.pem': ec.file })
const app = await buildApp(configFor([{
  id: 'op',
  issuer: op.issuer,
  audiences: op.clients.map((c) => c.clientId),
  algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'],
  decryptionKeys: [join(dir, 'rp-rsa.jwk'), join(dir, 'rp-ec.pem')]
}]))
t.teardown(() => app.close())
await app.ready()

t.test('encrypted ID tokens from a real login verify, for every algorithm the clients use', async (t) => {
  for (const client of op.clients.filter((c) => c.idTokenEncryption !== undefined && c.clientId !== 'rp-stranger')) {
    const { idToken, nonce } = await op.login({ clientId: client.clientId, sub: `user-${client.clientId}` })
    t.equal(idToken.split('.').length, 5, `${client.clientId}: the provider encrypted it`)
    const header = JSON.parse(Buffer.from(idToken.split('.')[0] as string, 'base64url').toString()) as Record<string, unknown>
    t.same([header.alg, header.enc, header.cty], [client.idTokenEncryption?.alg, client.idTokenEncryption?.enc, 'JWT'])
    const res = await app.inject({ method: 'POST', url: '/verify', payload: { token: idToken, nonce } })
    t.equal(res.statusCode, 200, `${client.clientId}: ${res.body}`)
    const body = res.json()
    t.equal(body.subject, `user-${client.clientId}`)
    t.same(body.audiences, [client.clientId])
    t.equal(body.user.email, `user-${client.clientId}@example.test`)
    const wrong = await app.inject({ method: 'POST', url: '/verify', payload: { token: idToken, nonce: 'another' } })
    t.equal(wrong.json().code, 'nonce_mismatch', 'the inner token gets every check')
  }
})

t.test('a token encrypted to a key the service does not hold fails uniformly', async (t) => {
  const { idToken } = await op.login({ clientId: 'rp-stranger' })
  const res = await app.inject({ method: 'POST', url: '/verify', payload: { token: idToken } })
  t.equal(res.statusCode, 401)
  t.equal(res.json().code, 'token_decryption_failed')
})

t.test('unencrypted tokens of the same provider still verify', async (t) => {
  const { idToken } = await op.login({ clientId: 'rp-plain' })
  t.equal(idToken.split('.').length, 3)
  const res = await app.inject({ method: 'POST', url: '/verify', headers: { authorization: `Bearer ${idToken}` } })
  t.equal(res.statusCode, 200)
})
