/**
 * Provider presets: tokens shaped like each provider's own (claims and issuers from their documentation),
 * signed by test keys, verified through each preset; the preset's traps; every setting still overridable.
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { ConfigError, parseConfig } from '../src/config/load.js'
import { PRESET_NAMES } from '../src/config/types.js'
import { configFor, configProblems } from './helpers/config.js'
import { jwksOf, makeKey, mint, nowSeconds } from './helpers/tokens.js'
import { matchExactly } from './helpers/exact-match.js'

const rs = makeKey('RS256')
const es = makeKey('ES256')
const jwks = jwksOf(rs, es)

function problemsOf (fn: () => unknown): string[] {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  throw new Error('expected a ConfigError')
}

const now = nowSeconds()
const times = { iat: now - 5, exp: now + 3600 }

const GOOGLE_CLIENT = '1234987819200-abc.apps.googleusercontent.com'
const ENTRA_TENANT = '9122040d-6c67-4c5b-b112-36a304b66dad'
const ENTRA_CLIENT = '6cb04018-a3f5-46a7-b995-940c78f5aef3'
const AUTH0_ISSUER = 'https://example.eu.auth0.com/'
const AUTH0_CLIENT = 'AbCdEfGhIjKlMnOpQrStUvWxYz012345'
const OKTA_ISSUER = 'https://example.okta.com/oauth2/default'
const OKTA_ORG_ISSUER = 'https://example.okta.com'
const OKTA_CLIENT = '0oa1b2c3d4e5f6g7h8i9'
const COGNITO_ISSUER = 'https://cognito-idp.us-west-2.amazonaws.com/us-west-2_aaaaaaaaa'
const COGNITO_CLIENT = '1example23456789'
const KEYCLOAK_ISSUER = 'https://sso.example.com/realms/main'
const RUN_URL = 'https://my-service-abc123-uc.a.run.app'
const SA_EMAIL = 'caller@my-project.iam.gserviceaccount.com'

/** Google's documented ID token (developers.google.com/identity/openid-connect/openid-connect). */
const googleClaims = (extra: Record<string, unknown> = {}) => ({
  iss: 'https://accounts.google.com',
  azp: GOOGLE_CLIENT,
  aud: GOOGLE_CLIENT,
  sub: '10769150350006150715113082367',
  at_hash: 'HK6E_P6Dh8Y93mRNtsDB1Q',
  hd: 'example.com',
  email: 'jsmith@example.com',
  email_verified: 'true',
  name: 'Jane Smith',
  given_name: 'Jane',
  family_name: 'Smith',
  picture: 'https://lh3.googleusercontent.com/a/photo.jpg',
  locale: 'en',
  nonce: '0394852-3190485-2490358',
  ...times,
  ...extra
})

/** Entra ID v2.0 (learn.microsoft.com, ID token claims reference). */
const entraClaims = (extra: Record<string, unknown> = {}) => ({
  ver: '2.0',
  iss: `https://login.microsoftonline.com/${ENTRA_TENANT}/v2.0`,
  sub: 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ',
  aud: ENTRA_CLIENT,
  nbf: times.iat,
  name: 'Abe Lincoln',
  preferred_username: 'AbeLi@microsoft.com',
  email: 'AbeLi@microsoft.com',
  oid: '00000000-0000-0000-66f3-3332eca7ea81',
  tid: ENTRA_TENANT,
  roles: ['Task.Admin'],
  groups: ['c8b2f4a0-0000-4000-8000-000000000001'],
  nonce: '123523',
  aio: 'Df2UVXL1ix!lMCWMSOJBcFatzcGfvFGhjKv8q5g0x732dR5MB5BisvGQO7YWByjd8iQDLq!eGbIDakyp5mnOrcdqHeYSnltepQmRp6AIZ8jY',
  ...times,
  ...extra
})

/** Entra ID v1.0 ID token. */
const entraV1Claims = (extra: Record<string, unknown> = {}) => ({
  ver: '1.0',
  iss: `https://sts.windows.net/${ENTRA_TENANT}/`,
  aud: ENTRA_CLIENT,
  sub: 'l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA',
  amr: ['pwd'],
  family_name: 'Lincoln',
  given_name: 'Abe',
  ipaddr: '131.107.222.22',
  name: 'abe lincoln',
  oid: '00000000-0000-0000-66f3-3332eca7ea81',
  tid: ENTRA_TENANT,
  unique_name: 'AbeLi@microsoft.com',
  upn: 'AbeLi@microsoft.com',
  nbf: times.iat,
  ...times,
  ...extra
})

/** Auth0 (auth0.com/docs/secure/tokens/id-tokens/id-token-structure), with a namespaced custom claim. */
const auth0Claims = (extra: Record<string, unknown> = {}) => ({
  given_name: 'Jane',
  family_name: 'Doe',
  nickname: 'jane.doe',
  name: 'Jane Doe',
  picture: 'https://s.gravatar.com/avatar/abc.png',
  locale: 'en',
  updated_at: '2024-01-01T00:00:00.000Z',
  email: 'jane.doe@example.com',
  email_verified: true,
  iss: AUTH0_ISSUER,
  aud: AUTH0_CLIENT,
  sub: 'auth0|5f7c8ec7c33c6c004bbafe82',
  sid: 'Ztj5QTJnXbQ2pLrbq2vS3qj-o0MtDDoa',
  nonce: 'abc123',
  'https://example.com/roles': ['admin', 'editor'],
  ...times,
  ...extra
})

