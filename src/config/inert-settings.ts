/**
 * Settings the configuration accepts but that do nothing, given the rest of it: a client secret of an issuer
 * without an HS* algorithm, a caller's own rate limit while rate limiting is off, revocation options while
 * revocation is off, and so on. They are not problems (the configuration is valid, and may be on its way from
 * one state to another), but nothing should be ignored in silence: each becomes a warning, logged at start and
 * at a reload (src/run.ts, src/reload.ts) and printed by `oidc-verifier check-config`.
 *
 * Only what the file (or the environment) actually writes is looked at, never a default nor what a preset
 * fills in: the document as written is `written`, the one with the presets applied is `expanded`.
 */
import { isRecord, type Path } from './document.js'
import { formatPath } from './schema-check.js'
import { listsHmac, listsOnlyHmac } from './issuers.js'
import type { ConfigWarning } from './types.js'

/** The keys a section writes, other than `except`; none when it is not a mapping. */
function writtenKeys (section: unknown, except: readonly string[] = []): string[] {
  if (!isRecord(section)) return []
  return Object.keys(section).filter((key) => section[key] !== undefined && !except.includes(key))
}

/**
 * The warnings of a valid configuration document. `written` is the document as read; `expanded` the same with
 * the presets applied (src/config/presets.ts), which the service runs with.
 */
