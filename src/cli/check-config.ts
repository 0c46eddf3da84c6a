/**
 * `oidc-verifier check-config`: resolves every configured issuer the way the service does (discovery, the
 * JWKS, the key checks of KeySet) and reports, per issuer, where its keys come from, how many are usable and
 * what is wrong. Nothing is cached or retried: this is one look, for an operator or a deployment pipeline.
 */
import type { Config, ConfigWarning, IssuerConfig, JsonWebKeySet } from '../config/types.js'
import { fitsAlgorithm, KeySet, type RejectedKey } from '../core/key-set.js'
import { isAsymmetricAlgorithm } from '../core/signature.js'
import { discoverJwksUri } from '../jwks/discovery.js'
import { parseJwks } from '../jwks/parse-jwks.js'
import { fetchJson, type FetchJson } from '../net/fetch-json.js'

export interface IssuerReport {
  id: string
  issuer: string
  source: IssuerConfig['keys']['kind']
  /** The configured or discovered JWKS URL; null for inline keys or when discovery failed. */
  jwksUri: string | null
  /** Keys usable for verification; null when the key set could not be obtained. */
  usableKeys: number | null
  rejectedKeys: RejectedKey[]
  /** Anything that keeps tokens of this issuer from verifying. */
  problems: string[]
  /** Worth knowing, but tokens still verify (keys the service will never use). */
  warnings: string[]
}

function errorMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function describeKey (kid: string | undefined): string {
  return kid === undefined ? 'a key without kid' : `key ${JSON.stringify(kid)}`
}

async function resolveKeys (issuer: IssuerConfig, config: Config, fetcher: FetchJson, report: IssuerReport): Promise<JsonWebKeySet | undefined> {
  switch (issuer.keys.kind) {
    case 'inline':
      return issuer.keys.jwks
    case 'jwksUri':
      report.jwksUri = issuer.keys.jwksUri
      break
    case 'discovery':
      try {
        report.jwksUri = (await discoverJwksUri(issuer.issuer, config.fetch, fetcher, issuer.keys.discoveryUrl)).jwksUri
      } catch (err) {
        report.problems.push(errorMessage(err))
        return undefined
      }
      break
  }
  try {
    const result = await fetcher(report.jwksUri, config.fetch)
    return parseJwks(result.body, result.url)
  } catch (err) {
    report.problems.push(errorMessage(err))
    return undefined
  }
}

export async function checkIssuer (issuer: IssuerConfig, config: Config, fetcher: FetchJson = fetchJson): Promise<IssuerReport> {
  const report: IssuerReport = {
    id: issuer.id,
    issuer: issuer.issuer,
    source: issuer.keys.kind,
    jwksUri: null,
    usableKeys: null,
    rejectedKeys: [],
    problems: [],
    warnings: []
  }
  const asymmetric = issuer.algorithms.filter(isAsymmetricAlgorithm)
  // HMAC only: the client secret verifies, keys are not needed (the service fetches none for such an issuer).
  if (asymmetric.length === 0) return report
  const jwks = await resolveKeys(issuer, config, fetcher, report)
  if (jwks === undefined) return report

  const keySet = new KeySet(jwks)
  report.usableKeys = keySet.keys.length
  report.rejectedKeys = [...keySet.rejected]
  for (const rejected of keySet.rejected) report.warnings.push(`${describeKey(rejected.kid)} is never used: ${rejected.reason}`)

  if (keySet.keys.length === 0) {
    report.problems.push('the JWKS has no usable signature key, so no token of this issuer can verify')
  } else if (!keySet.keys.some((key) => asymmetric.some((alg) => fitsAlgorithm(key, alg)))) {
    const kinds = [...new Set(keySet.keys.map((k) => [k.kty, k.crv, k.alg].filter((x) => x !== undefined).join(' ')))]
    report.problems.push(`no usable key fits the allowed algorithms (${asymmetric.join(', ')}); the keys are: ${kinds.join('; ')}`)
  }
  return report
}

/** Every issuer at once: each check is bounded by fetch.timeoutMs per request. */
export async function checkIssuers (config: Config, fetcher: FetchJson = fetchJson): Promise<IssuerReport[]> {
  return await Promise.all(config.issuers.map(async (issuer) => await checkIssuer(issuer, config, fetcher)))
}

/** Whether the reports fail the check: any problem, and with `strict` any warning too. */
export function hasProblems (reports: IssuerReport[], strict: boolean): boolean {
  return reports.some((r) => r.problems.length > 0 || (strict && r.warnings.length > 0))
}

/** A plain-text table, one row per issuer, its problems and warnings on indented lines below it. */
export function renderTable (reports: IssuerReport[], strict: boolean): string {
  const header = ['ID', 'ISSUER', 'KEYS', 'JWKS URI', 'USABLE', 'STATUS']
  const rows = reports.map((r) => [
    r.id,
    r.issuer,
    r.source,
    r.jwksUri ?? '-',
    r.usableKeys === null ? '-' : String(r.usableKeys),
    r.problems.length > 0 || (strict && r.warnings.length > 0) ? 'PROBLEM' : r.warnings.length > 0 ? 'ok (warnings)' : 'ok'
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')
  const out = [line(header)]
  reports.forEach((r, i) => {
    out.push(line(rows[i]!))
    for (const p of r.problems) out.push(`    problem: ${p}`)
    for (const w of r.warnings) out.push(`    ${strict ? 'problem' : 'warning'}: ${w}`)
  })
  return out.join('\n')
}

/**
 * The settings the configuration accepts but ignores (src/config/inert-settings.ts), one indented line each as
 * the issuers' warnings are, followed by an empty line; nothing when there are none.
 */
export function renderConfigWarnings (warnings: readonly ConfigWarning[], strict: boolean): string {
  return warnings.map((w) => `    ${strict ? 'problem' : 'warning'}: ${w.setting} ${w.message}\n`).join('')
}
