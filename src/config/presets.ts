/**
 * Provider presets: `preset: google` (etc.) on an issuer fills in the issuer rules, algorithms and claim
 * mapping that provider needs, and handles its traps. Presets work on the configuration DOCUMENT, before it
 * is validated: whatever the issuer sets itself wins (claimMapping and requiredClaims per entry), and the
 * result is checked like any hand-written issuer. The values here come from each provider's documentation.
 */
import { TENANT_ID_PATTERN, TENANT_TEMPLATE } from '../core/issuer-template.js'
import { ENTRA_V1_ISSUER_HOSTS } from '../core/near-issuer.js'
import type { PresetName } from './types.js'

export { TENANT_TEMPLATE }

const GOOGLE_ISSUER = 'https://accounts.google.com'
/** Google documents both spellings of its issuer in ID tokens. */
const GOOGLE_ISSUER_ALIAS = 'accounts.google.com'

type Doc = Record<string, unknown>

export interface Preset {
  /** Options filled in where the issuer does not set them (claimMapping, requiredClaims: per entry). */
  defaults: (issuer: Doc) => Doc
  /** Problems specific to the provider, as [option path, message]. */
  check?: (issuer: Doc) => Array<[Array<string | number>, string]>
  /**
   * Claims that only the provider's access tokens carry: a token with any of them is token_is_access_token
   * (src/core/id-token-rules.ts, checkTokenType). For providers whose access tokens are otherwise
   * indistinguishable from ID tokens: same iss and keys, header typ JWT, our client id as aud.
   */
  accessTokenClaims?: readonly string[]
}

/**
 * Entra ID access tokens for an API whose client id is ours look like ID tokens (typ JWT, same iss, keys and aud;
 * v1 ones carry appid instead of azp). Microsoft's access token claims reference lists these claims, its ID token
 * claims reference none of them: scp (delegated scopes), appid and appidacr (v1), azpacr (v2), and the optional
 * idtyp ("app" in app-only access tokens).
 */
const ENTRA_ACCESS_TOKEN_CLAIMS: readonly string[] = Object.freeze(['scp', 'appid', 'appidacr', 'azpacr', 'idtyp'])

/**
 * Entra ID's sign-in hosts: the public cloud (v2 and the v1 issuer sts.windows.net), the US Government and China
 * clouds, B2C and External ID. Entra's access tokens for our client id pass as ID tokens whatever the issuer's
 * preset, so an issuer on one of these hosts gets the access-token check even without `preset: entra`.
 */
const ENTRA_HOSTS: ReadonlySet<string> = new Set([
  'login.microsoftonline.com', 'sts.windows.net', 'login.microsoftonline.us', 'login.chinacloudapi.cn',
  'login.partner.microsoftonline.cn', 'sts.chinacloudapi.cn'
])
const ENTRA_HOST_SUFFIXES = ['.b2clogin.com', '.ciamlogin.com']

/**
 * Okta's access tokens (org and custom authorization servers) name the client that asked for them in cid and
 * carry the granted scopes in scp; its ID tokens carry neither. A custom authorization server's audience is set
 * by its admin, and may be our client id.
 */
const OKTA_ACCESS_TOKEN_CLAIMS: readonly string[] = Object.freeze(['cid', 'scp'])

/**
 * Auth0's access tokens carry the granted scopes in scope, and may carry gty (the grant type) and permissions
 * (RBAC); its ID tokens carry none of them, and gty and permissions are claims an Action may not add. An access
 * token for an API whose identifier is listed in audiences (which the audience_mismatch hint warns against) would
 * otherwise pass as an ID token.
 */
const AUTH0_ACCESS_TOKEN_CLAIMS: readonly string[] = Object.freeze(['scope', 'gty', 'permissions'])

/**
 * Claims that identify the caller of a GCP service identity token. Any Google service account can mint a token
 * for any audience, so an issuer of the gcp-identity preset must require one of them (requiredClaims).
 */