/** Okta (developer.okta.com, ID token claims). */
const oktaClaims = (iss: string, extra: Record<string, unknown> = {}) => ({
  sub: '00uid4BxXw6I6TV4m0g3',
  name: 'John Doe',
  email: 'john.doe@example.com',
  ver: 1,
  iss,
  aud: OKTA_CLIENT,
  jti: 'ID.4eAWJOCMB3SX8XewDfVR',
  amr: ['pwd'],
  idp: '00ok1u7AsAkrwdZL3z0g3',
  nonce: 'n-0S6_WzA2Mj',
  preferred_username: 'john.doe@example.com',
  auth_time: times.iat - 10,
  at_hash: 'preview_at_hash',
  groups: ['Everyone', 'Admins'],
  ...times,
  ...extra
})

/** AWS Cognito (docs.aws.amazon.com/cognito, the ID token). */
const cognitoClaims = (extra: Record<string, unknown> = {}) => ({
  sub: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
  'cognito:groups': ['test-group-a', 'test-group-b'],
  email_verified: true,
  iss: COGNITO_ISSUER,
  'cognito:username': 'test-username',
  origin_jti: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
  aud: COGNITO_CLIENT,
  event_id: 'cccccccc-dddd-eeee-ffff-aaaaaaaaaaaa',
  token_use: 'id',
  auth_time: times.iat,
  jti: 'dddddddd-eeee-ffff-aaaa-bbbbbbbbbbbb',
  email: 'test@example.com',
  ...times,
  ...extra
})

/** Keycloak ID token with the realm/client roles and group membership mappers added to it. */
const keycloakClaims = (extra: Record<string, unknown> = {}) => ({
  jti: 'b0f9c2f6-4f0b-4d4f-9d2e-4b4b4b4b4b4b',
  iss: KEYCLOAK_ISSUER,
  aud: 'my-app',
  sub: 'f6b1c3a2-1111-2222-3333-444455556666',
  typ: 'ID',
  azp: 'my-app',
  nonce: 'xyz',
  session_state: 'a1b2c3',
  acr: '1',
  sid: 'a1b2c3',
  email_verified: false,
  realm_access: { roles: ['offline_access', 'uma_authorization', 'default-roles-main'] },
  resource_access: { 'my-app': { roles: ['editor'] }, account: { roles: ['manage-account'] } },
  name: 'Jo Doe',
  preferred_username: 'jdoe',
  given_name: 'Jo',
  family_name: 'Doe',
  email: 'jdoe@example.com',
  groups: ['/staff/admins', '/staff'],
  auth_time: times.iat,
  ...times,
  ...extra
})

/** A Google-signed service identity token from the metadata server (format=full). */
const gcpClaims = (extra: Record<string, unknown> = {}) => ({
  aud: RUN_URL,
  azp: '117605711420724299222',
  email: SA_EMAIL,
  email_verified: true,
  iss: 'https://accounts.google.com',
  sub: '117605711420724299222',
  google: { compute_engine: { project_id: 'my-project', zone: 'us-central1-a', instance_name: 'vm-1' } },
  ...times,
  ...extra
})

const config = configFor([
  { id: 'google', preset: 'google', audiences: [GOOGLE_CLIENT], jwks },
  { id: 'workspace', preset: 'google', issuer: 'https://workspace.example.test', audiences: ['ws-client'], allowedTenants: ['example.com'], jwks },
  { id: 'entra', preset: 'entra', issuer: `https://login.microsoftonline.com/${ENTRA_TENANT}/v2.0`, audiences: [ENTRA_CLIENT], jwks },
  { id: 'entra-v1', preset: 'entra', issuer: `https://sts.windows.net/${ENTRA_TENANT}/`, audiences: [ENTRA_CLIENT], jwks },
  { id: 'auth0', preset: 'auth0', issuer: AUTH0_ISSUER, audiences: [AUTH0_CLIENT], claimMapping: { roles: '["https://example.com/roles"]' }, jwks },
  { id: 'okta', preset: 'okta', issuer: OKTA_ISSUER, audiences: [OKTA_CLIENT], jwks },
  { id: 'okta-org', preset: 'okta', issuer: OKTA_ORG_ISSUER, audiences: [OKTA_CLIENT], jwks },
  { id: 'cognito', preset: 'cognito', issuer: COGNITO_ISSUER, audiences: [COGNITO_CLIENT], jwks },
  { id: 'keycloak', preset: 'keycloak', issuer: KEYCLOAK_ISSUER, audiences: ['my-app'], jwks }
])
const app = await buildApp(config)
t.teardown(() => app.close())

// gcp-identity shares Google's issuer, so it runs in a service of its own.
const gcpApp = await buildApp(configFor([{ id: 'gcp', preset: 'gcp-identity', audiences: [RUN_URL], requiredClaims: { email: SA_EMAIL }, jwks }]))
t.teardown(() => gcpApp.close())

async function verify (token: string, extra: Record<string, unknown> = {}, target = app) {
  const res = await target.inject({ method: 'POST', url: '/verify', payload: { token, ...extra } })
  return { status: res.statusCode, body: res.json() }
}

