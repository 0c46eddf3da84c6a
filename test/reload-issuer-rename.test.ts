/**
 * Revocations are kept by configured issuer id (src/revocation/): a reload that renames an issuer's id (same
 * issuer URL) leaves those recorded under the old id behind, and the sessions they revoked are accepted again.
 * The reload says so in a warning naming both ids and how many revocations no longer apply (src/reload.ts,
 * warnRenamedIssuers); other changes of the issuers are no rename.
 */
import t, { type Test } from 'tap'
import pino from 'pino'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import type { Config } from '../src/config/types.js'
import { BACKCHANNEL_LOGOUT_EVENT } from '../src/core/logout-token-rules.js'
import { reloadConfiguration } from '../src/reload.js'
import { renamedIssuers } from '../src/reload-plan.js'
import { configFor as baseConfigFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint, nowSeconds } from './helpers/tokens.js'
import { captureLog } from './helpers/log-capture.js'

const ISS = 'https://idp.example.com'
const OTHER = 'https://other.example.com'
const AUD = 'client-a'
const key = makeKey('ES256')
const REVOCATION = { revocation: { enabled: true }, loadShedding: { enabled: false }, server: { logLevel: 'info' } }

function configFor (issuers: Array<Record<string, unknown>>, extra: Record<string, unknown> = REVOCATION): Config {
  return baseConfigFor(issuers, extra)
}

const issuer = (id: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ id, issuer: ISS, audiences: [AUD], jwks: jwksOf(key), ...extra })

async function logout (app: FastifyInstance, sid: string) {
  const now = nowSeconds()
  const token = mint(key, { iss: ISS, aud: AUD, iat: now, exp: now + 120, jti: `jti-${Math.random()}`, sid, sub: 'u1', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } }, { header: { typ: 'logout+jwt' } })
  return await app.inject({ method: 'POST', url: '/backchannel-logout', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ logout_token: token }).toString() })
}

/** An app with the issuer "corp" whose session s1 a logout has revoked, and a token of that session. */
async function appWithRevokedSession (t: Test, logger: pino.Logger): Promise<{ app: FastifyInstance, session: string }> {
  const app = await buildApp(configFor([issuer('corp')]), { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.ready()
  const session = mint(key, idTokenClaims(ISS, AUD, { sid: 's1', sub: 'u1', iat: nowSeconds() - 10 }))
  t.equal((await logout(app, 's1')).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/verify', payload: { token: session } })).json().code, 'token_revoked')
  return { app, session }
}

const renameWarnings = (lines: Array<Record<string, unknown>>): Array<Record<string, unknown>> =>
  lines.filter((l) => l.component === 'reload' && typeof l.msg === 'string' && l.msg.startsWith('issuer id renamed'))

t.test('a reload that renames an issuer id warns that the revocations of the old id no longer apply', async (t) => {
  const { lines, logger } = captureLog()
  const { app, session } = await appWithRevokedSession(t, logger)

  const result = await reloadConfiguration(app, () => configFor([issuer('corp-eu')]))
  t.equal(result.outcome, 'applied')
  const warnings = renameWarnings(lines())
  t.equal(warnings.length, 1, 'one warning')
  t.match(warnings[0], { level: 40, issuer: ISS, from: 'corp', to: 'corp-eu', revocationsHeld: 1 })
  t.match(warnings[0]?.msg, /from "corp" to "corp-eu".*1 recorded under "corp" no longer apply/)
  t.match(warnings[0]?.msg, /"issuer": "corp-eu", "all": true/, 'and what to do')
  // What the warning is about: the revoked session is accepted again under the new id.
  t.equal((await app.inject({ method: 'POST', url: '/verify', payload: { token: session } })).statusCode, 200)
})

t.test('other changes of the issuers are no rename; without revocation there is nothing to warn about', async (t) => {
  const { lines, logger } = captureLog()
  const app = await buildApp(configFor([issuer('corp')]), { loggerInstance: logger })
  t.teardown(() => app.close())
  await app.ready()
  t.equal((await reloadConfiguration(app, () => configFor([issuer('corp', { audiences: [AUD, 'client-b'] })]))).outcome, 'applied')
  t.equal((await reloadConfiguration(app, () => configFor([issuer('corp'), { ...issuer('other'), issuer: OTHER }]))).outcome, 'applied')
  t.equal((await reloadConfiguration(app, () => configFor([issuer('corp'), { ...issuer('third'), issuer: 'https://third.example.com' }]))).outcome, 'applied', 'one removed, another URL added')
  t.same(renameWarnings(lines()), [])

  const plain = captureLog()
  const off = await buildApp(configFor([issuer('corp')], { loadShedding: { enabled: false }, server: { logLevel: 'info' } }), { loggerInstance: plain.logger })
  t.teardown(() => off.close())
  await off.ready()
  t.equal((await reloadConfiguration(off, () => configFor([issuer('corp-eu')], { loadShedding: { enabled: false }, server: { logLevel: 'info' } }))).outcome, 'applied')
  t.same(renameWarnings(plain.lines()), [], 'revocation off: no revocations to lose')
})

t.test('renamedIssuers: pairs gone and new ids of one issuer URL, shared URLs included', async (t) => {
  const running = configFor([issuer('a'), issuer('b', { audiences: ['client-b'] }), { ...issuer('x'), issuer: OTHER }])
  t.same(renamedIssuers(running, running), [])
  t.same(renamedIssuers(running, configFor([issuer('a'), issuer('b2', { audiences: ['client-b'] }), { ...issuer('x'), issuer: OTHER }])),
    [{ issuer: ISS, from: 'b', to: 'b2' }])
  t.same(renamedIssuers(running, configFor([{ ...issuer('x2'), issuer: OTHER }])), [{ issuer: OTHER, from: 'x', to: 'x2' }], 'a and b removed with no new id for their URL')
})

t.test('a rename that also moves the issuer URL, the old one kept as an alias, is a rename too', async (t) => {
  const NEW = 'https://login.example.com'
  const { lines, logger } = captureLog()
  const { app, session } = await appWithRevokedSession(t, logger)

  // The provider moved to a new URL; its tokens of the old one are still accepted (an alias), under the new id.
  const result = await reloadConfiguration(app, () => configFor([issuer('corp-login', { issuer: NEW, issuerAliases: [ISS] })]))
  t.equal(result.outcome, 'applied')
  t.equal((await app.inject({ method: 'POST', url: '/verify', payload: { token: session } })).statusCode, 200, 'the revoked session is accepted again')
  t.match(renameWarnings(lines()), [{ issuer: ISS, from: 'corp', to: 'corp-login', revocationsHeld: 1 }], 'and the reload says so')
  t.same(renamedIssuers(configFor([issuer('a', { issuer: NEW, issuerAliases: [ISS] })]), configFor([issuer('b')])), [{ issuer: ISS, from: 'a', to: 'b' }], 'the other way round')
})
