/**
 * The ID-token rules (src/core/id-token-rules.ts) at their edges, called directly: the sub length bound, the
 * NumericDate range, an audience list with a member that is not a string or not ours, azp with several audiences,
 * an authorized party as azp, narrowing to one audience, acr's type, c_hash required with a code, how far a
 * time check is off, and the token type's spellings (media type prefix, letter case, provider type claims).
 */
import t from 'tap'
import { checkIdTokenClaims, checkTokenType, type IssuerRules, type RequestChecks } from '../src/core/id-token-rules.js'
import { MAX_NUMERIC_DATE } from '../src/core/numeric-date.js'

const NOW = 1_900_000_000
const rules: IssuerRules = {
  id: 'idp',
  audiences: new Set(['client-1', 'client-2']),
  authorizedParties: new Set(['gateway']),
  clockToleranceSeconds: 0,
  maxTokenAgeSeconds: undefined,
  requiredClaims: new Map(),
  checkAuthorizedParty: true,
  accessTokenClaims: []
}

function outcome (claims: Record<string, unknown>, request: RequestChecks = {}, r: IssuerRules = rules): string {
  try {
    checkIdTokenClaims({ sub: 'user-1', aud: 'client-1', iat: NOW - 10, exp: NOW + 600, ...claims }, r, request, 'ES256', 'P-256', NOW)
    return 'ok'
  } catch (err) {
    const e = err as { code: string, details: { claim?: string } }
    return e.details.claim === undefined ? e.code : `${e.code}:${e.details.claim}`
  }
}

t.test('sub: up to 255 characters', async (t) => {
  t.equal(outcome({ sub: 's'.repeat(255) }), 'ok')
  t.equal(outcome({ sub: 's'.repeat(256) }), 'claim_invalid:sub')
})

t.test('NumericDate: from 0 to 9999-12-31T23:59:59Z, both included', async (t) => {
  t.equal(MAX_NUMERIC_DATE, Date.UTC(9999, 11, 31, 23, 59, 59) / 1000)
  t.equal(outcome({ nbf: 0 }), 'ok')
  t.equal(outcome({ nbf: -0.5 }), 'claim_invalid:nbf', 'before the epoch, however little')
  t.equal(outcome({ exp: MAX_NUMERIC_DATE }), 'ok')
  t.equal(outcome({ exp: MAX_NUMERIC_DATE + 1 }), 'claim_invalid:exp')
})

t.test('aud: every member a string, every member ours', async (t) => {
  t.equal(outcome({ aud: ['client-1', 5], azp: 'client-1' }), 'claim_invalid:aud', 'a member that is no string: the claim is malformed')
  t.equal(outcome({ aud: ['client-1', 'stranger'], azp: 'client-1' }), 'audience_mismatch:aud', 'an audience we do not trust')
  t.equal(outcome({ aud: ['client-1', 'client-2'], azp: 'client-1' }), 'ok')
})

t.test('azp: required with two audiences; an authorized party may be it', async (t) => {
  t.equal(outcome({ aud: ['client-1', 'client-2'] }), 'authorized_party_mismatch:azp')
  t.equal(outcome({ azp: 'gateway' }), 'ok', 'an authorized party, not an audience')
  t.equal(outcome({ azp: 'stranger' }), 'authorized_party_mismatch:azp')
})

t.test('narrowed to one audience', async (t) => {
  t.equal(outcome({}, { audience: 'client-2' }), 'audience_mismatch:aud', 'the token is not for that client')
  t.equal(outcome({}, { audience: 'client-1' }), 'ok')
  // An authorized party that is also one of our audiences may present a token for another of them.
  const both: IssuerRules = { ...rules, authorizedParties: new Set(['client-2']) }
  t.equal(outcome({ aud: ['client-1', 'client-2'], azp: 'client-2' }, { audience: 'client-1' }, both), 'ok')
  t.equal(outcome({ aud: ['client-1', 'client-2'], azp: 'client-2' }, { audience: 'client-1' }), 'authorized_party_mismatch:azp', 'another client of ours')
})

t.test('acr is a string; a code needs a c_hash; how far past nbf is told without the tolerance', async (t) => {
  t.equal(outcome({ acr: ['gold'] }), 'claim_invalid:acr')
  t.equal(outcome({}, { code: 'code-1' }), 'c_hash_missing:c_hash')
  try {
    checkIdTokenClaims({ sub: 'user-1', aud: 'client-1', iat: NOW - 10, exp: NOW + 600, nbf: NOW + 40 }, { ...rules, clockToleranceSeconds: 30 }, {}, 'ES256', 'P-256', NOW)
    t.fail('accepted')
  } catch (err) {
    t.match(err, { code: 'token_not_yet_valid', details: { claim: 'nbf', offBySeconds: 40 } })
  }
})

t.test('token type: media type prefix and letter case, the type claims of Keycloak and Cognito, access-token-only claims', async (t) => {
  const typeOf = (header: Record<string, unknown>, claims: Record<string, unknown> = {}, accessTokenClaims: string[] = []): string => {
    try {
      checkTokenType(header, claims, { id: 'idp', accessTokenClaims })
      return 'ok'
    } catch (err) {
      const e = err as { code: string, details: { claim?: string } }
      return e.details.claim === undefined ? e.code : `${e.code}:${e.details.claim}`
    }
  }
  t.equal(typeOf({ typ: 'JWT' }), 'ok')
  t.equal(typeOf({ typ: 'application/jwt' }), 'ok')
  t.equal(typeOf({ typ: 'application/at+jwt' }), 'token_is_access_token')
  t.equal(typeOf({ typ: 'Application/Logout+JWT' }), 'token_is_logout_token')
  t.equal(typeOf({}, { typ: 'ID' }), 'ok')
  t.equal(typeOf({}, { typ: 'DPoP' }), 'token_is_access_token:typ')
  t.equal(typeOf({}, { typ: 'Bearer' }), 'token_is_access_token:typ')
  t.equal(typeOf({}, { token_use: 'access' }), 'token_is_access_token:token_use')
  t.equal(typeOf({}, { token_use: 'refresh' }), 'token_type_invalid:token_use')
  t.equal(typeOf({}, { scp: null }, ['scp']), 'token_is_access_token:scp', 'present even as null')
})
