/**
 * server.signatureChecks end to end: the service gives the same answers whether its signature checks run in
 * the thread pool or batched on the event loop (every algorithm, forgeries, a burst of new tokens larger
 * than one turn's slice), and `auto` follows the cores the process has to itself.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { coresPerProcess } from '../src/cluster-primary.js'
import { MAX_CHECKS_PER_TURN } from '../src/core/signature-checks.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-a'
const keys = [makeKey('ES256'), makeKey('RS256'), makeKey('PS256'), makeKey('EdDSA')]
const es = keys[0] as ReturnType<typeof makeKey>
const forger = makeKey('ES256', { kid: es.kid }) // same kid, another key

for (const mode of ['thread-pool', 'event-loop'] as const) {
  t.test(`${mode}: the same answers`, async (t) => {
    const app = await buildApp(configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(...keys) }], { server: { signatureChecks: mode } }))
    t.teardown(() => app.close())
    t.equal(app.verifier.signatureChecks, mode)
    const verify = async (token: string): Promise<{ status: number, code: string | undefined, subject: string | undefined }> => {
      const res = await app.inject({ method: 'POST', url: '/verify', payload: { token } })
      const body = res.json()
      return { status: res.statusCode, code: body.code, subject: body.subject }
    }
    for (const key of keys) {
      t.same(await verify(mint(key, idTokenClaims(ISS, AUD))), { status: 200, code: undefined, subject: 'user-123' }, key.alg)
    }
    t.same(await verify(mint(forger, idTokenClaims(ISS, AUD))), { status: 401, code: 'signature_invalid', subject: undefined }, 'a forged signature')
    const [header, payload, signature] = mint(es, idTokenClaims(ISS, AUD)).split('.') as [string, string, string]
    const short = Buffer.from(signature, 'base64url').subarray(0, 60).toString('base64url')
    t.same(await verify(`${header}.${payload}.${short}`), { status: 401, code: 'signature_invalid', subject: undefined }, 'a signature too short for ES256')

    // A burst of new tokens, every third one forged, all in flight at once: more than one turn's slice.
    const count = MAX_CHECKS_PER_TURN * 2 + 7
    const answers = await Promise.all(Array.from({ length: count }, async (_, i) =>
      await verify(mint(i % 3 === 0 ? forger : es, idTokenClaims(ISS, AUD, { sub: `user-${i}` })))))
    t.same(answers, Array.from({ length: count }, (_, i) => i % 3 === 0
      ? { status: 401, code: 'signature_invalid', subject: undefined }
      : { status: 200, code: undefined, subject: `user-${i}` }), 'each answer belongs to its own token')
  })
}

t.test('auto: the thread pool with two cores or more for the process, else the event loop', async (t) => {
  const config = configFor([{ id: 'main', issuer: ISS, audiences: [AUD], jwks: jwksOf(es) }])
  t.equal(config.server.signatureChecks, 'auto', 'the default')
  for (const [cores, mode] of [[1, 'event-loop'], [1.5, 'event-loop'], [2, 'thread-pool'], [16, 'thread-pool']] as const) {
    const app = await buildApp(config, { coresPerProcess: cores })
    t.equal(app.verifier.signatureChecks, mode, `${cores} cores`)
    await app.close()
  }
})

t.test('coresPerProcess: the workers of one host share its cores', async (t) => {
  t.equal(coresPerProcess({}, 8, false), 8, 'a single process has them all')
  t.equal(coresPerProcess({ WORKERS: '4' }, 8, false), 8, 'the cluster primary is not counted as a worker')
  t.equal(coresPerProcess({ WORKERS: '4' }, 8, true), 2)
  t.equal(coresPerProcess({ WORKERS: '3' }, 4, true), 4 / 3)
  t.equal(coresPerProcess({ WORKERS: 'auto' }, 8, true), 1, 'one worker per core')
  t.equal(coresPerProcess({ WORKERS: 'bogus' }, 8, true), 8, 'an invalid value (refused at start-up) counts as one worker')
})
