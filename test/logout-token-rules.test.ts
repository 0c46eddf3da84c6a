/**
 * The logout-token rules (src/core/logout-token-rules.ts) called directly, at their edges: the accepted types,
 * the audience list, iat/exp/nbf with the clock tolerance one second either side, the NumericDate range, the
 * shape of events, no nonce, and sid or sub.
 */
import t from 'tap'
import type { IssuerRules } from '../src/core/id-token-rules.js'
import { BACKCHANNEL_LOGOUT_EVENT, checkLogoutTokenClaims, checkLogoutTokenType } from '../src/core/logout-token-rules.js'
import { MAX_NUMERIC_DATE } from '../src/core/numeric-date.js'

const NOW = 1_900_000_000
const TOL = 30
const MAX_AGE = 120
const rules: IssuerRules = {
  id: 'idp',
  audiences: new Set(['client-1', 'client-2']),
  authorizedParties: new Set(),
  clockToleranceSeconds: TOL,
  maxTokenAgeSeconds: undefined,
  requiredClaims: new Map(),
  checkAuthorizedParty: true,
  accessTokenClaims: []
}

function outcome (claims: Record<string, unknown>): string {
  try {
    checkLogoutTokenClaims({ aud: 'client-1', iat: NOW, jti: 'j-1', sid: 's-1', events: { [BACKCHANNEL_LOGOUT_EVENT]: {} }, ...claims }, rules, MAX_AGE, NOW)
    return 'ok'
  } catch (err) {
    const e = err as { code: string, details: { claim?: string } }
    return `${e.code}:${e.details.claim ?? ''}`
  }
}

function typeOutcome (header: Record<string, unknown>): string {
  try {
    checkLogoutTokenType(header, 'idp')
    return 'ok'
  } catch (err) {
    return (err as { code: string }).code
  }
}

t.test('type: none, JWT or logout+jwt, with or without application/, in any letter case', async (t) => {
  for (const typ of [undefined, 'JWT', 'logout+jwt', 'application/logout+jwt', 'Application/Logout+JWT']) {
    t.equal(typeOutcome(typ === undefined ? {} : { typ }), 'ok', String(typ))
  }
  for (const typ of ['at+jwt', 'application/at+jwt', 5]) t.equal(typeOutcome({ typ }), 'logout_token_invalid', String(typ))
})

t.test('aud: configured audiences only, at least one', async (t) => {
  t.equal(outcome({ aud: ['client-1', 'client-2'] }), 'ok')
  t.equal(outcome({ aud: ['client-1', 'stranger'] }), 'logout_token_invalid:aud')
  t.equal(outcome({ aud: [] }), 'logout_token_invalid:aud')
  t.equal(outcome({ aud: ['client-1', 5] }), 'logout_token_invalid:aud')
})

t.test('iat, exp and nbf at the tolerance\'s edges', async (t) => {
  t.equal(outcome({ iat: NOW + TOL }), 'ok')
  t.equal(outcome({ iat: NOW + TOL + 1 }), 'logout_token_invalid:iat')
  t.equal(outcome({ iat: NOW - MAX_AGE - TOL }), 'ok')
  t.equal(outcome({ iat: NOW - MAX_AGE - TOL - 1 }), 'logout_token_invalid:iat')
  t.equal(outcome({ iat: undefined }), 'logout_token_invalid:iat')
  t.equal(outcome({ exp: NOW - TOL + 1 }), 'ok')
  t.equal(outcome({ exp: NOW - TOL }), 'logout_token_invalid:exp')
  t.equal(outcome({ nbf: NOW + TOL }), 'ok')
  t.equal(outcome({ nbf: NOW + TOL + 1 }), 'logout_token_invalid:nbf')
})

t.test('NumericDate: from 0 to 9999-12-31T23:59:59Z', async (t) => {
  t.equal(outcome({ nbf: 0 }), 'ok')
  t.equal(outcome({ nbf: -0.5 }), 'logout_token_invalid:nbf')
  t.equal(outcome({ exp: MAX_NUMERIC_DATE }), 'ok')
  t.equal(outcome({ exp: MAX_NUMERIC_DATE + 1 }), 'logout_token_invalid:exp')
})

t.test('events, nonce, jti, and sid or sub', async (t) => {
  t.equal(outcome({ events: [BACKCHANNEL_LOGOUT_EVENT] }), 'logout_token_invalid:events')
  t.equal(outcome({ events: { [BACKCHANNEL_LOGOUT_EVENT]: [] } }), 'logout_token_invalid:events')
  t.equal(outcome({ events: { [BACKCHANNEL_LOGOUT_EVENT]: 'x' } }), 'logout_token_invalid:events')
  t.equal(outcome({ events: { other: {} } }), 'logout_token_invalid:events')
  t.equal(outcome({ nonce: 'n' }), 'logout_token_invalid:nonce')
  t.equal(outcome({ jti: undefined }), 'logout_token_invalid:jti')
  t.equal(outcome({ sid: undefined, sub: 'user-1' }), 'ok', 'sub alone')
  t.equal(outcome({ sid: 's-1', sub: 'user-1' }), 'ok', 'both')
  t.equal(outcome({ sid: undefined }), 'logout_token_invalid:sid', 'neither')
  t.equal(outcome({ sid: '' }), 'logout_token_invalid:sid', 'not a value the revocation list holds')
  t.equal(outcome({ sub: 'a\ud800' }), 'logout_token_invalid:sub', 'a lone surrogate')
})
