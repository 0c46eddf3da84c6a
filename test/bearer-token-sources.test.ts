/**
 * The exact edges of reading a token from a request: the Bearer value's grammar (RFC 6750 §2.1, token68), the
 * repeated-header check (Node keeps the first Authorization line), the query refusals, and forward-auth's cookie
 * and token-header sources. Each case pins one rule that the route tests leave open.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { authorizationHeader, bearerToken, refuseQueryInput, repeatedHeader } from '../src/http/bearer.js'
import { cookieValues, findToken } from '../src/http/token-sources.js'
import { isVerificationError } from '../src/errors.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

/** The error code `fn` throws, or 'none'. */
function codeOf (fn: () => unknown): string {
  try {
    fn()
    return 'none'
  } catch (err) {
    return isVerificationError(err) ? err.code : 'other'
  }
}

t.test('bearer values: token68 after one or more spaces, the scheme first, nothing else', async (t) => {
  t.equal(bearerToken('Bearer a.b-c_d~e+f/g=='), 'a.b-c_d~e+f/g==', 'every token68 character, "~" included')
  t.equal(bearerToken('bearer   abc'), 'abc', 'scheme in any case, several spaces')
  t.equal(bearerToken(' Bearer abc '), 'abc', 'surrounding whitespace is not part of the value')
  t.equal(bearerToken(''), undefined, 'an empty header is no header')
  t.equal(bearerToken(undefined), undefined)
  for (const value of ['Bearerabc', 'Bearer\tabc', 'Bearer ab=c', 'Bearer =abc', 'NotBearer abc', 'Basic Bearer abc', 'Bearer', 'Bearer a b']) {
    t.equal(codeOf(() => bearerToken(value)), 'request_invalid', JSON.stringify(value))
  }
})

t.test('repeated headers: whole names, ASCII case folded, names only (never values)', async (t) => {
  t.equal(repeatedHeader(['authorization', 'Bearer a', 'AUTHORIZATION', 'Bearer b'], 'authorization'), true, 'upper case, "Z" included')
  t.equal(repeatedHeader(['Authorization', 'Bearer a', 'Authorization-Extra', 'x'], 'authorization'), false, 'a longer name is another header')
  t.equal(repeatedHeader(['Authorization', 'Bearer a', 'X-Note', 'authorization'], 'authorization'), false, 'a value equal to the name is no header line')
  t.equal(repeatedHeader(['X-Note', 'authorization', 'authorization', 'Bearer a'], 'authorization'), false)
  t.equal(codeOf(() => authorizationHeader({ headers: { authorization: 'Bearer a' }, rawHeaders: ['authorization', 'Bearer a', 'AUTHORIZATION', 'Bearer b'] })), 'token_ambiguous')
})

t.test('query refusals: every token name, and the first check named', async (t) => {
  for (const name of ['token', 'tokens', 'id_token', 'id_token_hint', 'access_token']) {
    t.equal(codeOf(() => refuseQueryInput({ [name]: 'x' })), 'token_in_query', name)
    // A list as axios and qs write it in a query (tokens[]=a&tokens[]=b, tokens[0]=a): the brackets stay in the name.
    for (const listed of [`${name}[]`, `${name}[0]`]) t.equal(codeOf(() => refuseQueryInput({ [listed]: 'x' })), 'token_in_query', listed)
  }
  t.doesNotThrow(() => refuseQueryInput({ '[token]': 'x', tokenish: 'x', 'tok[en]': 'x' }), 'only a token name before the brackets')
  try {
    refuseQueryInput({ audience: 'a', nonce: 'n' })
    t.fail('refused')
  } catch (err) {
    t.same(isVerificationError(err) && err.details.parameter, 'query.audience', 'the first check of the query')
  }
})

t.test('cookies: a pair without "=", blanks around the value, and quotes only in pairs', async (t) => {
  t.same(cookieValues('idx; a=1', 'id'), [], 'a pair without "=" has no name')
  t.same(cookieValues('a=1; id=x ; b=2', 'id'), ['x'], 'blanks around the value')
  t.same(cookieValues('id="', 'id'), ['"'], 'one double quote is no quoted value')
  t.same(cookieValues('id=""', 'id'), [''], 'two double quotes are an empty quoted value')
  t.same(cookieValues('id="abc', 'id'), ['"abc'], 'an unclosed quote is kept')
})

t.test('findToken: what counts as a Bearer header and as an empty source', async (t) => {
  const sources = { tokenCookie: 'id_token', tokenHeader: 'x-id-token' }
  const find = (headers: Record<string, string>): string => {
    const rawHeaders = Object.entries(headers).flat()
    try {
      return findToken({ headers, rawHeaders }, sources).token
    } catch (err) {
      return isVerificationError(err) ? err.code : 'other'
    }
  }
  t.equal(find({ authorization: 'Bearer', cookie: 'id_token=c' }), 'request_invalid', 'a bare "Bearer" is a Bearer header without a value')
  t.equal(find({ authorization: 'Bearerish abc', cookie: 'id_token=c' }), 'c', 'another scheme that starts with "Bearer" is ignored')
  t.equal(find({ authorization: ' Bearer abc' }), 'abc', 'leading whitespace before the scheme')
  t.equal(find({ authorization: 'Bearer abc', cookie: 'id_token=' }), 'abc', 'an empty cookie is no token')
  t.equal(find({ cookie: 'id_token=' }), 'token_missing')
  t.equal(find({ authorization: 'Bearer abc', 'x-id-token': '' }), 'abc', 'an empty token header is no token')
  t.equal(find({ authorization: 'Bearer abc', 'x-id-token': ' abc ' }), 'abc', 'blanks around the token header value')
})

t.test('/verify: an empty Authorization header is no header; a Bearer value outside token68 is request_invalid', async (t) => {
  const ISS = 'https://idp.example.com'
  const key = makeKey('ES256')
  const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: ['client-a'], jwks: jwksOf(key) }]))
  t.teardown(() => app.close())
  const token = mint(key, idTokenClaims(ISS, 'client-a'))
  const empty = await app.inject({ method: 'POST', url: '/verify', headers: { authorization: '' }, payload: { token } })
  t.equal(empty.statusCode, 200, 'the body token is used')
  for (const authorization of [`Bearer${token}`, `X-Bearer ${token}`]) {
    const res = await app.inject({ method: 'POST', url: '/verify', headers: { authorization } })
    t.same([res.statusCode, res.json().code], [400, 'request_invalid'], authorization.slice(0, 10))
  }
  const tilde = await app.inject({ method: 'POST', url: '/verify', headers: { authorization: 'Bearer a~b' } })
  t.not(tilde.json().code, 'request_invalid', '"~" is a token68 character: the value is read, then refused as a token')
  const query = await app.inject({ method: 'POST', url: `/verify?access_token=${token}`, payload: { token } })
  t.same([query.statusCode, query.json().code], [400, 'token_in_query'])
})
