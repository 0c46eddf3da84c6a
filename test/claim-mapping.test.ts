/**
 * Claim mapping: the path syntax reaches nested objects, array members and names with dots and slashes;
 * values are normalized to the response types; a mapping that points at nothing gives an absent field.
 */
import t from 'tap'
import type { IssuerConfig } from '../src/config/types.js'
import { isVerificationError } from '../src/errors.js'
import { compileClaimMapping, normalizeIdentity } from '../src/core/normalize.js'
import { configFor, configProblems } from './helpers/config.js'

const base = { iss: 'https://idp.example', sub: 'u1', aud: 'c', iat: 1, exp: 2 }

function identity (mapping: IssuerConfig['claimMapping'], claims: Record<string, unknown>, opts: Parameters<typeof compileClaimMapping>[1] = {}) {
  const all = { ...base, ...claims }
  return normalizeIdentity({ issuerId: 'i', issuerUrl: all.iss, claims: all, subject: 'u1', audiences: ['c'], nowSeconds: 1 }, compileClaimMapping(mapping, opts))
}

t.test('paths reach nested members, array members and odd claim names', async (t) => {
  const claims = {
    realm_access: { roles: ['r1', 'r2'] },
    'https://example.com/roles': ['ns-role'],
    resource_access: { 'my.client': { roles: ['c1'] } },
    emails: ['first@example.com', 'second@example.com'],
    'cognito:groups': ['g1']
  }
  const id = identity({
    roles: ['realm_access.roles', '["https://example.com/roles"]', 'resource_access["my.client"].roles'],
    email: 'emails[1]',
    groups: 'cognito:groups'
  }, claims)
  t.same(id.roles, ['r1', 'r2', 'ns-role', 'c1'])
  t.equal(id.user.email, 'second@example.com')
  t.same(id.groups, ['g1'])
})

t.test('[$claim] names a member by a top-level claim of the same token', async (t) => {
  const resourceAccess = { 'my-app': { roles: ['editor'] }, 'admin-console': { roles: ['admin'] } }
  const roles = (claims: Record<string, unknown>): string[] => identity({ roles: ['realm_access.roles', 'resource_access[$azp].roles'] }, { realm_access: { roles: ['r'] }, resource_access: resourceAccess, ...claims }).roles
  t.same(roles({ azp: 'my-app' }), ['r', 'editor'])
  t.same(roles({ azp: 'admin-console' }), ['r', 'admin'])
  for (const [azp, name] of [[undefined, 'absent'], [7, 'a number'], [['my-app'], 'a list'], ['', 'empty'], ['other', 'no such member'], ['toString', 'an inherited name']] as const) {
    t.same(roles({ azp }), ['r'], `azp ${name}: nothing from that path`)
  }
  t.same(roles(JSON.parse('{"__proto__": "my-app"}') as Record<string, unknown>), ['r'], 'a reference to a claim that is not there (azp) reads nothing')
  t.same(identity({ name: 'names[$lang]' }, { lang: 'de', names: { de: 'Jörg', en: 'George' } }).user.name, 'Jörg', 'any field, any claim')
})

t.test('several paths: lists merge without duplicates, single values take the first present', async (t) => {
  const id = identity({ groups: ['a', 'b'], preferredUsername: ['preferred_username', 'upn', 'unique_name'] }, { a: ['x', 'y'], b: ['y', 'z'], upn: 'u@example.com', unique_name: 'other' })
  t.same(id.groups, ['x', 'y', 'z'])
  t.equal(id.user.preferredUsername, 'u@example.com')
  t.equal(identity({ name: ['a', 'b'] }, { a: null, b: 'B' }).user.name, 'B', 'null is absent')
})

t.test('split turns space-separated strings into lists', async (t) => {
  t.same(identity({ roles: { path: 'scp', split: true } }, { scp: ' read  write\tadmin ' }).roles, ['read', 'write', 'admin'])
  t.same(identity({ roles: { path: ['scp', 'extra'], split: true } }, { scp: 'a b', extra: ['b c', 'd'] }).roles, ['a', 'b', 'c', 'd'])
  t.same(identity({ roles: 'scp' }, { scp: 'read write' }).roles, ['read write'], 'without split a string is one value ("Domain Admins")')
  t.same(identity({ roles: { path: 'scp' } }, { scp: 'a b' }).roles, ['a b'])
})