const GCP_CALLER_CLAIMS = ['email', 'sub', 'azp'] as const


function googleIssuer (issuer: Doc): Doc {
  const url = typeof issuer.issuer === 'string' ? issuer.issuer : GOOGLE_ISSUER
  return { issuer: GOOGLE_ISSUER, ...(url === GOOGLE_ISSUER ? { issuerAliases: [GOOGLE_ISSUER_ALIAS] } : {}) }
}

/**
 * Entra ID's multi-tenant metadata lives at the "common" tenant: its issuer is the template itself
 * (https://login.microsoftonline.com/{tenantid}/v2.0). The v1 issuer (https://sts.windows.net/{tenantid}/,
 * China's https://sts.chinacloudapi.cn/{tenantid}/) is described by its cloud's sign-in host's common without /v2.0.
 */
export function entraDiscoveryUrl (issuer: string): string | undefined {
  if (!issuer.includes(TENANT_TEMPLATE)) return undefined
  let url: URL
  try {
    url = new URL(issuer.replace(TENANT_TEMPLATE, 'common'))
  } catch {
    return undefined
  }
  // A v1 issuer host's "common" tenant is described by its cloud's sign-in host.
  const metadataHost = Object.hasOwn(ENTRA_V1_ISSUER_HOSTS, url.hostname) ? ENTRA_V1_ISSUER_HOSTS[url.hostname] : undefined
  const base = metadataHost !== undefined ? `https://${metadataHost}/common` : url.href.replace(/\/+$/, '')
  return `${base}/.well-known/openid-configuration`
}

/** A problem for each allowedTenants entry a preset's tenant claim can never equal (`fits` says which can). */
function tenantProblems (issuer: Doc, fits: (tenant: string) => boolean, expected: string): Array<[Array<string | number>, string]> {
  if (!Array.isArray(issuer.allowedTenants)) return []
  const problems: Array<[Array<string | number>, string]> = []
  issuer.allowedTenants.forEach((tenant, i) => {
    if (typeof tenant === 'string' && tenant !== '' && !fits(tenant)) problems.push([['allowedTenants', i], expected])
  })
  return problems
}

/** A domain as Google's hd writes it: lower case, with a dot, no scheme, address or path. */
function isGoogleDomain (tenant: string): boolean {
  return tenant === tenant.toLowerCase() && /^[^\s@/:]+\.[^\s@/:]+$/.test(tenant)
}

