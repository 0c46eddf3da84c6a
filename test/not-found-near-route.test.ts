/**
 * Routes match exactly; a 404 whose path names a route but for trailing slashes or letter case says which route
 * (`nearRoute`, in the answer and the request line), so that an operator can fix a provider's or a caller's URL
 * (a backchannel_logout_uri registered with a trailing slash loses every logout to 404). The answer never repeats
 * the request's path.
 */
import t from 'tap'
import { Writable } from 'node:stream'
import pino from 'pino'
import { buildApp } from '../src/app.js'
import { buildOpsApp } from '../src/ops-app.js'
import { loggerOptions } from '../src/logger.js'
import { configFor } from './helpers/config.js'
import { jwksOf, makeKey } from './helpers/tokens.js'

const lines: string[] = []
const stream = new Writable({ write (chunk, _enc, cb) { lines.push(...String(chunk).split('\n').filter(Boolean)); cb() } })
const issuer = { id: 'main', issuer: 'https://idp.example.com', audiences: ['aud'], jwks: jwksOf(makeKey('ES256')) }
const app = await buildApp(configFor([issuer], { revocation: { enabled: true }, loadShedding: { enabled: false } }), { loggerInstance: pino(loggerOptions('info'), stream) })
t.teardown(() => app.close())
await app.ready()

const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

t.test('a path that names a route but for trailing slashes or letter case: 404 naming the route', async (t) => {
  const cases: Array<[string, string, string]> = [
    ['POST', '/backchannel-logout/', '/backchannel-logout'],
    ['POST', '/backchannel-logout//', '/backchannel-logout'],
    ['POST', '/Backchannel-Logout', '/backchannel-logout'],
    ['POST', '/BACKCHANNEL-LOGOUT/?x=1', '/backchannel-logout'],
    ['POST', '/verify/', '/verify'],
    ['POST', '/Verify', '/verify'],
    ['POST', '/verif%79/', '/verify'],
    ['GET', '/healthz/', '/healthz'],
    ['GET', '/READYZ', '/readyz'],
    ['POST', '/verify/batch/', '/verify/batch']
  ]
  for (const [method, url, near] of cases) {
    const res = await app.inject({ method, url, headers: FORM, payload: 'logout_token=x' })
    t.equal(res.statusCode, 404, `${method} ${url}`)
    const body = res.json()
    t.equal(body.code, 'not_found', `${method} ${url}: not_found`)
    t.equal(body.nearRoute, near, `${method} ${url}: nearRoute ${near}`)
    t.ok(body.nearRouteMethods.includes(method), `${method} ${url}: the route takes ${method} (${body.nearRouteMethods})`)
  }
})

t.test('a near route that does not take the request\'s method says which methods it takes', async (t) => {
  const cases: Array<[string, string, string, string[]]> = [
    ['GET', '/Verify', '/verify', ['POST']],
    ['PUT', '/backchannel-logout/', '/backchannel-logout', ['POST']],
    ['POST', '/Healthz', '/healthz', ['GET', 'HEAD']]
  ]
  for (const [method, url, near, methods] of cases) {
    const res = await app.inject({ method, url })
    t.equal(res.statusCode, 404, `${method} ${url}`)
    t.match(res.json(), { code: 'not_found', nearRoute: near, nearRouteMethods: methods }, `${method} ${url}`)
    t.notOk(res.headers.allow, 'no Allow header: the path itself is no route')
    // Following both: the near route with a method it takes is no longer a 404.
    const followed = await app.inject({ method: methods[0] as 'GET', url: near })
    t.not(followed.statusCode, 404, `${methods[0]} ${near}`)
  }
  const unknown = await app.inject({ method: 'GET', url: '/nope' })
  t.notOk('nearRouteMethods' in unknown.json(), 'none without a near route')
})

t.test('a path that names no route: 404 without nearRoute', async (t) => {
  // Letter case is ASCII's: the Kelvin sign (U+212A) lower-cases to k in Unicode, but no route is spelled with it.
  for (const url of ['/nope', '/verify/x', '/verifyx', '/', '//', '/backchannel', '/verify%2F', `/verify${'/'.repeat(20000)}x`, '/bac%E2%84%AAchannel-logout']) {
    const res = await app.inject({ method: 'POST', url, payload: {} })
    t.equal(res.statusCode, 404, url.slice(0, 40))
    t.equal(res.json().code, 'not_found')
    t.notOk('nearRoute' in res.json(), `${url.slice(0, 40)}: no nearRoute`)
  }
})

t.test('many slashes are read in linear time and the answer names the route, not the path', async (t) => {
  const url = `/Verify${'/'.repeat(60000)}`
  const res = await app.inject({ method: 'POST', url, payload: {} })
  t.equal(res.statusCode, 404)
  t.equal(res.json().nearRoute, '/verify')
  t.notMatch(res.body, /\/\/\//, 'the request\'s path is not repeated')
})

t.test('the exact route still answers, and a route with another method is still 405', async (t) => {
  const exact = await app.inject({ method: 'POST', url: '/backchannel-logout', headers: FORM, payload: 'logout_token=x' })
  t.equal(exact.statusCode, 400, 'the route itself reads the (bad) logout token')
  t.equal(exact.json().code, 'logout_token_invalid')
  const wrongMethod = await app.inject({ method: 'GET', url: '/backchannel-logout' })
  t.equal(wrongMethod.statusCode, 405)
  t.notOk('nearRoute' in wrongMethod.json())
})

t.test('the request line names the near route', async (t) => {
  lines.length = 0
  const res = await app.inject({ method: 'POST', url: '/backchannel-logout/', headers: FORM, payload: 'logout_token=secret-value' })
  t.equal(res.statusCode, 404)
  const line = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'request completed')
  t.ok(line, 'a request line')
  t.equal(line?.code, 'not_found')
  t.equal(line?.nearRoute, '/backchannel-logout')
  t.same(line?.nearRouteMethods, ['POST'])
  t.notMatch(lines.join('\n'), /secret-value/, 'the body is not logged')
})

t.test('the ops listener names its own routes', async (t) => {
  const config = configFor([issuer], { server: { opsPort: 0 }, loadShedding: { enabled: false } })
  const main = await buildApp(config)
  const ops = await buildOpsApp(main, config)
  t.teardown(async () => { await ops.close(); await main.close() })
  const res = await ops.inject({ method: 'GET', url: '/metrics/' })
  t.equal(res.statusCode, 404)
  t.equal(res.json().nearRoute, '/metrics')
  const onMain = await main.inject({ method: 'GET', url: '/metrics/' })
  t.equal(onMain.statusCode, 404)
  t.notOk('nearRoute' in onMain.json(), 'the main port serves no /metrics when opsPort is set: nothing to name')
})