t.test('values are normalized to the response types; anything else is absent, never an error', async (t) => {
  const odd = identity({
    email: 'obj', name: 'arr', givenName: 'num', familyName: 'bool', picture: 'missing.deep.path', locale: 'deep[5]', groups: 'mixed', roles: 'objroles', tenant: 'n'
  }, { obj: { a: 1 }, arr: ['x'], num: 42, bool: true, deep: [1], mixed: ['a', 1, null, { b: 2 }, ['c'], 'd', ''], objroles: { admin: true }, n: Infinity })
  t.equal(odd.user.email, null)
  t.equal(odd.user.emailVerified, false)
  t.equal(odd.user.name, null)
  t.equal(odd.user.givenName, '42', 'numbers become strings')
  t.equal(odd.user.familyName, null)
  t.equal(odd.user.picture, null)
  t.equal(odd.user.locale, null)
  t.same(odd.groups, ['a', 'd'])
  t.same(odd.roles, [])
  t.equal(odd.tenant, null)
  // A number past 2^53 was rounded as JSON was read: not the value the provider signed.
  const big = JSON.parse('9007199254740993') as number
  t.same([identity({ tenant: 'org' }, { org: big }).tenant, identity({}, { name: -big }).user.name], [null, null], 'a number past 2^53 is absent')
  t.equal(identity({ tenant: 'org' }, { org: 9007199254740991 }).tenant, '9007199254740991', '2^53 - 1 is exact')
  // Prototype names are never followed.
  const proto = identity({ email: '__proto__.polluted', name: 'constructor', roles: 'toString' }, {})
  t.same([proto.user.email, proto.user.name, proto.roles], [null, null, []])
})

t.test('emailVerified is true only for true or "true", and only when trusted', async (t) => {
  for (const [value, expected] of [[true, true], ['true', true], ['TRUE', false], [1, false], ['yes', false], [undefined, false]] as const) {
    t.equal(identity({}, { email: 'a@example.com', email_verified: value }).user.emailVerified, expected, String(value))
  }
  t.equal(identity({}, { email_verified: true }).user.emailVerified, false, 'no email, nothing verified')
  // email_verified speaks of the email claim: an address from a fallback path is not the one it vouches for.
  const fallback = identity({ email: ['email', 'upn'] }, { upn: 'ceo@corp.example', email_verified: true })
  t.same([fallback.user.email, fallback.user.emailVerified], ['ceo@corp.example', false], 'an address from the second path')
  t.equal(identity({ email: ['email', 'upn'] }, { email: 'a@example.com', upn: 'b@example.com', email_verified: true }).user.emailVerified, true, 'from the first path')
  t.equal(identity({}, { email: 'a@example.com', email_verified: true }, { trustEmailVerified: false }).user.emailVerified, false)
})

t.test('a string with a lone surrogate is not text: absent from the identity, refused in the user key', async (t) => {
  // JSON.parse('"\\ud800"') is a lone surrogate: it has no UTF-8 form, and a header would carry it as U+FFFD, the
  // same as another user's real U+FFFD (or a lone \udc00).
  const lone = JSON.parse('"bob\\ud800"') as string
  t.notOk(lone.isWellFormed())
  const id = identity({ groups: 'groups' }, { email: lone, name: lone, preferred_username: lone, groups: ['admins', lone, 'bob\ufffd'] })
  t.same([id.user.email, id.user.name, id.user.preferredUsername], [null, null, null])
  t.same(id.groups, ['admins', 'bob\ufffd'], 'left out of a list; a real U+FFFD and a surrogate pair are text')
  t.equal(identity({}, { email: 'a😀@example.com' }).user.email, 'a😀@example.com', 'a surrogate pair is kept')
  t.equal(identity({ tenant: 'hd' }, { hd: lone }).tenant, null)
  try {
    identity({}, { preferred_username: lone }, { userKeyClaims: ['preferred_username'] })
    t.fail('expected a VerificationError')
  } catch (err) {
    t.match(err, { code: 'claim_invalid', details: { claim: 'preferred_username' } })
  }
})

