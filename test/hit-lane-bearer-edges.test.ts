/**
 * Bearer requests at the hit lane (src/http/hit-lane.ts): whatever the lane answers must be the route's answer,
 * checked against an app without a token cache (so without the lane) for the same raw request.
 */
import t, { type Test } from 'tap'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { configFor } from './helpers/config.js'
import { rawExchange } from './helpers/raw-http.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const key = makeKey('ES256')
const issuers = [{ id: 'main', issuer: ISS, audiences: ['aud'], jwks: jwksOf(key) }]

async function started (t: Test, extra: Record<string, unknown> = {}): Promise<{ app: FastifyInstance, port: number }> {
  const app = await buildApp(configFor(issuers, extra))
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  return { app, port: (app.server.address() as AddressInfo).port }
}

async function finalOf (raw: string): Promise<{ status: number, body: string }> {
  const rest = raw.slice(raw.indexOf('\r\n\r\n') + 4)
  return { status: Number(rest.split(' ')[1]), body: rest.slice(rest.indexOf('\r\n\r\n') + 4) }
}

const codeOf = (body: string): unknown => { try { return (JSON.parse(body) as { code?: unknown }).code } catch { return body } }

t.test('a Bearer request without a body gets the route\'s answer whether the lane or the route answers it', async (t) => {
  const lane = await started(t)
  const route = await started(t, { tokenCache: { enabled: false } })
  const token = mint(key, idTokenClaims(ISS, 'aud'))
  const prime = `POST /verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`
  for (let i = 0; i < 2; i++) t.equal((await rawExchange(lane.port, prime)).status, 200)
  const cases: Record<string, string> = {
    'Content-Length: 00': `POST /verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Length: 00\r\nConnection: close\r\n\r\n`,
    'HTTP/1.0': `POST /verify HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`,
    'Expect: 100-continue': `POST /verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nExpect: 100-continue\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    'trailing tab': `POST /verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token} \t \r\nConnection: close\r\n\r\n`,
    'X-Api-Key, no callers': `POST /verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nX-Api-Key: k\r\nConnection: close\r\n\r\n`,
    'JSON, Content-Length: 000': `POST /verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 000\r\nConnection: close\r\n\r\n`
  }
  for (const [name, request] of Object.entries(cases)) {
    // After a 100 Continue, the final answer.
    const final = async (port: number): Promise<{ status: number, body: string }> => {
      const answer = await rawExchange(port, request)
      return answer.status === 100 ? await finalOf(answer.raw) : answer
    }
    const [a, b] = [await final(lane.port), await final(route.port)]
    t.equal(a.status, b.status, `${name}: the route's status (${b.status})`)
    t.equal(codeOf(a.body), codeOf(b.body), `${name}: the route's code`)
  }
})
