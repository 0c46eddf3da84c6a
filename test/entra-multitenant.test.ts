/**
 * Multi-tenant Entra ID issuers: `https://login.microsoftonline.com/{tenantid}/v2.0`, keys from the common
 * endpoint. Both ways: what must pass (any tenant's good token, or an allowed one) and what must not (a tid that
 * is not a GUID, an iss of another tenant, a key that belongs to another issuer, a tenant not allowed).
 */
import t from 'tap'
import { buildApp } from '../src/app.js'
import { configFor, configProblems } from './helpers/config.js'
import { startJwksServer } from './helpers/jwks-server.js'
import { jwksOf, makeKey, mint, nowSeconds } from './helpers/tokens.js'

const MS = 'https://login.microsoftonline.com'
const TEMPLATE = `${MS}/{tenantid}/v2.0`
const CLIENT = '6cb04018-a3f5-46a7-b995-940c78f5aef3'
const TENANT_A = '9122040d-6c67-4c5b-b112-36a304b66dad'
const TENANT_B = '72f988bf-86f1-41af-91ab-2d7cd011db47'
const TENANT_C = 'f8cdef31-a31e-4b4a-93e4-5f571e91255a'

// As Entra publishes them: common keys name the template, a tenant's own (app-specific) keys name that tenant.
const common = makeKey('RS256', { jwkExtras: { issuer: TEMPLATE } })
const tenantBOnly = makeKey('RS256', { jwkExtras: { issuer: `${MS}/${TENANT_B}/v2.0` } })
const noIssuer = makeKey('RS256')
const jwks = jwksOf(common, tenantBOnly, noIssuer)

function claims (tid: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSeconds()
  return {
    ver: '2.0',
    iss: `${MS}/${String(tid)}/v2.0`,
    sub: 'AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ',
    aud: CLIENT,
    iat: now,
    nbf: now,
    exp: now + 3600,
    name: 'Abe Lincoln',
    preferred_username: 'abe@contoso.example',
    oid: '00000000-0000-0000-66f3-3332eca7ea81',
    tid,
    ...extra
  }
}

const app = await buildApp(configFor([
  { id: 'entra', preset: 'entra', issuer: TEMPLATE, audiences: [CLIENT], jwks },
  // A single-tenant issuer for tenant C: found by the exact lookup before any template is tried.
  { id: 'contoso', preset: 'entra', issuer: `${MS}/${TENANT_C}/v2.0`, audiences: [CLIENT], jwks },
  { id: 'v1', preset: 'entra', issuer: `https://sts.windows.net/${TENANT_A}/`, audiences: [CLIENT], jwks }
]))
t.teardown(() => app.close())
const allowList = await buildApp(configFor([
  { id: 'entra', preset: 'entra', issuer: TEMPLATE, audiences: [CLIENT], allowedTenants: [TENANT_A], jwks }
]))
t.teardown(() => allowList.close())

async function verify (token: string, target = app) {
  const res = await target.inject({ method: 'POST', url: '/verify', payload: { token } })
  return { status: res.statusCode, body: res.json() }
}

t.test('any tenant\'s token verifies through the template, with the tenant\'s own issuer reported', async (t) => {
  for (const tid of [TENANT_A, TENANT_B]) {
    const res = await verify(mint(common, claims(tid)))
    t.equal(res.status, 200, tid)
    t.equal(res.body.issuer.id, 'entra')
    t.equal(res.body.issuer.url, `${MS}/${tid}/v2.0`)
    t.equal(res.body.tenant, tid)
    t.equal(res.body.userKey, `${tid}:00000000-0000-0000-66f3-3332eca7ea81`)
  }
  t.equal((await verify(mint(noIssuer, claims(TENANT_A)))).status, 200, 'a key without an issuer property is not checked')
  t.equal((await verify(mint(tenantBOnly, claims(TENANT_B)))).status, 200, 'a tenant\'s own key for its own tokens')
})

t.test('an exact issuer is matched before the template', async (t) => {
  const res = await verify(mint(common, claims(TENANT_C)))
  t.equal(res.body.issuer.id, 'contoso')
})

