/**
 * The issuer options of provider support: presets (expanded into the document before validation), issuer
 * aliases and {tenantid} templates, tenant allow-lists, the user key, claim mapping lists, and the keys and
 * algorithm policy of encrypted ID tokens. src/config/load.ts calls these hooks; each problem is reported
 * with the option's path, like every other configuration problem.
 */
import { parseClaimPath } from '../core/claim-path.js'
import { contentKeyBytes } from '../core/jwe-content.js'
import { crowdedHeaders, MAX_DECRYPTION_ATTEMPTS, type Candidate } from '../core/jwe.js'
import { parseDecryptionKeyFile } from './decryption-keys.js'
import { listsOnlyHmac } from './issuers.js'
import { applyPreset, presetProblems, TENANT_TEMPLATE } from './presets.js'
import { DECRYPTION_DEFAULTS } from './schema.js'
import { fileErrorReason } from '../small-file.js'
import {
  CONTENT_ENCRYPTION_ALGORITHMS,
  KEY_MANAGEMENT_ALGORITHMS,
  type ContentEncryptionAlgorithm,
  type DecryptionConfig,
  type DecryptionKey,
  type IssuerConfig,
  type KeyManagementAlgorithm
} from './types.js'

type Doc = Record<string, unknown>
type Path = Array<string | number>

export interface ProviderCheckContext {
  /** Reports a problem at a path inside issuers[i]. */
  report: (path: Path, text: string) => void
  /** The loader's URL rule (https, or http to loopback; no credentials, query or fragment). */
  checkUrl: (value: string, path: Path) => boolean
  readFile: (path: string) => string
}

/** What the checks produced that resolution needs: the keys read from the files. */
export interface ProviderExtras {
  decryptionKeys?: DecryptionKey[]
  /** For each of decryptionKeys, the index of its file in the issuer's decryptionKeys. */
  decryptionKeyFiles?: number[]
}

const LIST_FIELDS = new Set(['groups', 'roles'])
const MAX_USER_KEY_CLAIMS = 4
const KEY_MANAGEMENT = new Set<string>(KEY_MANAGEMENT_ALGORITHMS)
const CONTENT_ENCRYPTION = new Set<string>(CONTENT_ENCRYPTION_ALGORITHMS)
const DECRYPTION_POLICY_OPTIONS = ['keyManagementAlgorithms', 'contentEncryptionAlgorithms', 'allowCompressedTokens', 'maxPbes2Count', 'requireEncryption'] as const

function isRecord (value: unknown): value is Doc {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function strings (value: unknown): Array<[number, string]> {
  if (!Array.isArray(value)) return []
  return value.flatMap((v, i): Array<[number, string]> => typeof v === 'string' && v !== '' ? [[i, v]] : [])
}

function show (value: string): string {
  return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)
}

/** The document with every issuer's preset expanded (see src/config/presets.ts). */
export function expandPresets (doc: unknown): unknown {
  if (!isRecord(doc) || !Array.isArray(doc.issuers)) return doc
  return { ...doc, issuers: doc.issuers.map((issuer: unknown) => isRecord(issuer) ? applyPreset(issuer) : issuer) }
}

/**
 * Every issuer string (issuer or alias) names one issuer, or several that a token's aud tells apart
 * (Google sign-in and GCP service identity share https://accounts.google.com). Several only when:
 *   - their audiences are disjoint: a token goes to the issuer its aud names;
 *   - they take their keys from the same place and none has a client secret: each one's tokens are then
 *     signed by the same provider, so no issuer can mint identities that look like a sibling's (same iss,
 *     same sub) with keys of its own;
 *   - the string is not a {tenantid} template: templates are matched before aud is read.
 */