t.test('expiresIn counts the whole seconds left, never below 0 (a token inside the clock tolerance after its exp)', async (t) => {
  const at = (nowSeconds: number): number => normalizeIdentity({ issuerId: 'i', issuerUrl: base.iss, claims: { ...base, exp: 100 }, subject: 'u1', audiences: ['c'], nowSeconds }, compileClaimMapping({})).expiresIn
  t.same([at(40.5), at(100), at(130)], [59, 0, 0])
})

t.test('the user key', async (t) => {
  t.equal(identity({}, {}).userKey, 'u1', 'sub by default')
  t.equal(identity({}, { tid: 't', oid: 'o' }, { userKeyClaims: ['tid', 'oid'] }).userKey, 't:o')
  t.equal(identity({}, { a: 'x:y', b: 'z' }, { userKeyClaims: ['a', 'b'] }).userKey, 'x%3Ay:z', 'parts cannot run into each other')
  t.not(identity({}, { a: 'x', b: 'y:z' }, { userKeyClaims: ['a', 'b'] }).userKey, identity({}, { a: 'x:y', b: 'z' }, { userKeyClaims: ['a', 'b'] }).userKey)
  t.equal(identity({}, { email: 'a@b' }, { userKeyClaims: ['email'] }).userKey, 'a@b')
  // sub first among several claims: the key is still all of them (a tenant's sub must not collide with another's).
  t.equal(identity({}, { tid: 't' }, { userKeyClaims: ['sub', 'tid'] }).userKey, 'u1:t', 'sub as the first of several claims')
  t.equal(identity({}, { tid: 't', oid: 9007199254740991 }, { userKeyClaims: ['tid', 'oid'] }).userKey, 't:9007199254740991', 'a number id: its text')
  // 2^53 + 1 and 2^53 parse to the same number: such an id cannot tell two users apart.
  for (const [claims, code] of [[{ tid: 't' }, 'claim_missing'], [{ tid: 't', oid: '' }, 'claim_invalid'], [{ tid: 't', oid: { x: 1 } }, 'claim_invalid'], [{ tid: 't', oid: JSON.parse('9007199254740993') as number }, 'claim_invalid'], [{ tid: 't', oid: 1.5 }, 'claim_invalid']] as const) {
    try {
      identity({}, claims, { userKeyClaims: ['tid', 'oid'] })
      t.fail('expected a VerificationError')
    } catch (err) {
      t.ok(isVerificationError(err))
      t.same([(err as { code: string }).code, (err as { details: { claim: string } }).details.claim], [code, 'oid'])
    }
  }
})