t.test('tid must be present and a GUID', async (t) => {
  for (const tid of ['contoso', `${TENANT_A.toUpperCase()}`, `${TENANT_A}x`, '', 42, ['x'], null]) {
    const token = mint(common, claims(tid, typeof tid === 'string' && tid !== '' ? {} : { iss: `${MS}/${TENANT_A}/v2.0` }))
    const res = await verify(token)
    t.same([res.status, res.body.code, res.body.claim], [401, 'claim_invalid', 'tid'], JSON.stringify(tid))
  }
  const missing = await verify(mint(common, claims(undefined, { iss: `${MS}/${TENANT_A}/v2.0` })))
  t.same([missing.body.code, missing.body.claim], ['claim_missing', 'tid'])
})

t.test('iss must be the template with the token\'s own tid', async (t) => {
  let res = await verify(mint(common, claims(TENANT_A, { iss: `${MS}/${TENANT_B}/v2.0` })))
  t.same([res.status, res.body.code, res.body.claim], [401, 'issuer_tenant_mismatch', 'iss'])
  res = await verify(mint(common, claims(TENANT_A, { iss: `${MS}/${TENANT_A}/extra/v2.0` })))
  t.equal(res.body.code, 'issuer_tenant_mismatch', 'no extra path segments')
  res = await verify(mint(common, claims(TENANT_A, { iss: `${MS}//v2.0` })))
  t.equal(res.body.code, 'issuer_unknown', 'an empty tenant part matches nothing')
  res = await verify(mint(common, claims(TENANT_A, { iss: `${MS}/${TENANT_A}/v2.0/` })))
  t.equal(res.body.code, 'issuer_unknown')
})

t.test('the signing key\'s issuer must be the token\'s', async (t) => {
  const res = await verify(mint(tenantBOnly, claims(TENANT_A)))
  t.same([res.status, res.body.code, res.body.claim], [401, 'issuer_tenant_mismatch', 'iss'], 'tenant B\'s key cannot sign for tenant A')
  const exact = await verify(mint(tenantBOnly, claims(TENANT_C)))
  t.equal(exact.body.code, 'issuer_tenant_mismatch', 'also for a single-tenant issuer')
})

t.test('v1 tokens may be signed by a key published for the tenant\'s v2 issuer', async (t) => {
  const v1 = (extra: Record<string, unknown> = {}) => claims(TENANT_A, { ver: '1.0', iss: `https://sts.windows.net/${TENANT_A}/`, upn: 'abe@contoso.example', ...extra })
  t.equal((await verify(mint(common, v1()))).status, 200)
  t.equal((await verify(mint(tenantBOnly, v1()))).body.code, 'issuer_tenant_mismatch')
  t.equal((await verify(mint(common, v1({ tid: TENANT_B })))).body.code, 'issuer_tenant_mismatch', 'the key names tenant B, the token tenant A')
})

t.test('v1 tokens of the national clouds: signed by a key of the same tenant\'s v2 issuer in the same cloud', async (t) => {
  // Microsoft's national clouds: US Government v1 tokens keep sts.windows.net, its v2 issuer is on
  // login.microsoftonline.us; China's v1 issuer is sts.chinacloudapi.cn, its v2 issuer login.partner.microsoftonline.cn.
  const CHINA_V1 = `https://sts.chinacloudapi.cn/${TENANT_A}/`
  const usGov = makeKey('RS256', { jwkExtras: { issuer: 'https://login.microsoftonline.us/{tenantid}/v2.0' } })
  const china = makeKey('RS256', { jwkExtras: { issuer: 'https://login.partner.microsoftonline.cn/{tenantid}/v2.0' } })
  const chinaOtherName = makeKey('RS256', { jwkExtras: { issuer: `https://login.chinacloudapi.cn/${TENANT_A}/v2.0` } })
  const clouds = await buildApp(configFor([
    { id: 'gov', preset: 'entra', issuer: `https://sts.windows.net/${TENANT_A}/`, audiences: [CLIENT], jwks: jwksOf(usGov) },
    { id: 'china', preset: 'entra', issuer: CHINA_V1, audiences: [CLIENT], jwks: jwksOf(china, chinaOtherName, common) }
  ]))
  t.teardown(() => clouds.close())
  const v1 = (iss: string, extra: Record<string, unknown> = {}) => claims(TENANT_A, { ver: '1.0', iss, upn: 'abe@contoso.example', ...extra })
  t.equal((await verify(mint(usGov, v1(`https://sts.windows.net/${TENANT_A}/`)), clouds)).status, 200, 'US Government')
  t.equal((await verify(mint(china, v1(CHINA_V1)), clouds)).status, 200, 'China')
  t.equal((await verify(mint(chinaOtherName, v1(CHINA_V1)), clouds)).status, 200, 'China, the v2 host\'s other name')
  t.equal((await verify(mint(common, v1(CHINA_V1)), clouds)).body.code, 'issuer_tenant_mismatch', 'a China token signed by a public-cloud key')
  t.equal((await verify(mint(china, v1(CHINA_V1, { tid: TENANT_B })), clouds)).body.code, 'issuer_tenant_mismatch', 'another tenant')
  t.equal((await verify(mint(usGov, v1(`https://sts.windows.net/${TENANT_A}/`)))).body.code, 'key_not_found', 'the public cloud\'s issuer has no US Government key')
})

