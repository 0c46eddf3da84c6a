/**
 * Multi-tenant issuers (Entra ID): one configured issuer such as
 * `https://login.microsoftonline.com/{tenantid}/v2.0` stands for every tenant. Tokens name their tenant in
 * `tid`; it must be a tenant id (a GUID), and iss must be the template with exactly that tid, so that one
 * tenant can never present a token as another's. Entra also publishes, on each signing key, the issuer the
 * key belongs to: when present it must name the token's issuer as well.
 */
import { VerificationError } from '../errors.js'

export const TENANT_TEMPLATE = '{tenantid}'

/** Tenant ids as Entra ID writes them in tokens: lower-case GUIDs. */
export const TENANT_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export interface IssuerTemplate {
  prefix: string
  suffix: string
}

export function parseIssuerTemplate (issuer: string): IssuerTemplate | undefined {
  const at = issuer.indexOf(TENANT_TEMPLATE)
  if (at === -1) return undefined
  return { prefix: issuer.slice(0, at), suffix: issuer.slice(at + TENANT_TEMPLATE.length) }
}

/** Whether iss has the template's shape (the tenant part is checked by checkTenantIssuer). */
export function matchesTemplate (template: IssuerTemplate, iss: string): boolean {
  return iss.length > template.prefix.length + template.suffix.length && iss.startsWith(template.prefix) && iss.endsWith(template.suffix)
}

/** tid must be a tenant id and iss the template with that tid; returns the tid. */
export function checkTenantIssuer (template: IssuerTemplate, iss: string, claims: Record<string, unknown>, issuer: string): string {
  const tid = claims.tid
  if (tid === undefined) throw new VerificationError('claim_missing', { issuer, claim: 'tid' })
  if (typeof tid !== 'string' || !TENANT_ID_PATTERN.test(tid)) throw new VerificationError('claim_invalid', { issuer, claim: 'tid' })
  if (template.prefix + tid + template.suffix !== iss) throw new VerificationError('issuer_tenant_mismatch', { issuer, claim: 'iss' })
  return tid
}

/**
 * Entra's v1 issuer hosts and the v2 issuer hosts of the same clouds (Microsoft's national clouds: US Government
 * tokens keep the public cloud's v1 host sts.windows.net, China's has its own; China's v2 host has two names).
 */
const ENTRA_V2_HOSTS_OF_V1: Readonly<Record<string, readonly string[]>> = {
  'sts.windows.net': ['login.microsoftonline.com', 'login.microsoftonline.us'],
  'sts.chinacloudapi.cn': ['login.partner.microsoftonline.cn', 'login.chinacloudapi.cn']
}

/** Whether iss is a v1 Entra issuer of the tenant and keyIssuer that same tenant's v2 issuer, in the same cloud. */
function isEntraV1OfV2 (iss: string, keyIssuer: string, tenant: string): boolean {
  for (const [v1, v2Hosts] of Object.entries(ENTRA_V2_HOSTS_OF_V1)) {
    if (iss === `https://${v1}/${tenant}/`) return v2Hosts.some((host) => keyIssuer === `https://${host}/${tenant}/v2.0`)
  }
  return false
}

/**
 * The signing key's own `issuer` (with {tenantid} replaced by the token's tid) must be the token's iss. A v1
 * token (https://sts.windows.net/<tid>/, https://sts.chinacloudapi.cn/<tid>/) may be signed by a key published
 * for the same tenant's v2 issuer in the same cloud.
 */
export function checkKeyIssuer (keyIssuer: string | undefined, iss: string, claims: Record<string, unknown>, issuer: string): void {
  if (keyIssuer === undefined) return
  const tid = claims.tid
  const tenant = typeof tid === 'string' && TENANT_ID_PATTERN.test(tid) ? tid : undefined
  let effective: string | undefined = keyIssuer
  if (keyIssuer.includes(TENANT_TEMPLATE)) effective = tenant === undefined ? undefined : keyIssuer.replaceAll(TENANT_TEMPLATE, tenant)
  if (effective !== undefined && effective === iss) return
  if (tenant !== undefined && effective !== undefined && isEntraV1OfV2(iss, effective, tenant)) return
  throw new VerificationError('issuer_tenant_mismatch', { issuer, claim: 'iss' })
}