export function inertSettings (written: unknown, expanded: unknown): ConfigWarning[] {
  const warnings: ConfigWarning[] = []
  const warn = (path: Path, message: string): void => { warnings.push({ setting: formatPath(path), message }) }
  if (!isRecord(written) || !isRecord(expanded)) return warnings

  // Issuers: a client secret without an HS* algorithm; keys of an issuer that needs none.
  const writtenIssuers = Array.isArray(written.issuers) ? written.issuers : []
  const issuers = Array.isArray(expanded.issuers) ? expanded.issuers : []
  issuers.forEach((issuer: unknown, i) => {
    const own = writtenIssuers[i]
    if (!isRecord(issuer) || !isRecord(own)) return
    for (const key of ['clientSecret', 'clientSecretEnv'] as const) {
      if (own[key] !== undefined && !listsHmac(issuer)) {
        warn(['issuers', i, key], 'is ignored: the client secret only verifies HS256/HS384/HS512 ID tokens, and algorithms lists none of them ' +
          '(encrypted tokens are decrypted with decryptionKeys, never the client secret); add the HS* algorithm the provider signs with to algorithms, or remove it')
      }
    }
    // maxPbes2Count without a PBES2 algorithm (never in the default keyManagementAlgorithms); without
    // decryptionKeys it is a problem (src/config/provider-options.ts).
    if (own.maxPbes2Count !== undefined && issuer.decryptionKeys !== undefined &&
      !(Array.isArray(issuer.keyManagementAlgorithms) && issuer.keyManagementAlgorithms.some((alg) => typeof alg === 'string' && alg.startsWith('PBES2-')))) {
      warn(['issuers', i, 'maxPbes2Count'], 'is ignored: keyManagementAlgorithms lists no PBES2 algorithm, so no token\'s p2c is ever read; ' +
        'add the PBES2-* algorithm the provider encrypts with to keyManagementAlgorithms, or remove it')
    }
    // authorizedParties while azp is not checked: only an entry that is also an audience still counts (a token of
    // that client may be presented for another, src/core/id-token-rules.ts isOtherClient).
    if (issuer.checkAuthorizedParty === false && Array.isArray(own.authorizedParties)) {
      const audiences = Array.isArray(issuer.audiences) ? issuer.audiences : []
      own.authorizedParties.forEach((party: unknown, j) => {
        if (audiences.includes(party)) return
        warn(['issuers', i, 'authorizedParties', j], `is ignored: checkAuthorizedParty is false${own.checkAuthorizedParty === undefined ? ' (the preset\'s default)' : ''}, ` +
          'so a token\'s azp is not checked against authorizedParties; to accept only some callers, require their azp (or email, sub) in requiredClaims, or remove it')
      })
    }
    if (listsOnlyHmac(issuer)) {
      for (const key of ['jwks', 'jwksUri', 'discoveryUrl'] as const) {
        if (own[key] !== undefined) {
          warn(['issuers', i, key], 'is ignored: algorithms lists only HS* algorithms, whose tokens the client secret verifies, so no key is ever read ' +
            'or fetched for this issuer; add the asymmetric algorithms the provider signs with to algorithms, or remove it')
        }
      }
    }
  })

  // jwks: the cache of fetched key sets, which only issuers with asymmetric algorithms and no inline jwks use; fetch:
  // how those key sets and discovery documents are fetched (nothing else is).
  const fetching = issuers.filter((issuer) => isRecord(issuer) && !listsOnlyHmac(issuer) && issuer.jwks === undefined)
  if (fetching.length === 0) {
    for (const key of writtenKeys(written.jwks)) {
      warn(['jwks', key], 'is ignored: no issuer fetches keys (each has inline jwks, or lists only HS* algorithms), so the JWKS cache is never used; remove it')
    }
    for (const key of writtenKeys(written.fetch)) {
      warn(['fetch', key], 'is ignored: no issuer fetches keys or discovery metadata (each has inline jwks, or lists only HS* algorithms), so nothing is fetched; remove it')
    }
  } else if (isRecord(written.jwks) && written.jwks.rediscoverySeconds !== undefined &&
    !fetching.some((issuer) => isRecord(issuer) && issuer.jwksUri === undefined)) {
    warn(['jwks', 'rediscoverySeconds'], 'is ignored: no issuer uses discovery (each has jwksUri or inline jwks, or lists only HS* algorithms), so no metadata is read again; remove it')
  }

  // rateLimit: everything but `enabled` is ignored while it is false, and with it the callers' own limits and
  // the back-channel logout's.
  const rateLimitOff = isRecord(written.rateLimit) && written.rateLimit.enabled === false
  if (rateLimitOff) {
    for (const key of writtenKeys(written.rateLimit, ['enabled'])) {
      warn(['rateLimit', key], 'is ignored: rateLimit.enabled is false, which turns every rate limit off; remove it, or set rateLimit.enabled: true')
    }
  }

  // revocation: everything but `enabled` is ignored while it is off (the default), and with it callers' revoke.
  const revocation = written.revocation
  const revocationOff = !isRecord(revocation) || revocation.enabled !== true
  if (revocationOff) {
    for (const key of writtenKeys(revocation, ['enabled'])) {
      warn(['revocation', key], 'is ignored: revocation is off (revocation.enabled is not true), so nothing is revoked and no revocation store is kept; remove it, or set revocation.enabled: true')
    }
  } else if (rateLimitOff && isRecord(revocation) && revocation.logoutRateLimit !== undefined) {
    warn(['revocation', 'logoutRateLimit'], 'is ignored: rateLimit.enabled is false, which turns every rate limit off, POST /backchannel-logout\'s too; remove it, or set rateLimit.enabled: true')
  }

  const callers = written.callers
  if (isRecord(callers) && Array.isArray(callers.keys)) {
    callers.keys.forEach((key: unknown, i) => {
      if (!isRecord(key)) return
      if (rateLimitOff && key.rateLimit !== undefined) {
        warn(['callers', 'keys', i, 'rateLimit'], 'is ignored: rateLimit.enabled is false, which turns every rate limit off, this caller\'s own too; remove it, or set rateLimit.enabled: true')
      }
      if (revocationOff && key.revoke === true) {
        warn(['callers', 'keys', i, 'revoke'], 'is ignored: revocation is off (revocation.enabled is not true), so POST /revocations is not served; remove it, or set revocation.enabled: true')
      }
    })
  }

  // callers.protectMetrics: about /metrics on the main port, which is served only with metrics on and no opsPort.
  const server = isRecord(written.server) ? written.server : {}
  if (isRecord(callers) && callers.protectMetrics !== undefined) {
    const metricsOff = isRecord(written.metrics) && written.metrics.enabled === false
    if (metricsOff || server.opsPort !== undefined) {
      warn(['callers', 'protectMetrics'], `is ignored: ${metricsOff ? 'metrics.enabled is false, so /metrics is not served' : 'with server.opsPort, /metrics is served on the ops port only, which never needs a key'}; remove it`)
    }
  }

  // tokenCache and loadShedding: the other options are ignored while `enabled` is false.
  for (const section of ['tokenCache', 'loadShedding'] as const) {
    const value = written[section]
    if (isRecord(value) && value.enabled === false) {
      for (const key of writtenKeys(value, ['enabled'])) {
        warn([section, key], `is ignored: ${section}.enabled is false; remove it, or set ${section}.enabled: true`)
      }
    }
  }

  // server: the ops listener's address without the ops listener; the certificate look without certificates.
  if (server.opsHost !== undefined && server.opsPort === undefined) {
    warn(['server', 'opsHost'], 'is ignored: there is no ops listener without server.opsPort (health and metrics are served on server.port); set server.opsPort, or remove it')
  }
  if (server.certificateCheckSeconds !== undefined && server.tls === undefined && server.opsTls === undefined) {
    warn(['server', 'certificateCheckSeconds'], 'is ignored: there are no certificate files to look at without server.tls or server.opsTls; remove it')
  }
  return warnings
}

/** Whether two warnings say the same. */
function sameWarning (a: ConfigWarning, b: ConfigWarning): boolean {
  return a.setting === b.setting && a.message === b.message
}

/** The warnings of `next` that `running` did not have: what a reload has to say. */
export function newWarnings (running: readonly ConfigWarning[], next: readonly ConfigWarning[]): ConfigWarning[] {
  return next.filter((w) => !running.some((r) => sameWarning(r, w)))
}

/**
 * One warn line per ignored setting, naming it in `setting` (and in the message): at start (src/run.ts), and at a
 * reload for those the running configuration did not have (src/reload.ts).
 */
export function logConfigWarnings (log: { warn: (obj: object, msg: string) => void }, warnings: readonly ConfigWarning[]): void {
  for (const { setting, message } of warnings) log.warn({ setting }, `configuration: ${setting} ${message}`)
}