t.test('the presets resolve to provider rules, and own settings win', async (t) => {
  const byId = Object.fromEntries(config.issuers.map((i) => [i.id, i]))
  t.equal(byId.google!.issuer, 'https://accounts.google.com', 'google supplies its issuer')
  t.same(byId.google!.issuerAliases, ['accounts.google.com'])
  t.same(byId.google!.algorithms, ['RS256'])
  t.same(byId.google!.claimMapping, { tenant: 'hd' })
  t.equal(byId.workspace!.issuerAliases, undefined, 'no alias for an issuer of its own')
  t.same(byId.entra!.userKeyClaims, ['tid', 'oid'])
  t.equal(byId.entra!.trustEmailVerified, false)
  t.equal(byId.entra!.preset, 'entra')
  t.same(byId.auth0!.claimMapping.roles, '["https://example.com/roles"]', 'the issuer\'s own mapping entry wins')
  t.same(byId.auth0!.claimMapping.preferredUsername, ['preferred_username', 'nickname'], 'the preset\'s other entries stay')
  t.same(byId.cognito!.requiredClaims, { token_use: ['id'] })
  t.same(byId.keycloak!.claimMapping.roles, ['realm_access.roles', 'resource_access[$azp].roles'], 'the client roles of the token\'s own client')
  t.same(byId.keycloak!.requiredClaims, { typ: ['ID'] }, 'keycloak: an ID token is typed ID')
  t.same(byId.keycloak!.algorithms.includes('ES256'), true, 'keycloak keeps the asymmetric default set')

  const overridden = configFor([{ id: 'g', preset: 'google', audiences: ['x'], algorithms: ['RS256', 'ES256'], requiredClaims: { hd: 'a.example' }, claimMapping: { tenant: 'email' }, jwks }]).issuers[0]!
  t.same(overridden.algorithms, ['RS256', 'ES256'])
  t.same(overridden.requiredClaims, { hd: ['a.example'] })
  t.same(overridden.claimMapping, { tenant: 'email' })
  const entraOverride = configFor([{ id: 'e', preset: 'entra', issuer: `https://login.microsoftonline.com/${ENTRA_TENANT}/v2.0`, audiences: ['x'], userKeyClaims: ['sub'], trustEmailVerified: true, jwks }]).issuers[0]!
  t.same(entraOverride.userKeyClaims, ['sub'])
  t.equal(entraOverride.trustEmailVerified, true)
})

t.test('preset configuration problems', async (t) => {
  const parse = (issuer: Record<string, unknown>) => problemsOf(() => parseConfig({ issuers: [{ id: 'a', audiences: ['x'], ...issuer }] }, 'c.yaml', {}))
  t.same(parse({ preset: 'gogle', issuer: 'https://a.example' }), [
    `c.yaml: issuers[0].preset: expected one of ${PRESET_NAMES.join(', ')}, got "gogle"`
  ], 'an unknown preset lists the presets')
  t.same(parse({ preset: 'auth0', issuer: 'https://example.eu.auth0.com' }), [
    'c.yaml: issuers[0].issuer: expected the Auth0 issuer with its trailing slash ("https://example.eu.auth0.com/"): Auth0 tokens carry it and iss is compared exactly'
  ])
  t.same(parse({ preset: 'okta' }), ['c.yaml: issuers[0].issuer: missing; expected an https URL (http only for loopback hosts)'], 'only google and gcp-identity know their issuer')
  t.same(parse({ preset: 'entra', issuer: 'https://login.microsoftonline.com/{tenantid}/v2.0', allowedTenants: ['Contoso', '9122040D-6C67-4C5B-B112-36A304B66DAD'] }), [
    'c.yaml: issuers[0].allowedTenants[0]: expected an Entra tenant id: a GUID in lower case such as 72f988bf-86f1-41af-91ab-2d7cd011db47 (the token\'s tid)',
    'c.yaml: issuers[0].allowedTenants[1]: expected an Entra tenant id: a GUID in lower case such as 72f988bf-86f1-41af-91ab-2d7cd011db47 (the token\'s tid)'
  ])
  t.same(parse({ preset: 'google', allowedTenants: ['example.com', 'Example.com', '@example.com', 'https://example.com', 'example'] }), [2, 3, 4, 5].map((i) =>
    `c.yaml: issuers[0].allowedTenants[${i - 1}]: expected a Google Workspace domain in lower case such as example.com (the token's hd)`))
  t.doesNotThrow(() => parseConfig({ issuers: [{ id: 'a', audiences: ['x'], preset: 'google', claimMapping: { tenant: 'email' }, allowedTenants: ['Someone@Example.com'] }] }, 'c.yaml', {}), 'another tenant claim: not a domain')
  t.same(parse({ issuer: 'https://a.example', allowedTenants: ['t1'] }), [
    'c.yaml: issuers[0].allowedTenants: needs claimMapping.tenant (the claim that names the tenant, such as tid or hd), or a preset that maps it'
  ])
  t.same(parse({ issuer: 'https://a.example', preset: 5 }), [`c.yaml: issuers[0].preset: expected one of ${PRESET_NAMES.join(', ')}, got 5`])
  // Two issuers may claim the alias only for disjoint audiences (a token goes to the one its aud names).
  matchExactly(t, problemsOf(() => parseConfig({ issuers: [{ id: 'a', preset: 'google', audiences: ['x'] }, { id: 'b', issuer: 'https://b.example', issuerAliases: ['accounts.google.com'], audiences: ['x'] }] }, 'c.yaml', {})), [
    /issuers\[1\]\.issuerAliases\[0\]: the issuer "accounts\.google\.com" is also issuers\[0\]\.issuerAliases\[0\], with the same audience "x"; expected disjoint audiences/
  ])
  matchExactly(t, parse({ issuer: 'https://a.example', issuerAliases: ['https://a.example', 'a b'] }), [
    /issuerAliases\[0\]: is the issuer itself/,
    /issuerAliases\[1\]: expected an issuer string without whitespace/
  ])
})