export const PRESETS: Readonly<Record<PresetName, Preset>> = {
  google: {
    defaults: (issuer) => ({
      ...googleIssuer(issuer),
      algorithms: ['RS256'],
      // hd: the Google Workspace domain; absent for consumer accounts (allowedTenants then rejects them).
      claimMapping: { tenant: 'hd' }
    }),
    // hd is the domain as Google writes it, in lower case, and tenants are compared exactly: "Example.com" or
    // "@example.com" would refuse every user of the domain.
    check: (issuer) => {
      const mapping = issuer.claimMapping
      const tenantClaim = isRecord(mapping) ? mapping.tenant : undefined
      if (tenantClaim !== undefined && tenantClaim !== 'hd') return []
      return tenantProblems(issuer, isGoogleDomain, 'expected a Google Workspace domain in lower case such as example.com (the token\'s hd)')
    }
  },
  'gcp-identity': {
    // Service identity tokens from the metadata server: aud is the URL of the service called, azp and sub are
    // the calling service account's unique id, email (format=full) its address.
    defaults: (issuer) => ({
      ...googleIssuer(issuer),
      algorithms: ['RS256'],
      checkAuthorizedParty: false
    }),
    // Anyone can get a Google-signed token of a service account of their own with our URL as its aud: the
    // audience proves nothing about the caller, only requiredClaims on email, sub or azp do.
    check: (issuer) => {
      const required = issuer.requiredClaims
      if (isRecord(required) && GCP_CALLER_CLAIMS.some((claim) => Object.hasOwn(required, claim))) return []
      return [[['requiredClaims'], 'expected the service accounts allowed to call, by email (their addresses; tokens ' +
        'requested with format=full), sub or azp (their unique ids), such as requiredClaims: { email: ' +
        '[caller@my-project.iam.gserviceaccount.com] }: any Google service account, anyone\'s, can get a token for your audience']]
    }
  },
  entra: {
    defaults: (issuer) => {
      const url = typeof issuer.issuer === 'string' ? issuer.issuer : ''
      const discoveryUrl = issuer.jwks === undefined && issuer.jwksUri === undefined ? entraDiscoveryUrl(url) : undefined
      return {
        algorithms: ['RS256'],
        claimMapping: {
          tenant: 'tid',
          // v2 tokens carry preferred_username; v1 tokens upn (work accounts) or unique_name.
          preferredUsername: ['preferred_username', 'upn', 'unique_name'],
          roles: 'roles',
          groups: 'groups'
        },
        // sub is pairwise per application; oid is the user within the tenant (needs the profile scope).
        userKeyClaims: ['tid', 'oid'],
        // Entra does not verify email addresses (any tenant admin can set one): never report them verified.
        trustEmailVerified: false,
        ...(discoveryUrl !== undefined ? { discoveryUrl } : {})
      }
    },
    accessTokenClaims: ENTRA_ACCESS_TOKEN_CLAIMS,
    check: (issuer) => tenantProblems(issuer, (tenant) => TENANT_ID_PATTERN.test(tenant),
      'expected an Entra tenant id: a GUID in lower case such as 72f988bf-86f1-41af-91ab-2d7cd011db47 (the token\'s tid)')
  },
  auth0: {
    defaults: () => ({
      algorithms: ['RS256', 'PS256'],
      // With Auth0 Organizations the token names its organization in org_id, which Auth0 says to validate:
      // as the tenant, allowedTenants can limit it (a token without one has no tenant).
      claimMapping: { preferredUsername: ['preferred_username', 'nickname'], tenant: 'org_id' }
    }),
    accessTokenClaims: AUTH0_ACCESS_TOKEN_CLAIMS,
    check: (issuer) => typeof issuer.issuer === 'string' && issuer.issuer !== '' && !issuer.issuer.endsWith('/')
      ? [[['issuer'], `expected the Auth0 issuer with its trailing slash ("${issuer.issuer.slice(0, 60)}/"): Auth0 tokens carry it and iss is compared exactly`]]
      : []
  },
  okta: {
    // Org authorization server (https://example.okta.com) or custom (https://example.okta.com/oauth2/default):
    // discovery finds the right keys for either. groups appear when a groups claim is configured in Okta.
    defaults: () => ({ algorithms: ['RS256'] }),
    accessTokenClaims: OKTA_ACCESS_TOKEN_CLAIMS
  },
  cognito: {
    defaults: () => ({
      algorithms: ['RS256'],
      // Cognito signs access and ID tokens with the same keys: only token_use "id" is an ID token.
      requiredClaims: { token_use: 'id' },
      claimMapping: {
        groups: 'cognito:groups',
        preferredUsername: ['cognito:username', 'preferred_username']
      }
    })
  },
  keycloak: {
    defaults: () => ({
      // Keycloak types its tokens with a typ claim, "ID" in every ID token (TokenUtil.TOKEN_TYPE_ID): a token
      // without it is not one (other values are refused by checkTokenType with their own codes).
      requiredClaims: { typ: 'ID' },
      claimMapping: {
        // Realm roles, and the client roles of the client the token was issued to (azp, which must be one of ours),
        // not of every configured client: client roles are per client, and another client's "admin" is not this
        // one's. The roles mappers must add them to the ID token.
        roles: ['realm_access.roles', 'resource_access[$azp].roles'],
        // The group membership mapper sends full paths ("/staff/admins") unless told otherwise.
        groups: 'groups',
        preferredUsername: 'preferred_username'
      }
    })
  }
}

