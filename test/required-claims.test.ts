/**
 * issuers[].requiredClaims: claim → allowed values. A string claim must be one of them; a list claim (amr in
 * Okta, Entra v1 and Cognito tokens; groups) must have one member among them. A boolean or number claim (or
 * member) is compared by its JSON text. Anything else is claim_value_mismatch, naming the claim.
 */
import t from 'tap'
import { Verifier } from '../src/core/verifier.js'
import { configFor } from './helpers/config.js'
import { idTokenClaims, jwksOf, makeKey, mint } from './helpers/tokens.js'

const ISS = 'https://idp.example.com'
const AUD = 'client-1'
const key = makeKey('ES256')
const v = new Verifier(configFor([{ id: 'idp', issuer: ISS, audiences: [AUD], jwks: jwksOf(key), requiredClaims: { amr: ['mfa', 'hwk'], hd: ['example.com'] } }]))
t.teardown(() => v.close())
const token = (extra: Record<string, unknown>) => mint(key, idTokenClaims(ISS, AUD, { hd: 'example.com', amr: ['pwd', 'mfa'], ...extra }))

t.test('a list claim matches when one member is allowed', async (t) => {
  t.equal((await v.verify(token({}))).subject, 'user-123', 'amr [pwd, mfa]')
  t.equal((await v.verify(token({ amr: ['hwk'] }))).subject, 'user-123', 'amr [hwk]')
  t.equal((await v.verify(token({ amr: 'mfa' }))).subject, 'user-123', 'a single string still matches')
  t.equal((await v.verify(token({ hd: ['example.com'] }))).subject, 'user-123', 'whatever the claim: a list with an allowed member')
})

t.test('anything else is claim_value_mismatch', async (t) => {
  const refused = [
    [{ amr: ['pwd'] }, 'amr', 'no allowed member'],
    [{ amr: [] }, 'amr', 'an empty list'],
    [{ amr: [['mfa']] }, 'amr', 'a nested list'],
    [{ amr: [{ mfa: true }] }, 'amr', 'an object member'],
    [{ amr: ['MFA'] }, 'amr', 'case matters'],
    [{ amr: undefined }, 'amr', 'missing'],
    [{ amr: { 0: 'mfa', length: 1 } }, 'amr', 'an array-like object'],
    [{ hd: 'evil.com' }, 'hd', 'a string not allowed']
  ] as const
  for (const [extra, claim, name] of refused) {
    await t.rejects(v.verify(token(extra)), { code: 'claim_value_mismatch', details: { issuer: 'idp', claim } }, name)
  }
})

t.test('a boolean or number claim is compared by its JSON text: providers type the same claim differently', async (t) => {
  // Google's and Okta's email_verified is true, Cognito's sometimes "true"; Okta's ver is 1. The configuration
  // holds strings only, so without this a required email_verified refused every token whose provider sent a boolean.
  const typed = new Verifier(configFor([{ id: 'typed', issuer: ISS, audiences: [AUD], jwks: jwksOf(key), requiredClaims: { email_verified: 'true', ver: ['1', '2.5'] } }]))
  t.teardown(() => typed.close())
  const typedToken = (extra: Record<string, unknown>) => mint(key, idTokenClaims(ISS, AUD, { email_verified: true, ver: 1, ...extra }))
  for (const [extra, name] of [
    [{}, 'email_verified true, ver 1'],
    [{ email_verified: 'true', ver: '1' }, 'the same as strings'],
    [{ ver: 2.5 }, 'a fraction'],
    [{ ver: [1] }, 'a list member']
  ] as const) {
    t.equal((await typed.verify(typedToken(extra))).subject, 'user-123', name)
  }
  const refused = [
    [{ email_verified: false }, 'email_verified', 'false is not "true"'],
    [{ email_verified: 'false' }, 'email_verified', '"false" is not "true"'],
    [{ email_verified: 'True' }, 'email_verified', 'the text is compared exactly'],
    [{ email_verified: 1 }, 'email_verified', '1 is not "true"'],
    [{ email_verified: null }, 'email_verified', 'null is no value'],
    [{ email_verified: undefined }, 'email_verified', 'missing'],
    [{ ver: 1.0001 }, 'ver', 'another number'],
    [{ ver: [[1]] }, 'ver', 'a nested list'],
    [{ ver: { 1: true } }, 'ver', 'an object']
  ] as const
  for (const [extra, claim, name] of refused) {
    await t.rejects(typed.verify(typedToken(extra)), { code: 'claim_value_mismatch', details: { issuer: 'typed', claim } }, name)
  }
})

t.test('an integer claim past 2^53 matches no required text: JSON.parse rounded it, so another number would match', async (t) => {
  // 9007199254740993 parses as 9007199254740992: without this, an org id one apart from the required one passed.
  const big = new Verifier(configFor([{ id: 'big', issuer: ISS, audiences: [AUD], jwks: jwksOf(key), requiredClaims: { org: '9007199254740992' } }]))
  t.teardown(() => big.close())
  const withOrg = (org: string): string => mint(key, {}, { rawPayload: JSON.stringify(idTokenClaims(ISS, AUD)).replace('{', `{"org":${org},`) })
  for (const org of ['9007199254740993', '9007199254740992', '9.007199254740993e15']) {
    await t.rejects(big.verify(withOrg(org)), { code: 'claim_value_mismatch', details: { issuer: 'big', claim: 'org' } }, org)
  }
  t.equal((await big.verify(withOrg('"9007199254740992"'))).subject, 'user-123', 'the same id as a string: its text is exact')
})

t.test('a numeric tenant past 2^53 is no tenant: allowedTenants refuses it rather than take it for its rounded neighbour', async (t) => {
  const orgs = new Verifier(configFor([{ id: 'orgs', issuer: ISS, audiences: [AUD], jwks: jwksOf(key), claimMapping: { tenant: 'org_id' }, allowedTenants: ['9007199254740992', '42'] }]))
  t.teardown(() => orgs.close())
  const withOrg = (org: string): string => mint(key, {}, { rawPayload: JSON.stringify(idTokenClaims(ISS, AUD)).replace('{', `{"org_id":${org},`) })
  for (const org of ['9007199254740993', '9007199254740992']) {
    await t.rejects(orgs.verify(withOrg(org)), { code: 'tenant_not_allowed' }, org)
  }
  t.equal((await orgs.verify(withOrg('42'))).tenant, '42', 'a number JSON holds exactly is its text')
  t.equal((await orgs.verify(withOrg('"9007199254740992"'))).tenant, '9007199254740992', 'the same id as a string')
})