t.test('google: both issuer spellings, hd as tenant, email_verified as a string', async (t) => {
  for (const iss of ['https://accounts.google.com', 'accounts.google.com']) {
    const res = await verify(mint(rs, googleClaims({ iss })))
    t.equal(res.status, 200, iss)
    t.equal(res.body.issuer.id, 'google')
    t.equal(res.body.issuer.url, iss, 'the token\'s own iss is reported')
    t.equal(res.body.tenant, 'example.com')
    t.equal(res.body.userKey, '10769150350006150715113082367')
    t.same(res.body.user, {
      email: 'jsmith@example.com', emailVerified: true, name: 'Jane Smith', givenName: 'Jane', familyName: 'Smith', preferredUsername: null, picture: 'https://lh3.googleusercontent.com/a/photo.jpg', locale: 'en'
    })
    t.same(res.body.groups, [])
    t.equal(res.body.groupsOverage, false)
  }
  t.equal((await verify(mint(es, googleClaims(), { header: { alg: 'ES256' } }))).body.code, 'algorithm_not_allowed', 'Google signs with RS256 only')
  t.equal((await verify(mint(rs, googleClaims({ iss: 'http://accounts.google.com' })))).body.code, 'issuer_unknown')
})

t.test('google: the allowed-domains check', async (t) => {
  const iss = 'https://workspace.example.test'
  t.equal((await verify(mint(rs, googleClaims({ iss, aud: 'ws-client', azp: 'ws-client' })))).status, 200)
  let res = await verify(mint(rs, googleClaims({ iss, aud: 'ws-client', azp: 'ws-client', hd: 'other.example' })))
  t.same([res.status, res.body.code, res.body.claim], [401, 'tenant_not_allowed', 'hd'])
  res = await verify(mint(rs, googleClaims({ iss, aud: 'ws-client', azp: 'ws-client', hd: undefined })))
  t.equal(res.body.code, 'tenant_not_allowed', 'a consumer account (no hd) is not in any domain')
})