t.test('configuration of mappings', async (t) => {
  const problems = (issuer: Record<string, unknown>): string[] => {
    return configProblems({ issuers: [{ id: 'a', issuer: 'https://a.example', audiences: ['x'], ...issuer }] })
  }
  t.same(problems({ claimMapping: { roles: ['a', 'b'], groups: { path: 'scp', split: true }, name: { path: ['n1', 'n2'] } }, userKeyClaims: ['tid', 'oid'] }), [])
  t.same(problems({ claimMapping: { roles: [] } }), ['c.yaml: issuers[0].claimMapping.roles: expected a non-empty list of claim paths, got an empty list'])
  t.same(problems({ claimMapping: { roles: ['a..b'] } }), [
    'c.yaml: issuers[0].claimMapping.roles[0]: expected a claim path such as realm_access.roles, groups[0] or ["https://example.com/roles"]: expected a claim name at position 2 in claim path "a..b"'
  ])
  t.match(problems({ claimMapping: { roles: { path: 'x[', split: 'yes' } } }), [/claimMapping\.roles\.split: expected true or false, got "yes"/])
  t.same(problems({ claimMapping: { name: { path: 'n', split: true } } }), ['c.yaml: issuers[0].claimMapping.name.split: applies to the list fields groups and roles only'].map((s) => s.replace('split: applies', 'split: split applies')))
  t.match(problems({ claimMapping: { roles: { paths: 'x' } } }), [/claimMapping\.roles\.paths: unknown option/, /claimMapping\.roles\.path: missing/])
  t.match(problems({ claimMapping: { roles: 5 } }), [/claimMapping\.roles: expected a claim path, a list of claim paths, or a mapping with path and split, got 5/])
  t.match(problems({ userKeyClaims: ['a', 'b', 'c', 'd', 'e'] }), [/userKeyClaims: expected a list of 1 to 4 claim paths/])
  t.match(problems({ userKeyClaims: ['a[x]'] }), [/userKeyClaims\[0\]: expected a claim path/])
  t.same(problems({ claimMapping: { roles: 'resource_access[$azp].roles' } }), [], 'a $claim reference')
  for (const bad of ['a[$]', 'a[$a b]', 'a[$"x"]', '[$azp', 'a[$azp.b]']) {
    t.match(problems({ claimMapping: { roles: bad } }), [/claimMapping\.roles: expected a claim path/], bad)
  }
  t.same(configFor([{ id: 'a', issuer: 'https://a.example', audiences: ['x'], claimMapping: { roles: { path: 'scp', split: true } } }]).issuers[0]!.claimMapping, { roles: { path: 'scp', split: true } })
})

t.test('a null claim is absent: the next path is read (tenant too); a lone-surrogate string alone is no list member', async (t) => {
  t.equal(identity({ tenant: ['tid', 'hd'] }, { tid: null, hd: 'example.com' }).tenant, 'example.com')
  t.equal(identity({ tenant: ['tid', 'hd'] }, { hd: 'example.com' }).tenant, 'example.com')
  t.equal(identity({ tenant: ['tid', 'hd'] }, { tid: 't-1', hd: 'example.com' }).tenant, 't-1')
  const lone = JSON.parse('"adm\\ud800"') as string
  t.same(identity({ groups: 'groups' }, { groups: lone }).groups, [])
  t.same(identity({ groups: { path: 'scope', split: true } }, { scope: `read ${lone}` }).groups, [], 'a split string is refused whole')
})

t.test('an empty string is absent too (OpenID Connect Core §5.1): the next path is read, an empty field is null', async (t) => {
  const id = identity({ preferredUsername: ['preferred_username', 'nickname'], email: ['email', 'upn'], tenant: ['tid', 'hd'] }, {
    preferred_username: '', nickname: 'jd', email: '', upn: 'jd@example.com', email_verified: true, tid: '', hd: 'example.com', name: '', locale: ''
  }, { trustEmailVerified: true })
  t.equal(id.user.preferredUsername, 'jd', 'the fallback path')
  t.equal(id.user.email, 'jd@example.com')
  t.equal(id.user.emailVerified, false, 'an address from a fallback path was verified by nobody')
  t.equal(id.tenant, 'example.com')
  t.same([id.user.name, id.user.locale], [null, null], 'empty with no fallback: null, never ""')
  t.equal(identity({ tenant: 'tid' }, { tid: '' }).tenant, null)
})

t.test('user key parts spelled with an escape of their own do not collide; azp and auth_time keep their types', async (t) => {
  const key = (a: string, b: string): string => identity({}, { a, b }, { userKeyClaims: ['a', 'b'] }).userKey
  t.not(key('x%3Ay', 'z'), key('x:y', 'z'), 'a literal %3A is not a colon')
  t.equal(key('x%3Ay', 'z'), 'x%253Ay:z')
  const odd = identity({}, { azp: 5, auth_time: '1700000000' })
  t.same([odd.authorizedParty, odd.authTime], [null, null])
  const good = identity({}, { azp: 'c', auth_time: 1_700_000_000 })
  t.same([good.authorizedParty, good.authTime], ['c', 1_700_000_000])
})
