/**
 * A method override in the query string: Express's method-override with a query key (methodOverride('_method'),
 * its documented form), Symfony and so Laravel read "_method" from the query of a POST too, and run the POST as
 * the method it names. Unlike one in a form body, the verifier sees it, in the URI the proxy names.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { readOriginalRequest } from '../src/http/original-request.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')
const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(key) }], {
  forwardAuth: { rules: [{ methods: ['DELETE'], require: { roles: ['owner'] } }] }
}))
t.teardown(() => app.close())
const authorization = `Bearer ${mint(key, idTokenClaims(ISS, AUD, { roles: ['editor'] }))}`

t.test('a DELETE rule applies to a POST whose query names DELETE: nginx, Traefik and Envoy', async (t) => {
  for (const query of ['?_method=DELETE', '?x=1&_method=delete', '?%5Fmethod=DEL%45TE', '?_method=DELETE+']) {
    const nginx = await app.inject({ method: 'GET', url: '/forward-auth', headers: { authorization, 'x-original-method': 'POST', 'x-original-uri': `/items/7${query}` } })
    t.equal(nginx.statusCode, 403, `nginx ${query}`)
    const traefik = await app.inject({ method: 'GET', url: '/forward-auth', headers: { authorization, 'x-forwarded-method': 'POST', 'x-forwarded-uri': `/items/7${query}` } })
    t.equal(traefik.statusCode, 403, `Traefik ${query}`)
    const envoy = await app.inject({ method: 'POST', url: `/forward-auth/envoy/items/7${query}`, headers: { authorization } })
    t.equal(envoy.statusCode, 403, `Envoy ${query}`)
  }
  const plain = await app.inject({ method: 'GET', url: '/forward-auth', headers: { authorization, 'x-forwarded-method': 'POST', 'x-forwarded-uri': '/items/7?method=DELETE&x_method=DELETE' } })
  t.equal(plain.statusCode, 200, 'other parameters are not overrides')
})

t.test('the readings: beside a method the proxy named, bounded like the others', async (t) => {
  t.same(readOriginalRequest({ 'x-forwarded-method': 'POST', 'x-forwarded-uri': '/a?_method=PUT' }).methods.sort(), ['POST', 'PUT'])
  t.same(readOriginalRequest({ 'x-forwarded-uri': '/a?_method=PUT' }).methods, [], 'alone it does not make the method known')
  const many = Array.from({ length: 17 }, () => '_method=').join('&')
  t.same(readOriginalRequest({ 'x-forwarded-method': 'POST', 'x-forwarded-uri': `/a?${many}` }).methods, [], 'too many: the method is unknown')
})