function isRecord (value: unknown): value is Doc {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Options merged per entry rather than replaced. */
const MERGED = new Set(['claimMapping', 'requiredClaims'])

/**
 * The issuer document with the preset's defaults filled in; unchanged when it names no known preset (an
 * unknown name is reported by the shape check). Entries set by the issuer always win.
 */
export function applyPreset (issuer: Doc): Doc {
  const name = issuer.preset
  if (typeof name !== 'string' || !Object.hasOwn(PRESETS, name)) return issuer
  const defaults = PRESETS[name as PresetName].defaults(issuer)
  const out: Doc = { ...issuer }
  for (const [key, value] of Object.entries(defaults)) {
    const own = issuer[key]
    if (own === undefined) {
      out[key] = value
    } else if (MERGED.has(key) && isRecord(own) && isRecord(value)) {
      // fromEntries: claim names such as "__proto__" stay plain keys.
      out[key] = Object.fromEntries([...Object.entries(value), ...Object.entries(own)])
    }
  }
  return out
}

/** Whether an issuer URL is on one of Entra ID's sign-in hosts (a `{tenantid}` template is one too). */
function hostOf (url: string): string | undefined {
  try {
    return new URL(url).hostname
  } catch {
    return undefined
  }
}

export function isEntraIssuerUrl (url: string): boolean {
  const host = hostOf(url)
  return host !== undefined && (ENTRA_HOSTS.has(host) || ENTRA_HOST_SUFFIXES.some((suffix) => host.endsWith(suffix)))
}

/** Okta's own domains ({org}.okta.com, the preview and EMEA cells); a custom domain cannot be told from its name. */
const OKTA_HOST_SUFFIXES = ['.okta.com', '.oktapreview.com', '.okta-emea.com']

export function isOktaIssuerUrl (url: string): boolean {
  const host = hostOf(url)
  return host !== undefined && OKTA_HOST_SUFFIXES.some((suffix) => host.endsWith(suffix))
}

/** Auth0's own domains ({tenant}.auth0.com, {tenant}.{region}.auth0.com); a custom domain cannot be told from its name. */
export function isAuth0IssuerUrl (url: string): boolean {
  const host = hostOf(url)
  return host !== undefined && host.endsWith('.auth0.com')
}

/** Each provider whose access tokens are told apart by their claims, with the hosts it is recognized by. */
const ACCESS_TOKEN_CLAIMS_BY_HOST: ReadonlyArray<[(url: string) => boolean, readonly string[]]> = [
  [isEntraIssuerUrl, ENTRA_ACCESS_TOKEN_CLAIMS],
  [isOktaIssuerUrl, OKTA_ACCESS_TOKEN_CLAIMS],
  [isAuth0IssuerUrl, AUTH0_ACCESS_TOKEN_CLAIMS]
]

/**
 * The claims that mark an access token of the issuer's provider: its preset's (none for most presets), and
 * Entra's, Okta's or Auth0's for an issuer on one of their hosts whatever its preset (an issuer configured by hand
 * would otherwise accept the provider's access tokens for our client id as ID tokens).
 */
export function accessTokenClaimsOf (issuer: { preset?: PresetName | undefined, issuer: string, issuerAliases?: readonly string[] | undefined }): readonly string[] {
  const own = issuer.preset === undefined ? [] : PRESETS[issuer.preset].accessTokenClaims ?? []
  const urls = [issuer.issuer, ...(issuer.issuerAliases ?? [])]
  const byHost = ACCESS_TOKEN_CLAIMS_BY_HOST.flatMap(([onHost, claims]) => urls.some(onHost) ? claims : [])
  return byHost.every((claim) => own.includes(claim)) ? own : [...new Set([...own, ...byHost])]
}

export function presetProblems (issuer: Doc): Array<[Array<string | number>, string]> {
  const name = issuer.preset
  if (typeof name !== 'string' || !Object.hasOwn(PRESETS, name)) return []
  return PRESETS[name as PresetName].check?.(issuer) ?? []
}