export function checkIssuerNames (issuers: unknown[], report: (path: Path, text: string) => void): void {
  interface Named { index: number, where: string, audiences: unknown[], keys: string, secret: boolean }
  // The issuers that share a string are pairwise compatible (one that is not is reported, and left out): they
  // take the same keys, and only a lone first one may have a secret. So the first stands for all but the
  // audiences, which are looked up by value: comparing each issuer with every other was quadratic, and a file
  // of thousands of issuers sharing one string held start, or a reload's event loop, for minutes.
  interface Group { first: Named, indexes: Set<number>, byAudience: Map<string, Named> }
  const named = new Map<string, Group>()
  const name = (value: string, path: Path, me: Named): void => {
    const group = named.get(value)
    const audiences = me.audiences.filter((a): a is string => typeof a === 'string')
    if (group === undefined) {
      named.set(value, { first: me, indexes: new Set([me.index]), byAudience: new Map(audiences.map((a) => [a, me])) })
      return
    }
    // An alias that repeats its own issuer's string: that issuer is already here, compatible with the rest.
    if (group.indexes.has(me.index)) return
    const first = group.first
    // The member sharing an audience that comes first, and the first of my audiences that it has.
    let sharing: Named | undefined
    for (const a of audiences) {
      const other = group.byAudience.get(a)
      if (other !== undefined && (sharing === undefined || other.index < sharing.index)) sharing = other
    }
    const shared = (other: Named): string | undefined => audiences.find((a) => group.byAudience.get(a) === other)
    let other: Named | undefined
    let problem: string | undefined
    if (/[{}]/.test(value)) {
      other = first
      problem = 'expected a {tenantid} template in one issuer only'
    } else if (shared(first) !== undefined || (sharing !== undefined && !(me.secret || first.secret) && me.keys === first.keys)) {
      other = shared(first) !== undefined ? first : sharing!
      problem = `with the same audience ${show(shared(other)!)}; expected disjoint audiences (a token goes to the issuer its aud names)`
    } else if (me.secret || first.secret) {
      other = first
      problem = 'and one of them has a client secret; expected issuers that share an issuer string to be signed by the provider\'s keys only'
    } else if (me.keys !== first.keys) {
      other = first
      problem = 'with keys from another place (jwks, jwksUri or discovery); expected issuers that share an issuer string to take the same keys'
    }
    if (other !== undefined && problem !== undefined) {
      report(path, `the issuer ${show(value)} is also ${other.where}, ${problem}`)
      return
    }
    group.indexes.add(me.index)
    for (const a of audiences) group.byAudience.set(a, me)
  }
  issuers.forEach((issuer, i) => {
    if (!isRecord(issuer)) return
    const me = {
      index: i,
      audiences: Array.isArray(issuer.audiences) ? issuer.audiences as unknown[] : [],
      // Where the keys come from: the inline set, the JWKS URL, or the discovery document (of the issuer URL).
      keys: JSON.stringify(issuer.jwks ?? issuer.jwksUri ?? issuer.discoveryUrl ?? { discovery: issuer.issuer }),
      secret: issuer.clientSecret !== undefined || issuer.clientSecretEnv !== undefined
    }
    if (typeof issuer.issuer === 'string') name(issuer.issuer, ['issuers', i, 'issuer'], { ...me, where: `issuers[${i}].issuer` })
    for (const [j, alias] of strings(issuer.issuerAliases)) name(alias, ['issuers', i, 'issuerAliases', j], { ...me, where: `issuers[${i}].issuerAliases[${j}]` })
  })
}

function checkTemplate (issuer: Doc, ctx: ProviderCheckContext): void {
  const url = issuer.issuer
  if (typeof url !== 'string' || !/[{}]/.test(url)) return
  const rest = url.replace(TENANT_TEMPLATE, '')
  if (rest.includes('{') || rest.includes('}')) {
    ctx.report(['issuer'], `expected at most one placeholder, exactly "${TENANT_TEMPLATE}" (a multi-tenant issuer template), got ${show(url)}`)
    return
  }
  let inPath = false
  try {
    const probe = '00000000-0000-0000-0000-000000000000'
    inPath = new URL(url.replace(TENANT_TEMPLATE, probe)).pathname.includes(probe)
  } catch {
    // reported by the URL check
  }
  if (!inPath) ctx.report(['issuer'], `expected "${TENANT_TEMPLATE}" in the path of the issuer URL, got ${show(url)}`)
  // An alias would be matched exactly, bypassing the tenant rules of the template.
  if (Array.isArray(issuer.issuerAliases) && issuer.issuerAliases.length > 0) {
    ctx.report(['issuerAliases'], `cannot be combined with a "${TENANT_TEMPLATE}" issuer; configure another issuer instead`)
  }
  // An issuer that lists only HS* algorithms reads no keys: a key source would be ignored (and warned about).
  if (issuer.jwks === undefined && issuer.jwksUri === undefined && issuer.discoveryUrl === undefined && !listsOnlyHmac(issuer)) {
    ctx.report(['issuer'], `a "${TENANT_TEMPLATE}" issuer has no discovery document of its own; set discoveryUrl ` +
      '(Entra ID: https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration), jwksUri or jwks, or use preset: entra')
  }
}