t.test('entra: tid as tenant, tid:oid as user key, roles and groups, email never verified', async (t) => {
  const res = await verify(mint(rs, entraClaims({ email_verified: true })))
  t.equal(res.status, 200)
  t.equal(res.body.issuer.id, 'entra')
  t.equal(res.body.tenant, ENTRA_TENANT)
  t.equal(res.body.userKey, `${ENTRA_TENANT}:00000000-0000-0000-66f3-3332eca7ea81`)
  t.equal(res.body.subject, 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ')
  t.same(res.body.roles, ['Task.Admin'])
  t.same(res.body.groups, ['c8b2f4a0-0000-4000-8000-000000000001'])
  t.equal(res.body.groupsOverage, false)
  t.equal(res.body.user.preferredUsername, 'AbeLi@microsoft.com')
  t.equal(res.body.user.email, 'AbeLi@microsoft.com')
  t.equal(res.body.user.emailVerified, false, 'even when the token claims it')

  const v1 = await verify(mint(rs, entraV1Claims()))
  t.equal(v1.status, 200, 'v1 issuer')
  t.equal(v1.body.issuer.id, 'entra-v1')
  t.equal(v1.body.user.preferredUsername, 'AbeLi@microsoft.com', 'upn for v1 tokens')
  t.equal(v1.body.user.givenName, 'Abe')

  const noOid = await verify(mint(rs, entraClaims({ oid: undefined })))
  t.same([noOid.body.code, noOid.body.claim], ['claim_missing', 'oid'], 'no silent fallback to sub for the user key')
})

t.test('entra: the groups overage is surfaced, never a silent empty list', async (t) => {
  const overage = entraClaims({
    groups: undefined,
    _claim_names: { groups: 'src1' },
    _claim_sources: { src1: { endpoint: 'https://graph.microsoft.com/v1.0/users/00000000-0000-0000-66f3-3332eca7ea81/getMemberObjects' } }
  })
  let res = await verify(mint(rs, overage))
  t.equal(res.status, 200)
  t.equal(res.body.groupsOverage, true)
  t.same(res.body.groups, [])
  res = await verify(mint(rs, entraClaims({ groups: undefined, hasgroups: true })))
  t.equal(res.body.groupsOverage, true, 'implicit-flow marker')
  res = await verify(mint(rs, entraClaims({ _claim_names: { other: 'src1' } })))
  t.equal(res.body.groupsOverage, false, 'another distributed claim is not a groups overage')
})

t.test('auth0: trailing-slash issuer and namespaced custom claims', async (t) => {
  const res = await verify(mint(rs, auth0Claims()))
  t.equal(res.status, 200)
  t.same(res.body.roles, ['admin', 'editor'])
  t.equal(res.body.user.preferredUsername, 'jane.doe', 'nickname when there is no preferred_username')
  t.equal(res.body.subject, 'auth0|5f7c8ec7c33c6c004bbafe82')
  t.equal((await verify(mint(rs, auth0Claims({ iss: 'https://example.eu.auth0.com' })))).body.code, 'issuer_unknown')
  t.equal(res.body.tenant, null, 'no organization, no tenant')
  t.equal((await verify(mint(rs, auth0Claims({ org_id: 'org_9ybsU1dN2dKfDkBi' })))).body.tenant, 'org_9ybsU1dN2dKfDkBi', 'the organization is the tenant')
})

t.test('auth0: allowedTenants limits the organizations (Auth0: validate org_id)', async (t) => {
  const orgs = await buildApp(configFor([{ id: 'auth0', preset: 'auth0', issuer: AUTH0_ISSUER, audiences: [AUTH0_CLIENT], allowedTenants: ['org_9ybsU1dN2dKfDkBi'], jwks }]))
  t.teardown(() => orgs.close())
  t.equal((await verify(mint(rs, auth0Claims({ org_id: 'org_9ybsU1dN2dKfDkBi' })), {}, orgs)).status, 200, 'an allowed organization')
  const other = await verify(mint(rs, auth0Claims({ org_id: 'org_other' })), {}, orgs)
  t.same([other.status, other.body.code, other.body.claim], [401, 'tenant_not_allowed', 'org_id'], 'another organization')
  const none = await verify(mint(rs, auth0Claims()), {}, orgs)
  t.same([none.status, none.body.code], [401, 'tenant_not_allowed'], 'no organization at all')
})

/**
 * An Auth0 access token (auth0.com/docs/secure/tokens/access-tokens/access-token-profiles) for an API whose
 * identifier an operator put in audiences: it carries scope (and gty, permissions), which no ID token does.
 */
const auth0AccessToken = {
  iss: AUTH0_ISSUER, sub: 'auth0|5f7c8ec7c33c6c004bbafe82', aud: [AUTH0_CLIENT, 'https://example.eu.auth0.com/userinfo'],
  azp: AUTH0_CLIENT, scope: 'openid profile email read:messages', permissions: ['read:messages'], ...times
} as const

t.test('auth0: access tokens are not ID tokens, with the preset or on an Auth0 domain', async (t) => {
  const auth0Api = await buildApp(configFor([
    // An operator who followed an old hint: the API identifier (here the client id) and the userinfo URL as audiences.
    { id: 'auth0', preset: 'auth0', issuer: AUTH0_ISSUER, audiences: [AUTH0_CLIENT, 'https://example.eu.auth0.com/userinfo'], jwks },
    { id: 'by-hand', issuer: 'https://acme.us.auth0.com/', audiences: [AUTH0_CLIENT, 'https://acme.us.auth0.com/userinfo'], jwks },
    { id: 'elsewhere', issuer: 'https://login.acme-auth0.example/', audiences: [AUTH0_CLIENT], jwks }
  ]))
  t.teardown(() => auth0Api.close())
  for (const iss of [AUTH0_ISSUER, 'https://acme.us.auth0.com/']) {
    const access = await verify(mint(rs, { ...auth0AccessToken, iss, aud: [AUTH0_CLIENT, `${iss}userinfo`] }), {}, auth0Api)
    t.same([access.status, access.body.code, access.body.claim], [401, 'token_is_access_token', 'scope'], `${iss}: an access token`)
    for (const [name, value] of [['gty', 'client-credentials'], ['permissions', []], ['scope', '']] as const) {
      const one = await verify(mint(rs, auth0Claims({ iss, [name]: value })), {}, auth0Api)
      t.same([one.body.code, one.body.claim], ['token_is_access_token', name], `${iss}: ${name}`)
    }
    t.equal((await verify(mint(rs, auth0Claims({ iss })), {}, auth0Api)).status, 200, `${iss}: an ID token passes`)
  }
  const other = await verify(mint(rs, auth0Claims({ iss: 'https://login.acme-auth0.example/', scope: 'x' })), {}, auth0Api)
  t.equal(other.status, 200, 'another host without the preset: scope is its own business')
})

t.test('okta: custom and org authorization servers, groups', async (t) => {
  for (const [iss, id] of [[OKTA_ISSUER, 'okta'], [OKTA_ORG_ISSUER, 'okta-org']] as const) {
    const res = await verify(mint(rs, oktaClaims(iss)))
    t.equal(res.status, 200, iss)
    t.equal(res.body.issuer.id, id)
    t.same(res.body.groups, ['Everyone', 'Admins'])
    t.equal(res.body.user.preferredUsername, 'john.doe@example.com')
    t.equal(res.body.user.emailVerified, false, 'no email_verified claim, no assertion')
  }
})

t.test('cognito: token_use must be id; cognito:groups and cognito:username', async (t) => {
  const res = await verify(mint(rs, cognitoClaims()))
  t.equal(res.status, 200)
  t.same(res.body.groups, ['test-group-a', 'test-group-b'])
  t.equal(res.body.user.preferredUsername, 'test-username')
  t.equal(res.body.user.emailVerified, true)
  let bad = await verify(mint(rs, cognitoClaims({ token_use: 'access' })))
  t.equal(bad.body.code, 'token_is_access_token')
  bad = await verify(mint(rs, cognitoClaims({ token_use: undefined })))
  t.same([bad.body.code, bad.body.claim], ['claim_value_mismatch', 'token_use'], 'token_use must be present')
})

t.test('keycloak: realm and client roles, preferred_username, group paths', async (t) => {
  const res = await verify(mint(es, keycloakClaims(), { header: { alg: 'ES256' } }))
  t.equal(res.status, 200)
  t.same(res.body.roles, ['offline_access', 'uma_authorization', 'default-roles-main', 'editor'], 'another client\'s roles are not ours')
  t.same(res.body.groups, ['/staff/admins', '/staff'])
  t.equal(res.body.user.preferredUsername, 'jdoe')
  t.equal(res.body.user.emailVerified, false)
  const access = await verify(mint(es, keycloakClaims({ typ: 'Bearer' }), { header: { alg: 'ES256' } }))
  t.equal(access.body.code, 'token_is_access_token')
  // A DPoP-bound access token (Keycloak's TokenUtil.TOKEN_TYPE_DPOP) is one too, not an unknown type.
  const dpop = await verify(mint(es, keycloakClaims({ typ: 'DPoP', cnf: { jkt: 'abc' } }), { header: { alg: 'ES256' } }))
  t.same([dpop.status, dpop.body.code, dpop.body.claim], [401, 'token_is_access_token', 'typ'], 'a DPoP access token')
  const bare = await verify(mint(es, keycloakClaims({ realm_access: undefined, resource_access: 'odd' }), { header: { alg: 'ES256' } }))
  t.same(bare.body.roles, [], 'roles mappers off: no roles, no error')
})

t.test('keycloak: with two clients of ours, a token has the client roles of its own client only', async (t) => {
  const two = await buildApp(configFor([{ id: 'keycloak', preset: 'keycloak', issuer: KEYCLOAK_ISSUER, audiences: ['my-app', 'admin-console'], jwks }]))
  t.teardown(() => two.close())
  const resourceAccess = { 'my-app': { roles: ['editor'] }, 'admin-console': { roles: ['admin'] } }
  const forApp = await verify(mint(es, keycloakClaims({ resource_access: resourceAccess }), { header: { alg: 'ES256' } }), {}, two)
  t.equal(forApp.status, 200)
  t.same(forApp.body.roles, ['offline_access', 'uma_authorization', 'default-roles-main', 'editor'], 'not admin-console\'s admin')
  const forConsole = await verify(mint(es, keycloakClaims({ aud: 'admin-console', azp: 'admin-console', resource_access: resourceAccess }), { header: { alg: 'ES256' } }), {}, two)
  t.same(forConsole.body.roles, ['offline_access', 'uma_authorization', 'default-roles-main', 'admin'])
  const noAzp = await verify(mint(es, keycloakClaims({ azp: undefined, resource_access: resourceAccess }), { header: { alg: 'ES256' } }), {}, two)
  t.same(noAzp.body.roles, ['offline_access', 'uma_authorization', 'default-roles-main'], 'no azp: realm roles only')
  // A token of admin-console that also lists my-app (an Audience mapper) is not my-app's, nor are its roles.
  const both = mint(es, keycloakClaims({ aud: ['admin-console', 'my-app'], azp: 'admin-console', resource_access: resourceAccess }), { header: { alg: 'ES256' } })
  const asApp = await verify(both, { audience: 'my-app' }, two)
  t.same([asApp.status, asApp.body.code, asApp.body.roles], [401, 'authorized_party_mismatch', undefined], 'narrowed to my-app: refused')
  t.same((await verify(both, { audience: 'admin-console' }, two)).body.roles, ['offline_access', 'uma_authorization', 'default-roles-main', 'admin'], 'narrowed to its own client')
})

t.test('gcp-identity: aud is the service URL, the caller is the service account', async (t) => {
  const res = await verify(mint(rs, gcpClaims()), {}, gcpApp)
  t.equal(res.status, 200)
  t.same(res.body.audiences, [RUN_URL])
  t.equal(res.body.user.email, SA_EMAIL)
  t.equal(res.body.user.emailVerified, true)
  t.equal(res.body.authorizedParty, '117605711420724299222', 'azp is the caller, accepted though not a client of ours')
  const other = await verify(mint(rs, gcpClaims({ email: 'intruder@evil-project.iam.gserviceaccount.com' })), {}, gcpApp)
  t.same([other.body.code, other.body.claim], ['claim_value_mismatch', 'email'])
  const wrongAud = await verify(mint(rs, gcpClaims({ aud: 'https://other.a.run.app' })), {}, gcpApp)
  t.equal(wrongAud.body.code, 'audience_mismatch')
  const several = await verify(mint(rs, gcpClaims({ aud: [RUN_URL, 'https://other.a.run.app'] })), {}, gcpApp)
  t.equal(several.body.code, 'audience_mismatch', 'an untrusted second audience is still refused')
})

t.test('presets do not relax the core rules', async (t) => {
  const tampered = mint(rs, entraClaims()).split('.')
  tampered[1] = Buffer.from(JSON.stringify(entraClaims({ tid: '00000000-0000-0000-0000-000000000000' }))).toString('base64url')
  t.equal((await verify(tampered.join('.'))).body.code, 'signature_invalid')
  t.equal((await verify(mint(rs, googleClaims({ exp: now - 3600 })))).body.code, 'token_expired')
  t.equal((await verify(mint(rs, oktaClaims(OKTA_ISSUER, { aud: 'someone-else' })))).body.code, 'audience_mismatch')
  t.equal((await verify(mint(rs, googleClaims({ azp: 'someone-else' })))).body.code, 'authorized_party_mismatch', 'azp still checked for Google sign-in')
})

/** Entra ID access tokens (learn.microsoft.com, access token claims reference) for an API whose client id is ours. */
const entraAccessTokens = {
  'v1 app-only': {
    ver: '1.0', iss: `https://sts.windows.net/${ENTRA_TENANT}/`, aud: ENTRA_CLIENT, sub: '00000000-0000-0000-0000-0000000000a1',
    appid: '2d4d11a2-f814-46a7-890a-274a72a7309e', appidacr: '1', idp: `https://sts.windows.net/${ENTRA_TENANT}/`,
    oid: '00000000-0000-0000-0000-0000000000a1', tid: ENTRA_TENANT, roles: ['Task.Read.All'], nbf: times.iat, ...times
  },
  'v1 delegated': {
    ver: '1.0', iss: `https://sts.windows.net/${ENTRA_TENANT}/`, aud: ENTRA_CLIENT, sub: 'l3_roISQU222bULS9yi2k0XpqpOiMz5H3ZACo1GeXA',
    appid: ENTRA_CLIENT, appidacr: '0', scp: 'User.Read Task.Write', amr: ['pwd'], name: 'Abe Lincoln', upn: 'AbeLi@microsoft.com',
    unique_name: 'AbeLi@microsoft.com', oid: '00000000-0000-0000-66f3-3332eca7ea81', tid: ENTRA_TENANT, nbf: times.iat, ...times
  },
  'v2 app-only': {
    ver: '2.0', iss: `https://login.microsoftonline.com/${ENTRA_TENANT}/v2.0`, aud: ENTRA_CLIENT, sub: '00000000-0000-0000-0000-0000000000a1',
    azp: ENTRA_CLIENT, azpacr: '1', idtyp: 'app', oid: '00000000-0000-0000-0000-0000000000a1', tid: ENTRA_TENANT,
    roles: ['Task.Read.All'], nbf: times.iat, ...times
  },
  'v2 delegated': {
    ver: '2.0', iss: `https://login.microsoftonline.com/${ENTRA_TENANT}/v2.0`, aud: ENTRA_CLIENT, sub: 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ',
    azp: ENTRA_CLIENT, azpacr: '0', scp: 'Task.Write', name: 'Abe Lincoln', preferred_username: 'AbeLi@microsoft.com',
    oid: '00000000-0000-0000-66f3-3332eca7ea81', tid: ENTRA_TENANT, roles: ['Task.Admin'], nbf: times.iat, ...times
  }
} as const

t.test('entra: access tokens for our own client id are not ID tokens', async (t) => {
  for (const [kind, claims] of Object.entries(entraAccessTokens)) {
    const token = mint(rs, claims)
    // Three times: the verified-token cache admits a token on its second verification; a refused one never.
    for (let i = 0; i < 3; i++) {
      const res = await verify(token)
      t.same([res.status, res.body.code], [401, 'token_is_access_token'], `${kind} (verification ${i + 1})`)
    }
  }
  // Each of the claims alone, on an otherwise good ID token of either version.
  for (const [name, value] of [['scp', 'User.Read'], ['appid', ENTRA_CLIENT], ['appidacr', '0'], ['azpacr', '0'], ['idtyp', 'user'], ['scp', null]] as const) {
    for (const claims of [entraClaims({ [name]: value }), entraV1Claims({ [name]: value })]) {
      const res = await verify(mint(rs, claims))
      t.same([res.body.code, res.body.claim], ['token_is_access_token', name], `${name}: ${JSON.stringify(value)} in a v${claims.ver} token`)
    }
  }
  // An ID token with everything an ID token may carry (roles, groups, oid, tid, preferred_username) still passes.
  const res = await verify(mint(rs, entraClaims({ azp: ENTRA_CLIENT, email_verified: true })))
  t.equal(res.status, 200)
  t.same(res.body.roles, ['Task.Admin'])
  t.same(res.body.groups, ['c8b2f4a0-0000-4000-8000-000000000001'])
  t.equal(res.body.user.preferredUsername, 'AbeLi@microsoft.com')
  t.equal(res.body.userKey, `${ENTRA_TENANT}:00000000-0000-0000-66f3-3332eca7ea81`)
  // Decided per issuer: another provider's claim named scp or appid is its own business.
  t.equal((await verify(mint(rs, auth0Claims({ scp: ['openid'], appid: 'x', azpacr: '0' })))).status, 200, 'auth0 is not entra')
  t.equal((await verify(mint(rs, oktaClaims(OKTA_ISSUER, { appid: 'x', appidacr: '0', idtyp: 'user' })))).status, 200, 'okta is not entra')
})

t.test('entra: an Entra issuer configured without the preset refuses access tokens too', async (t) => {
  // Hand-written issuers on each kind of Entra host, and one elsewhere: the access-token check follows the host.
  const b2c = 'https://contoso.b2clogin.com/775527ff-9a37-4307-8b3d-cc311f58d925/v2.0/'
  const ciam = `https://${ENTRA_TENANT}.ciamlogin.com/${ENTRA_TENANT}/v2.0`
  const elsewhere = 'https://login.example.test/v2.0'
  const OTHER_TENANT = '0b5a3e4f-8d2c-4f6e-9a1b-2c3d4e5f6a7b'
  const byHand = await buildApp(configFor([
    { id: 'v2', issuer: `https://login.microsoftonline.com/${ENTRA_TENANT}/v2.0`, audiences: [ENTRA_CLIENT], jwks },
    { id: 'v1', issuer: `https://sts.windows.net/${ENTRA_TENANT}/`, audiences: [ENTRA_CLIENT], jwks },
    { id: 'common', issuer: 'https://login.microsoftonline.com/{tenantid}/v2.0', audiences: ['common-client'], jwks },
    { id: 'b2c', issuer: b2c, audiences: [ENTRA_CLIENT], jwks },
    { id: 'ciam', issuer: 'https://ciam.example.test/', issuerAliases: [ciam], audiences: [ENTRA_CLIENT], jwks },
    { id: 'elsewhere', issuer: elsewhere, audiences: [ENTRA_CLIENT], jwks },
    // Another preset on an Entra host keeps its own claims and gains Entra's.
    { id: 'okta-on-entra', preset: 'okta', issuer: 'https://login.microsoftonline.us/okta-like/v2.0', audiences: [ENTRA_CLIENT], jwks }
  ]))
  t.teardown(() => byHand.close())
  for (const [kind, claims] of Object.entries(entraAccessTokens)) {
    const res = await verify(mint(rs, claims), {}, byHand)
    t.same([res.status, res.body.code], [401, 'token_is_access_token'], `${kind}, no preset`)
  }
  const issuers = [
    ['common', `https://login.microsoftonline.com/${OTHER_TENANT}/v2.0`, 'common-client'],
    ['b2c', b2c, ENTRA_CLIENT],
    ['ciam', ciam, ENTRA_CLIENT],
    ['okta-on-entra', 'https://login.microsoftonline.us/okta-like/v2.0', ENTRA_CLIENT]
  ] as const
  for (const [id, iss, aud] of issuers) {
    const tid = id === 'common' ? OTHER_TENANT : ENTRA_TENANT
    const good = await verify(mint(rs, entraClaims({ iss, aud, tid })), {}, byHand)
    t.same([good.status, good.body.issuer?.id], [200, id], `${id}: an ID token passes`)
    for (const name of ['scp', 'appid', 'appidacr', 'azpacr', 'idtyp']) {
      const res = await verify(mint(rs, entraClaims({ iss, aud, tid, [name]: 'x' })), {}, byHand)
      t.same([res.body.code, res.body.claim], ['token_is_access_token', name], `${id}: ${name}`)
    }
  }
  const okta = await verify(mint(rs, entraClaims({ iss: 'https://login.microsoftonline.us/okta-like/v2.0', cid: OKTA_CLIENT })), {}, byHand)
  t.same([okta.body.code, okta.body.claim], ['token_is_access_token', 'cid'], 'okta-on-entra: its own preset\'s claims still apply')
  const other = await verify(mint(rs, entraClaims({ iss: elsewhere, scp: 'User.Read', appid: ENTRA_CLIENT })), {}, byHand)
  t.equal(other.status, 200, 'an issuer on another host decides for itself')
})

/** An Okta access token of a custom authorization server whose audience is our client id (its admin's choice). */
const oktaAccessToken = {
  ver: 1, jti: 'AT.MNAoEQ_jbKqoinrQo1D0XKjMX28U5d7ZszBceot7-Ts', iss: OKTA_ISSUER, aud: OKTA_CLIENT, sub: 'john.doe@example.com',
  cid: OKTA_CLIENT, uid: '00uid4BxXw6I6TV4m0g3', scp: ['openid', 'profile', 'email'], auth_time: times.iat - 10, ...times
} as const

t.test('okta: access tokens are not ID tokens', async (t) => {
  for (const iss of [OKTA_ISSUER, OKTA_ORG_ISSUER]) {
    const res = await verify(mint(rs, { ...oktaAccessToken, iss }))
    t.same([res.status, res.body.code], [401, 'token_is_access_token'], iss)
    for (const [name, value] of [['cid', OKTA_CLIENT], ['scp', ['openid']], ['scp', null]] as const) {
      const one = await verify(mint(rs, oktaClaims(iss, { [name]: value })))
      t.same([one.body.code, one.body.claim], ['token_is_access_token', name], `${iss}: ${name} ${JSON.stringify(value)}`)
    }
    t.equal((await verify(mint(rs, oktaClaims(iss)))).status, 200, `${iss}: an ID token passes`)
  }
})

t.test('okta: an issuer on an Okta domain configured without the preset refuses access tokens too', async (t) => {
  const byHand = await buildApp(configFor([
    { id: 'okta-custom', issuer: 'https://dev-123.okta.com/oauth2/default', audiences: [OKTA_CLIENT], jwks },
    { id: 'okta-preview', issuer: 'https://acme.oktapreview.com', audiences: [OKTA_CLIENT], jwks },
    { id: 'okta-emea', issuer: 'https://acme.okta-emea.com/oauth2/aus1', audiences: [OKTA_CLIENT], jwks },
    { id: 'elsewhere', issuer: 'https://login.acme-okta.example', audiences: [OKTA_CLIENT], jwks }
  ]))
  t.teardown(() => byHand.close())
  for (const iss of ['https://dev-123.okta.com/oauth2/default', 'https://acme.oktapreview.com', 'https://acme.okta-emea.com/oauth2/aus1']) {
    const res = await verify(mint(rs, { ...oktaAccessToken, iss, aud: OKTA_CLIENT }), {}, byHand)
    t.same([res.status, res.body.code], [401, 'token_is_access_token'], `${iss}: an access token for our client id`)
    t.equal((await verify(mint(rs, oktaClaims(iss)), {}, byHand)).status, 200, `${iss}: an ID token passes`)
  }
  const other = await verify(mint(rs, oktaClaims('https://login.acme-okta.example', { cid: 'x', scp: ['y'] })), {}, byHand)
  t.equal(other.status, 200, 'another host: cid and scp are its own business')
})

t.test('gcp-identity: an issuer must say which service accounts may call', async (t) => {
  const parse = (issuer: Record<string, unknown>) => configProblems({ issuers: [{ id: 'gcp', preset: 'gcp-identity', audiences: [RUN_URL], jwks, ...issuer }] })
  const problem = 'c.yaml: issuers[0].requiredClaims: expected the service accounts allowed to call, by email (their addresses; tokens ' +
    'requested with format=full), sub or azp (their unique ids), such as requiredClaims: { email: ' +
    '[caller@my-project.iam.gserviceaccount.com] }: any Google service account, anyone\'s, can get a token for your audience'
  t.same(parse({}), [problem], 'no requiredClaims')
  t.same(parse({ requiredClaims: { email_verified: 'true', google: 'x' } }), [problem], 'requiredClaims that do not name the caller')
  for (const claim of ['email', 'sub', 'azp']) t.same(parse({ requiredClaims: { [claim]: ['a', 'b'] } }), [], claim)
  t.same(parse({ requiredClaims: { hd: 'example.com', sub: '117605711420724299222' } }), [], 'among others')
  // The google preset (user sign-in: the audience is our client id, which only our users' tokens carry) is unaffected.
  t.same(configProblems({ issuers: [{ id: 'g', preset: 'google', audiences: [GOOGLE_CLIENT], jwks }] }), [])
})

t.test('keycloak: an ID token must be typed ID', async (t) => {
  const ok = await verify(mint(es, keycloakClaims({ typ: 'ID' }), { header: { alg: 'ES256' } }))
  t.equal(ok.status, 200, 'typ ID')
  const untyped = await verify(mint(es, keycloakClaims({ typ: undefined }), { header: { alg: 'ES256' } }))
  t.same([untyped.status, untyped.body.code, untyped.body.claim], [401, 'claim_value_mismatch', 'typ'], 'typ missing')
  const logout = await verify(mint(es, keycloakClaims({ typ: 'Logout' }), { header: { alg: 'ES256' } }))
  t.same([logout.body.code, logout.body.claim], ['token_is_logout_token', 'typ'])
  const refresh = await verify(mint(es, keycloakClaims({ typ: 'Refresh' }), { header: { alg: 'ES256' } }))
  t.same([refresh.body.code, refresh.body.claim], ['token_type_invalid', 'typ'])
})