t.test('the tenant allow-list', async (t) => {
  t.equal((await verify(mint(common, claims(TENANT_A)), allowList)).status, 200)
  const res = await verify(mint(common, claims(TENANT_B)), allowList)
  t.same([res.status, res.body.code, res.body.claim, res.body.issuer], [401, 'tenant_not_allowed', 'tid', 'entra'])
})

t.test('an access token is refused through the template too, whatever its tenant', async (t) => {
  const appOnly = { azp: CLIENT, azpacr: '1', idtyp: 'app', roles: ['Task.Read.All'], name: undefined, preferred_username: undefined }
  const delegated = { azp: CLIENT, azpacr: '0', scp: 'Task.Write' }
  for (const tid of [TENANT_A, TENANT_B]) {
    for (const [kind, extra] of [['app-only', appOnly], ['delegated', delegated]] as const) {
      const res = await verify(mint(common, claims(tid, extra)))
      t.same([res.status, res.body.code, res.body.issuer], [401, 'token_is_access_token', 'entra'], `${kind}, tenant ${tid}`)
    }
  }
  const allowed = await verify(mint(common, claims(TENANT_A, delegated)), allowList)
  t.same([allowed.body.code, allowed.body.claim], ['token_is_access_token', 'scp'], 'an allowed tenant\'s access token')
  const v1 = await verify(mint(common, claims(TENANT_A, { ver: '1.0', iss: `https://sts.windows.net/${TENANT_A}/`, appid: CLIENT, appidacr: '1' })))
  t.same([v1.body.code, v1.body.claim, v1.body.issuer], ['token_is_access_token', 'appid', 'v1'], 'v1 app-only')
  t.equal((await verify(mint(common, claims(TENANT_B, { azp: CLIENT })))).status, 200, 'the ID token of the same client')
})

t.test('keys from the common endpoint by discovery; its issuer is the template itself', async (t) => {
  const idp = await startJwksServer({ json: jwksOf(common) })
  t.teardown(() => idp.close())
  const template = `${idp.url}/{tenantid}/v2.0`
  const keys = makeKey('RS256', { jwkExtras: { issuer: template } })
  idp.set({ json: jwksOf(keys) })
  idp.set({ json: { issuer: template, jwks_uri: idp.jwksUrl } }, '/common/v2.0/.well-known/openid-configuration')
  const discovering = await buildApp(configFor([{ id: 'entra', preset: 'entra', issuer: template, audiences: [CLIENT] }]))
  t.teardown(() => discovering.close())
  t.equal(discovering.verifierSlot.current.status()[0]?.issuer, template)
  const token = mint(keys, claims(TENANT_A, { iss: `${idp.url}/${TENANT_A}/v2.0` }))
  const res = await discovering.inject({ method: 'POST', url: '/verify', payload: { token } })
  t.equal(res.statusCode, 200, res.body)
  t.equal(idp.requests('/common/v2.0/.well-known/openid-configuration'), 1)
  t.equal(idp.requests(`/${TENANT_A}/v2.0/.well-known/openid-configuration`), 0, 'nothing from the token becomes a URL')

  // Metadata that names another issuer (here the common tenant) is refused, as for any issuer.
  const other = await startJwksServer({ json: jwksOf(common) })
  t.teardown(() => other.close())
  other.set({ json: { issuer: `${other.url}/common/v2.0`, jwks_uri: other.jwksUrl } }, '/common/v2.0/.well-known/openid-configuration')
  const refusing = await buildApp(configFor([{ id: 'entra', preset: 'entra', issuer: `${other.url}/{tenantid}/v2.0`, audiences: [CLIENT] }]))
  t.teardown(() => refusing.close())
  await refusing.ready()
  let ready = await refusing.inject({ method: 'GET', url: '/readyz' })
  for (let i = 0; i < 50 && ready.json().issuers[0].lastError === null; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    ready = await refusing.inject({ method: 'GET', url: '/readyz' })
  }
  t.equal(ready.statusCode, 503)
  t.match(ready.json().issuers[0].lastError, /names issuer .*common\/v2\.0.*expected exactly/)
})