function checkClaimPaths (issuer: Doc, ctx: ProviderCheckContext): void {
  const parse = (path: string, at: Path): void => {
    try {
      parseClaimPath(path)
    } catch (err) {
      ctx.report(at, `expected a claim path such as realm_access.roles, groups[0] or ["https://example.com/roles"]: ${(err as Error).message}`)
    }
  }
  // A single string path is checked by the loader itself; lists and { path, split } here.
  if (isRecord(issuer.claimMapping)) {
    for (const [field, value] of Object.entries(issuer.claimMapping)) {
      if (Array.isArray(value)) {
        for (const [j, path] of strings(value)) parse(path, ['claimMapping', field, j])
      } else if (isRecord(value)) {
        if (typeof value.path === 'string' && value.path !== '') parse(value.path, ['claimMapping', field, 'path'])
        for (const [j, path] of strings(value.path)) parse(path, ['claimMapping', field, 'path', j])
        if (value.split === true && !LIST_FIELDS.has(field)) {
          ctx.report(['claimMapping', field, 'split'], 'split applies to the list fields groups and roles only')
        }
      }
    }
  }
  for (const [j, path] of strings(issuer.userKeyClaims)) parse(path, ['userKeyClaims', j])
  // The shape check does not read maxItems.
  if (Array.isArray(issuer.userKeyClaims) && issuer.userKeyClaims.length > MAX_USER_KEY_CLAIMS) {
    ctx.report(['userKeyClaims'], `expected a list of 1 to ${MAX_USER_KEY_CLAIMS} claim paths, got ${issuer.userKeyClaims.length}`)
  }
  if (issuer.allowedTenants !== undefined && !(isRecord(issuer.claimMapping) && issuer.claimMapping.tenant !== undefined)) {
    ctx.report(['allowedTenants'], 'needs claimMapping.tenant (the claim that names the tenant, such as tid or hd), or a preset that maps it')
  }
}

function readKeyFile (file: string, at: Path, ctx: ProviderCheckContext): DecryptionKey[] {
  let text: string
  try {
    text = ctx.readFile(file)
  } catch (err) {
    ctx.report(at, `cannot read the key file ${JSON.stringify(file)}: ${fileErrorReason(err)}`)
    return []
  }
  const { keys, problems } = parseDecryptionKeyFile(file, text)
  for (const problem of problems) ctx.report(at, `key file ${JSON.stringify(file)}: ${problem}`)
  return problems.length > 0 ? [] : keys
}

/** The key management algorithms a key can serve. */
function keyFamily (key: DecryptionKey): (alg: string) => boolean {
  switch (key.key.type === 'secret' ? 'oct' : key.key.asymmetricKeyType) {
    case 'rsa': return (alg) => alg.startsWith('RSA-OAEP') || alg === 'RSA1_5'
    case 'ec':
    case 'x25519': return (alg) => alg.startsWith('ECDH-ES')
    default: return (alg) => alg === 'dir' || alg.startsWith('PBES2-')
  }
}

function describeKind (key: DecryptionKey): string {
  if (key.key.type === 'secret') return 'a secret (oct) key, used only with dir or PBES2-*'
  return key.key.asymmetricKeyType === 'rsa' ? 'an RSA key, used only with RSA-OAEP* or RSA1_5' : 'an EC/X25519 key, used only with ECDH-ES*'
}

/** The valid algorithms an issuer's policy lists (or the defaults); unsupported ones are reported elsewhere. */
function policyLists (issuer: Doc): { algs: KeyManagementAlgorithm[], encs: ContentEncryptionAlgorithm[] } {
  const algs = Array.isArray(issuer.keyManagementAlgorithms)
    ? strings(issuer.keyManagementAlgorithms).map(([, alg]) => alg).filter((alg) => KEY_MANAGEMENT.has(alg)) as KeyManagementAlgorithm[]
    : [...DECRYPTION_DEFAULTS.keyManagementAlgorithms]
  const encs = Array.isArray(issuer.contentEncryptionAlgorithms)
    ? strings(issuer.contentEncryptionAlgorithms).map(([, enc]) => enc).filter((enc) => CONTENT_ENCRYPTION.has(enc)) as ContentEncryptionAlgorithm[]
    : [...DECRYPTION_DEFAULTS.contentEncryptionAlgorithms]
  return { algs, encs }
}

