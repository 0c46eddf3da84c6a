/**
 * The multi-tenant issuer rules (src/core/issuer-template.ts) called directly: the tenant id's exact shape, the
 * template's shape check, iss built from exactly that tid, and the signing key's own issuer (Entra v1 tokens
 * signed by the same tenant's v2 key in the same cloud only).
 */
import t from 'tap'
import { checkKeyIssuer, checkTenantIssuer, matchesTemplate, parseIssuerTemplate } from '../src/core/issuer-template.js'

const TID = '9188040d-6c67-4c5b-b112-36a304b66dad'
const template = parseIssuerTemplate('https://login.microsoftonline.com/{tenantid}/v2.0')!

function code (fn: () => unknown): string {
  try {
    fn()
    return 'ok'
  } catch (err) {
    const e = err as { code: string, details: { claim?: string } }
    return e.details.claim === undefined ? e.code : `${e.code}:${e.details.claim}`
  }
}

t.test('tid: a lower-case GUID, and iss the template with exactly it', async (t) => {
  const iss = (tid: string): string => `https://login.microsoftonline.com/${tid}/v2.0`
  t.equal(code(() => checkTenantIssuer(template, iss(TID), { tid: TID }, 'entra')), 'ok')
  t.equal(code(() => checkTenantIssuer(template, iss(TID.toUpperCase()), { tid: TID.toUpperCase() }, 'entra')), 'claim_invalid:tid', 'Entra writes tenant ids in lower case')
  const upperFirst = `${TID.slice(0, 8).toUpperCase()}${TID.slice(8)}`
  t.equal(code(() => checkTenantIssuer(template, iss(upperFirst), { tid: upperFirst }, 'entra')), 'claim_invalid:tid', 'upper case in any group')
  t.equal(code(() => checkTenantIssuer(template, iss(TID), { tid: `${TID}0` }, 'entra')), 'claim_invalid:tid')
  t.equal(code(() => checkTenantIssuer(template, iss(TID.slice(0, -1)), { tid: TID.slice(0, -1) }, 'entra')), 'claim_invalid:tid', 'a digit short')
  t.equal(code(() => checkTenantIssuer(template, iss(TID), {}, 'entra')), 'claim_missing:tid')
  t.equal(code(() => checkTenantIssuer(template, iss(TID), { tid: 'aaaaaaaa-6c67-4c5b-b112-36a304b66dad' }, 'entra')), 'issuer_tenant_mismatch:iss')
})

t.test('the template\'s shape: prefix, suffix, and something between', async (t) => {
  t.ok(matchesTemplate(template, `https://login.microsoftonline.com/${TID}/v2.0`))
  t.notOk(matchesTemplate(template, 'https://login.microsoftonline.com//v2.0'), 'nothing in place of the tenant')
  t.notOk(matchesTemplate(template, `https://login.microsoftonline.com/${TID}/v1.0`), 'another suffix')
})

t.test('the key\'s issuer: its tenant filled in; v1 tokens by the same tenant\'s v2 key, in the same cloud', async (t) => {
  const v2 = `https://login.microsoftonline.com/${TID}/v2.0`
  t.equal(code(() => checkKeyIssuer(undefined, v2, { tid: TID }, 'entra')), 'ok', 'no issuer on the key: nothing to check')
  t.equal(code(() => checkKeyIssuer('https://login.microsoftonline.com/{tenantid}/v2.0', v2, { tid: TID }, 'entra')), 'ok')
  const notATenant = TID.toUpperCase()
  t.equal(code(() => checkKeyIssuer('https://login.microsoftonline.com/{tenantid}/v2.0', `https://login.microsoftonline.com/${notATenant}/v2.0`, { tid: notATenant }, 'entra')), 'issuer_tenant_mismatch:iss', 'no tenant id: the template cannot be filled, whatever iss says')
  const v1 = `https://sts.windows.net/${TID}/`
  t.equal(code(() => checkKeyIssuer(v2, v1, { tid: TID }, 'entra')), 'ok', 'public cloud')
  t.equal(code(() => checkKeyIssuer(`https://login.microsoftonline.us/${TID}/v2.0`, v1, { tid: TID }, 'entra')), 'ok', 'US Government keeps the v1 host')
  t.equal(code(() => checkKeyIssuer(`https://login.chinacloudapi.cn/${TID}/v2.0`, `https://sts.chinacloudapi.cn/${TID}/`, { tid: TID }, 'entra')), 'ok', 'China\'s second v2 host')
  t.equal(code(() => checkKeyIssuer(`https://login.chinacloudapi.cn/${TID}/v2.0`, v1, { tid: TID }, 'entra')), 'issuer_tenant_mismatch:iss', 'another cloud')
  t.equal(code(() => checkKeyIssuer(v2, `https://sts.windows.net/${TID}/x/`, { tid: TID }, 'entra')), 'issuer_tenant_mismatch:iss', 'not the v1 issuer itself')
  t.equal(code(() => checkKeyIssuer('https://{tenantid}.example.com/{tenantid}/v2.0', `https://${TID}.example.com/${TID}/v2.0`, { tid: TID }, 'entra')), 'ok', 'every {tenantid} filled in')
})