t.test('template configuration problems', async (t) => {
  const problems = (issuer: Record<string, unknown>): string[] => {
    return configProblems({ issuers: [{ id: 'a', audiences: ['x'], ...issuer }] })
  }
  t.match(problems({ issuer: TEMPLATE }), [/a "\{tenantid\}" issuer has no discovery document of its own; set discoveryUrl/])
  t.same(problems({ issuer: TEMPLATE, discoveryUrl: `${MS}/common/v2.0/.well-known/openid-configuration` }), [], 'without the preset, discoveryUrl is enough')
  t.match(problems({ issuer: `${MS}/{tenantid}/{tenantid}`, jwks }), [/expected at most one placeholder/])
  t.match(problems({ issuer: `${MS}/{tenant}/v2.0`, jwks }), [/expected at most one placeholder, exactly "\{tenantid\}"/])
  t.match(problems({ issuer: 'https://{tenantid}.example.com/', jwks }), [/issuer/])
  t.match(problems({ issuer: TEMPLATE, jwks, issuerAliases: [`${MS}/${TENANT_A}/v2.0`] }), [/issuerAliases: cannot be combined with a "\{tenantid\}" issuer/])
  t.match(problems({ issuer: TEMPLATE, discoveryUrl: 'http://example.com/x', jwks }), [
    /discoveryUrl: expected an https URL/,
    /discoveryUrl: discoveryUrl, jwksUri and jwks are mutually exclusive/
  ])
  const resolved = configFor([{ id: 'e', preset: 'entra', issuer: TEMPLATE, audiences: ['x'] }]).issuers[0]!
  t.same(resolved.keys, { kind: 'discovery', discoveryUrl: `${MS}/common/v2.0/.well-known/openid-configuration` })
  const v1 = configFor([{ id: 'e', preset: 'entra', issuer: 'https://sts.windows.net/{tenantid}/', audiences: ['x'] }]).issuers[0]!
  t.same(v1.keys, { kind: 'discovery', discoveryUrl: `${MS}/common/.well-known/openid-configuration` }, 'the v1 template is described by common without /v2.0')
  const china = configFor([{ id: 'e', preset: 'entra', issuer: 'https://sts.chinacloudapi.cn/{tenantid}/', audiences: ['x'] }]).issuers[0]!
  t.same(china.keys, { kind: 'discovery', discoveryUrl: 'https://login.chinacloudapi.cn/common/.well-known/openid-configuration' }, 'China\'s v1 template: its own cloud\'s common')
})

t.test('overlapping templates: the token goes to the one it fits, not to the first whose shape it has', async (t) => {
  const ID = 'https://id.example.com'
  const key = makeKey('RS256')
  const both = await buildApp(configFor([
    { id: 'short', issuer: `${ID}/{tenantid}`, audiences: ['short-client'], jwks: jwksOf(key) },
    { id: 'v2', issuer: `${ID}/{tenantid}/v2.0`, audiences: [CLIENT], jwks: jwksOf(key) }
  ]))
  t.teardown(() => both.close())
  // https://id.example.com/TID/v2.0 has the shape of both; only the second with tid TID.
  const v2 = await verify(mint(key, claims(TENANT_A, { iss: `${ID}/${TENANT_A}/v2.0` })), both)
  t.same([v2.status, v2.body.issuer?.id], [200, 'v2'])
  const short = await verify(mint(key, claims(TENANT_A, { iss: `${ID}/${TENANT_A}`, aud: 'short-client' })), both)
  t.same([short.status, short.body.issuer?.id], [200, 'short'])
  const other = await verify(mint(key, claims(TENANT_A, { iss: `${ID}/${TENANT_B}/v2.0` })), both)
  t.same([other.status, other.body.code], [401, 'issuer_tenant_mismatch'], 'fits none: the first refusal')
})