function checkDecryption (issuer: Doc, ctx: ProviderCheckContext): { keys: DecryptionKey[], files: number[] } | undefined {
  if (issuer.decryptionKeys === undefined) {
    for (const option of DECRYPTION_POLICY_OPTIONS) {
      if (issuer[option] !== undefined) ctx.report([option], 'only applies to encrypted ID tokens; set decryptionKeys too (or remove it)')
    }
    return undefined
  }
  for (const [j, alg] of strings(issuer.keyManagementAlgorithms)) {
    if (!KEY_MANAGEMENT.has(alg)) ctx.report(['keyManagementAlgorithms', j], `unsupported JWE algorithm ${show(alg)}; expected one of ${KEY_MANAGEMENT_ALGORITHMS.join(', ')}`)
  }
  for (const [j, enc] of strings(issuer.contentEncryptionAlgorithms)) {
    if (!CONTENT_ENCRYPTION.has(enc)) ctx.report(['contentEncryptionAlgorithms', j], `unsupported JWE content encryption ${show(enc)}; expected one of ${CONTENT_ENCRYPTION_ALGORITHMS.join(', ')}`)
  }
  const { algs: allowed, encs } = policyLists(issuer)
  const keys: DecryptionKey[] = []
  const files: number[] = []
  for (const [j, file] of strings(issuer.decryptionKeys)) {
    for (const key of readKeyFile(file, ['decryptionKeys', j], ctx)) {
      const fits = keyFamily(key)
      const at = `key file ${JSON.stringify(file)}: `
      // The algorithms this key can serve here: its type's, allowed by the policy, its pinned one if any.
      const usable = allowed.filter((alg) => fits(alg) && (key.alg === undefined || key.alg === alg))
      const size = key.key.symmetricKeySize ?? 0
      if (key.alg !== undefined && !fits(key.alg)) {
        ctx.report(['decryptionKeys', j], `${at}${describeKind(key)}, is pinned to ${show(key.alg)}, which it cannot serve; expected its "alg" to be one of those, or none`)
      } else if (key.alg !== undefined && !allowed.includes(key.alg as KeyManagementAlgorithm)) {
        ctx.report(['decryptionKeys', j], `${at}a key pinned to ${show(key.alg)}, which keyManagementAlgorithms does not allow`)
      } else if (usable.length === 0) {
        ctx.report(['decryptionKeys', j], `${at}${describeKind(key)}, and keyManagementAlgorithms allows none of them`)
      } else if (usable.every((alg) => alg === 'dir') && !encs.some((enc) => contentKeyBytes(enc) === size)) {
        // RFC 7518 §4.5: with dir the shared secret is the content key itself.
        const lengths = encs.map((enc) => `${enc} ${contentKeyBytes(enc) ?? '?'}`).join(', ')
        ctx.report(['decryptionKeys', j], `${at}a secret of ${size} bytes, used only with dir, where the secret is the content key; ` +
          `expected the key length of an allowed contentEncryptionAlgorithms value (${lengths} bytes)`)
      } else {
        keys.push(key)
        files.push(j)
      }
    }
  }
  return { keys, files }
}

/**
 * A token without a kid, or with a kid no key has, is tried with every key of every issuer that fits its alg,
 * enc and curve, at most MAX_DECRYPTION_ATTEMPTS of them (src/core/jwe.ts): keys that could be past the cap
 * would never decrypt such a token. Refuses them, at the issuer and key file of the first key past the cap.
 */
export function checkDecryptionCandidates (issuers: unknown[], extras: ReadonlyMap<number, ProviderExtras>, report: (path: Path, text: string) => void): void {
  const candidates: Candidate[] = []
  const where = new Map<Candidate, Path>()
  issuers.forEach((issuer, i) => {
    const extra = extras.get(i)
    if (!isRecord(issuer) || extra?.decryptionKeys === undefined) return
    const { algs, encs } = policyLists(issuer)
    // Only alg, enc and zip are read: compressed tokens only narrow the keys a token fits.
    const policy: DecryptionConfig = { keys: extra.decryptionKeys, keyManagementAlgorithms: algs, contentEncryptionAlgorithms: encs, maxPbes2Count: 0, maxDecompressedBytes: 0, required: false }
    extra.decryptionKeys.forEach((key, k) => {
      const candidate = { key, policy }
      candidates.push(candidate)
      where.set(candidate, ['issuers', i, 'decryptionKeys', extra.decryptionKeyFiles?.[k] ?? 0])
    })
  })
  for (const { keys, headers } of crowdedHeaders(candidates)) {
    const algs = new Map<string, string[]>()
    for (const { alg, enc, epkCurve } of headers) {
      const name = epkCurve === undefined ? alg : `${alg} (${epkCurve})`
      algs.set(name, [...algs.get(name) ?? [], enc])
    }
    const selectors = [...algs].map(([name, list]) => list.length === CONTENT_ENCRYPTION_ALGORITHMS.length ? name : `${name} with ${list.join('/')}`)
    const files = new Map<string, number>()
    for (const { key } of keys) files.set(key.file, (files.get(key.file) ?? 0) + 1)
    const named = [...files].map(([file, n]) => n > 1 ? `${JSON.stringify(file)} (${n} keys)` : JSON.stringify(file)).join(', ')
    report(where.get(keys[MAX_DECRYPTION_ATTEMPTS] as Candidate) as Path,
      `a token without a kid (or with a kid no key has) for ${selectors.join(', ')} fits ${keys.length} decryption keys of all issuers together (${named}), ` +
      `but at most ${MAX_DECRYPTION_ATTEMPTS} keys are tried per token, so some would never decrypt one; expected at most ${MAX_DECRYPTION_ATTEMPTS}: ` +
      'remove retired keys, use one key for several issuers, pin each JWK to one algorithm ("alg"), or narrow keyManagementAlgorithms / contentEncryptionAlgorithms')
  }
}

/** Semantic checks of the provider options of issuers[i] (already preset-expanded). */
export function checkProviderOptions (issuer: Doc, ctx: ProviderCheckContext): ProviderExtras {
  for (const [path, text] of presetProblems(issuer)) ctx.report(path, text)
  checkTemplate(issuer, ctx)
  for (const [j, alias] of strings(issuer.issuerAliases)) {
    if (/\s|[{}]/.test(alias)) ctx.report(['issuerAliases', j], `expected an issuer string without whitespace or placeholders, got ${show(alias)}`)
    else if (alias === issuer.issuer) ctx.report(['issuerAliases', j], 'is the issuer itself; expected another spelling')
  }
  if (typeof issuer.discoveryUrl === 'string' && issuer.discoveryUrl !== '') {
    ctx.checkUrl(issuer.discoveryUrl, ['discoveryUrl'])
    if (issuer.jwks !== undefined || issuer.jwksUri !== undefined) ctx.report(['discoveryUrl'], 'discoveryUrl, jwksUri and jwks are mutually exclusive; expected one of them')
  }
  checkClaimPaths(issuer, ctx)
  const decryption = checkDecryption(issuer, ctx)
  return decryption === undefined ? {} : { decryptionKeys: decryption.keys, decryptionKeyFiles: decryption.files }
}

/** The resolved provider options of a valid issuer document; only options that are set appear. */
export function resolveProviderOptions (issuer: Doc, extras: ProviderExtras | undefined, maxTokenBytes: number): Partial<IssuerConfig> {
  const out: Partial<IssuerConfig> = {}
  if (typeof issuer.preset === 'string') out.preset = issuer.preset as IssuerConfig['preset']
  if (Array.isArray(issuer.issuerAliases) && issuer.issuerAliases.length > 0) out.issuerAliases = [...issuer.issuerAliases as string[]]
  if (Array.isArray(issuer.allowedTenants)) out.allowedTenants = [...issuer.allowedTenants as string[]]
  if (Array.isArray(issuer.userKeyClaims)) out.userKeyClaims = [...issuer.userKeyClaims as string[]]
  if (typeof issuer.trustEmailVerified === 'boolean') out.trustEmailVerified = issuer.trustEmailVerified
  if (typeof issuer.checkAuthorizedParty === 'boolean') out.checkAuthorizedParty = issuer.checkAuthorizedParty
  if (typeof issuer.discoveryUrl === 'string') out.keys = { kind: 'discovery', discoveryUrl: issuer.discoveryUrl }
  if (extras?.decryptionKeys !== undefined) {
    out.decryption = {
      keys: extras.decryptionKeys,
      keyManagementAlgorithms: [...(issuer.keyManagementAlgorithms as KeyManagementAlgorithm[] | undefined ?? DECRYPTION_DEFAULTS.keyManagementAlgorithms)],
      contentEncryptionAlgorithms: [...(issuer.contentEncryptionAlgorithms as ContentEncryptionAlgorithm[] | undefined ?? DECRYPTION_DEFAULTS.contentEncryptionAlgorithms)],
      maxPbes2Count: typeof issuer.maxPbes2Count === 'number' ? issuer.maxPbes2Count : DECRYPTION_DEFAULTS.maxPbes2Count,
      // The inflated plaintext is the inner token: it may be no larger than any token.
      maxDecompressedBytes: issuer.allowCompressedTokens === true ? maxTokenBytes : 0,
      required: issuer.requireEncryption === true
    }
  }
  return out
}
