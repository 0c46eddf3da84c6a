/**
 * Semantic checks and resolution of the operations options: server timeouts, the ops port, TLS, caller keys,
 * metrics and load shedding. Shapes, ranges and unknown options are checked by the schema walk in
 * schema-check.ts; here is what a schema cannot say (files that must parse, exclusive options, environment
 * lookups, duplicates). load.ts calls these with its reporter, so every problem is listed with its path.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto'
import { createSecureContext } from 'node:tls'
import { fileErrorReason, readSmallFileSync } from '../small-file.js'
import { pemBlocks } from './pem-blocks.js'
import {
  CALLERS_DEFAULTS,
  ENV_VAR_NAME_PATTERN,
  LOAD_SHEDDING_DEFAULTS,
  METRICS_DEFAULTS,
  RESERVED_CALLER_IDS,
  SERVER_DEFAULTS,
  type ConfigFile
} from './schema.js'
import type { CallersConfig, LoadSheddingConfig, MetricsConfig } from './types.js'
import { envValue, isRecord, type Path, type Reporter } from './document.js'

/** Environment variable of environment-only mode: `id:sha256hex,id:sha256hex`. */
export const CALLER_KEYS_ENV = 'CALLER_KEY_HASHES'

const SHA256_HEX = /^[0-9A-Fa-f]{64}$/
/** SHA-256 of the empty string: the hash of an unset $KEY, which no request can present (an empty X-Api-Key is missing). */
const EMPTY_KEY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
const EMPTY_KEY_PROBLEM = 'is the SHA-256 of an empty key (the key\'s variable was unset or empty when it was hashed), which no request can present; ' +
  'expected the hash of the caller\'s key: printf %s "$KEY" | sha256sum'
const ENV_NAME = new RegExp(ENV_VAR_NAME_PATTERN)

/** Reads a PEM file for a check; undefined (reported) when it cannot be read. */
function readPem (path: string, at: Path, report: Reporter): string | undefined {
  try {
    return readSmallFileSync(path).toString('utf8')
  } catch (err) {
    report(at, `cannot read ${JSON.stringify(path)}: ${fileErrorReason(err)}`)
    return undefined
  }
}

/**
 * OpenSSL's reason, without its error number: "error:05800074:x509 certificate routines::key values mismatch". Also
 * for the files a reload reads (src/http/tls-reload.ts).
 */
export function opensslReason (err: unknown): string {
  return String((err as Error).message).split('::').pop() ?? 'refused'
}

function checkTls (tls: unknown, section: 'tls' | 'opsTls', report: Reporter): void {
  if (!isRecord(tls)) return
  let cert: X509Certificate | undefined
  let certPem = ''
  let key: KeyObject | undefined
  if (typeof tls.certFile === 'string' && tls.certFile !== '') {
    const pem = readPem(tls.certFile, ['server', section, 'certFile'], report)
    if (pem !== undefined) {
      certPem = pem
      try {
        cert = new X509Certificate(pem)
      } catch {
        report(['server', section, 'certFile'], `expected a PEM certificate in ${JSON.stringify(tls.certFile)}`)
      }
      // The chain after it as OpenSSL reads it for the listener: a broken intermediate (a line lost in a copy) would
      // otherwise stop the start with OpenSSL's words alone ("asn1 encoding routines::too long"), naming no setting.
      if (cert !== undefined) {
        try {
          createSecureContext({ cert: pem })
        } catch (err) {
          cert = undefined
          report(['server', section, 'certFile'], `expected a PEM certificate chain in ${JSON.stringify(tls.certFile)}: OpenSSL cannot read it (${opensslReason(err)})`)
        }
      }
    }
  }
  if (typeof tls.keyFile === 'string' && tls.keyFile !== '') {
    const pem = readPem(tls.keyFile, ['server', section, 'keyFile'], report)
    if (pem !== undefined) {
      try {
        key = createPrivateKey(pem)
      } catch {
        // The message never quotes the file: it holds a private key.
        report(['server', section, 'keyFile'], `expected an unencrypted PEM private key in ${JSON.stringify(tls.keyFile)}`)
      }
    }
  }
  if (cert !== undefined && key !== undefined && !cert.checkPrivateKey(key)) {
    const order = certificateOrderProblem(String(tls.certFile), `server.${section}.keyFile`, certPem, key)
    if (order !== undefined) report(['server', section, 'certFile'], order)
    else report(['server', section, 'keyFile'], `the private key does not belong to the certificate in server.${section}.certFile`)
  }
  if (typeof tls.clientCaFile === 'string' && tls.clientCaFile !== '') {
    const pem = readPem(tls.clientCaFile, ['server', section, 'clientCaFile'], report)
    const problem = pem === undefined ? undefined : clientCaProblem(tls.clientCaFile, pem)
    if (problem !== undefined) report(['server', section, 'clientCaFile'], problem)
  }
}

/** The labels OpenSSL reads a certificate chain under. */
const CHAIN_LABELS = new Set(['CERTIFICATE', 'TRUSTED CERTIFICATE', 'X509 CERTIFICATE'])

/**
 * A certificate file in reverse order (its chain first, the server's own certificate last, as some CAs send a
 * bundle): the key is not the first certificate's, the one served as the server's own, but a later one's. What to
 * fix then is the order of certFile, not the key; undefined when the key is no certificate's of the file. Also for
 * the files a reload or the look at the files reads (src/http/tls-reload.ts).
 */
export function certificateOrderProblem (path: string, keySetting: string, pem: string | Buffer, key: KeyObject): string | undefined {
  const blocks = pemBlocks(pem.toString(), (label) => CHAIN_LABELS.has(label))
  for (const [i, block] of blocks.entries()) {
    if (i === 0) continue
    let own: boolean
    try {
      own = new X509Certificate(block.text).checkPrivateKey(key)
    } catch {
      continue
    }
    if (own) {
      return `expected the server's own certificate first in ${JSON.stringify(path)}, then its chain: the private key in ${keySetting} ` +
        `is that of certificate ${i + 1} of ${blocks.length}, and the first is the one served`
    }
  }
  return undefined
}

/**
 * What is wrong with the content of a client CA file (the text after its setting), or undefined when it holds
 * CA certificates that each chain, within the file, to a root; also for the files a reload reads again
 * (src/http/tls-reload.ts).
 */
export function clientCaProblem (path: string, pem: string | Buffer): string | undefined {
  // Every block of the bundle that OpenSSL reads is a trust anchor for client certificates, not only the first:
  // CERTIFICATE blocks, and TRUSTED CERTIFICATE ones too, which are refused here (X509Certificate cannot check them).
  const blocks = pemBlocks(pem.toString())
  const certificates = blocks.filter((b) => b.label === 'CERTIFICATE')
  if (certificates.length === 0) return `expected a PEM CA certificate in ${JSON.stringify(path)}`
  const other = blocks.find((b) => b.label !== 'CERTIFICATE')
  if (other !== undefined) return `expected only CERTIFICATE blocks in ${JSON.stringify(path)}, got a ${other.label} block; each block is trusted`
  const cas: X509Certificate[] = []
  for (const [i, block] of certificates.entries()) {
    const which = certificates.length > 1 ? ` (certificate ${i + 1} of ${certificates.length} is not)` : ''
    let ca: X509Certificate
    try {
      ca = new X509Certificate(block.text)
    } catch {
      return `expected a PEM CA certificate in ${JSON.stringify(path)}${which}`
    }
    if (!ca.ca && !isSelfSignedV1(ca)) {
      return `expected a CA certificate (basicConstraints CA:TRUE) in ${JSON.stringify(path)}${which}; client certificates are checked against it, and each certificate in the file is trusted`
    }
    cas.push(ca)
  }
  // OpenSSL admits a client only through a chain that ends at a self-signed CA of this file: an intermediate
  // whose root is not in it admits none of its clients (and nothing says why: the handshake just ends).
  for (const [i, ca] of cas.entries()) {
    if (rootInFile(ca, cas)) continue
    // A copy of a CA already in the file (its name and key) issued by a CA that is not, such as a root cross-signed
    // by an older one: OpenSSL finds the CA that comes first for a client's chain, and the copy is never used.
    if (cas.slice(0, i).some((earlier) => sameCa(earlier, ca) && rootInFile(earlier, cas))) continue
    const which = cas.length > 1 ? ` (certificate ${i + 1} of ${cas.length})` : ''
    const name = (dn: string): string => JSON.stringify(dn.split('\n').join(', '))
    return `the CA ${name(ca.subject)} in ${JSON.stringify(path)}${which} is an intermediate whose issuer (${name(ca.issuer)}) is not in the file: ` +
      'clients are admitted only through a chain up to a self-signed (root) CA of the file; add the root CA to the file'
  }
  return undefined
}

/**
 * The same name and key. The keys are compared by their encoding, not with KeyObject.equals: two CAs of one name
 * may have keys of different types, and equals across key types leaves an OpenSSL error behind (Node 20) that
 * aborts the process at its next WebCrypto AES job, in a process that keeps serving after a reload or a look at
 * the certificate files.
 */
function sameCa (a: X509Certificate, b: X509Certificate): boolean {
  return a.subject === b.subject && keyOf(a) === keyOf(b)
}

/**
 * A CA's public key, one text per key: an EC key by its curve and coordinates (a JWK), since one point has two
 * SPKI encodings, compressed and uncompressed, and a copy of a root whose issuer wrote the other would not be seen
 * as the root's (OpenSSL takes it for one; the file would be refused for an intermediate without its root). Other
 * keys, and EC keys of a curve JWK does not name, by their SPKI bytes. Neither way leaves an OpenSSL error behind.
 */
function keyOf (cert: X509Certificate): string {
  const key = cert.publicKey
  if (key.asymmetricKeyType === 'ec') {
    try {
      const { crv, x, y } = key.export({ format: 'jwk' })
      return `ec ${crv ?? ''} ${x ?? ''} ${y ?? ''}`
    } catch {
      // A curve JWK has no name for: its SPKI bytes, below.
    }
  }
  return `spki ${key.export({ type: 'spki', format: 'der' }).toString('base64')}`
}

function isSelfSigned (cert: X509Certificate): boolean {
  return cert.checkIssued(cert) && cert.verify(cert.publicKey)
}

/** Whether `cert` chains, through certificates of `file`, to a self-signed one of `file`. */
function rootInFile (cert: X509Certificate, file: readonly X509Certificate[]): boolean {
  let current: X509Certificate | undefined = cert
  for (let hops = 0; current !== undefined && hops <= file.length; hops++) {
    if (isSelfSigned(current)) return true
    const child: X509Certificate = current
    current = file.find((c) => c !== child && child.checkIssued(c) && child.verify(c.publicKey))
  }
  return false
}

/**
 * An X.509 v1 self-signed certificate: a root from before extensions (no basicConstraints), which OpenSSL takes as
 * a CA. v1 is the TBSCertificate without its explicit [0] version field.
 */
function isSelfSignedV1 (cert: X509Certificate): boolean {
  const der = cert.raw
  const skipHeader = (at: number): number => {
    const length = der[at + 1] ?? 0
    return at + 2 + (length & 0x80 ? length & 0x7f : 0)
  }
  const tbs = skipHeader(0) // Certificate ::= SEQUENCE { tbsCertificate, ... }
  const first = skipHeader(tbs) // TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, ... }
  if (der[first] === 0xa0) return false
  return cert.checkIssued(cert) && cert.verify(cert.publicKey)
}

function checkServerOperations (server: unknown, report: Reporter): void {
  if (!isRecord(server)) return
  const headers = typeof server.headersTimeoutMs === 'number' ? server.headersTimeoutMs : SERVER_DEFAULTS.headersTimeoutMs
  const request = typeof server.requestTimeoutMs === 'number' ? server.requestTimeoutMs : SERVER_DEFAULTS.requestTimeoutMs
  if (headers > request) report(['server', 'headersTimeoutMs'], `expected at most server.requestTimeoutMs (${request}), got ${headers}`)
  const port = typeof server.port === 'number' ? server.port : SERVER_DEFAULTS.port
  if (typeof server.opsPort === 'number' && server.opsPort !== 0 && server.opsPort === port) {
    report(['server', 'opsPort'], `expected a port other than server.port (${port}); leave opsPort out to serve everything on one port`)
  }
  checkTls(server.tls, 'tls', report)
  checkTls(server.opsTls, 'opsTls', report)
  if (server.opsTls !== undefined && server.opsPort === undefined) {
    report(['server', 'opsTls'], 'expected server.opsPort with it: opsTls is the ops listener\'s (server.tls is the main one\'s)')
  }
}

/** The hash a caller key resolves to (file or environment), checked; undefined when absent or broken. */
function callerHash (key: Record<string, unknown>, i: number, env: NodeJS.ProcessEnv, report: Reporter): string | undefined {
  const at = (...rest: string[]): Path => ['callers', 'keys', i, ...rest]
  const hasInline = key.sha256 !== undefined
  const hasEnv = key.sha256Env !== undefined
  if (hasInline && hasEnv) {
    report(at(), 'sha256 and sha256Env are mutually exclusive; expected one of them')
    return undefined
  }
  if (!hasInline && !hasEnv) {
    report(at(), 'expected sha256 (the SHA-256 of the key in hex) or sha256Env (a variable holding it)')
    return undefined
  }
  if (hasInline) {
    if (typeof key.sha256 !== 'string' || !SHA256_HEX.test(key.sha256)) return undefined
    if (key.sha256.toLowerCase() === EMPTY_KEY_SHA256) {
      report(at('sha256'), EMPTY_KEY_PROBLEM)
      return undefined
    }
    return key.sha256.toLowerCase()
  }
  if (typeof key.sha256Env !== 'string' || !ENV_NAME.test(key.sha256Env)) return undefined
  const value = envValue(env, key.sha256Env)
  if (value === undefined) {
    report(at('sha256Env'), `expected environment variable ${key.sha256Env} to hold the SHA-256 of the key, but it is not set`)
    return undefined
  }
  if (!SHA256_HEX.test(value.trim())) {
    // Never echo the value: it may be the key itself.
    report(at('sha256Env'), `expected the value of ${key.sha256Env} to be the SHA-256 of the key as 64 hex digits (printf %s "$KEY" | sha256sum), never the key itself`)
    return undefined
  }
  if (value.trim().toLowerCase() === EMPTY_KEY_SHA256) {
    report(at('sha256Env'), `the value of ${key.sha256Env} ${EMPTY_KEY_PROBLEM}`)
    return undefined
  }
  return value.trim().toLowerCase()
}

function checkCallers (callers: unknown, env: NodeJS.ProcessEnv, ownMaxRequired: boolean, report: Reporter): void {
  if (!isRecord(callers) || !Array.isArray(callers.keys)) return
  const ids = new Map<string, number>()
  const hashes = new Map<string, number>()
  callers.keys.forEach((key: unknown, i) => {
    if (!isRecord(key)) return
    if (typeof key.id === 'string') {
      if (RESERVED_CALLER_IDS.includes(key.id)) {
        report(['callers', 'keys', i, 'id'], `${JSON.stringify(key.id)} is reserved (it names "no caller" in logs and metrics); expected another id`)
      }
      const first = ids.get(key.id)
      if (first !== undefined) report(['callers', 'keys', i, 'id'], `duplicate id ${JSON.stringify(key.id)} (also callers.keys[${first}].id); expected unique ids`)
      else ids.set(key.id, i)
    }
    if (ownMaxRequired && isRecord(key.rateLimit) && key.rateLimit.max === undefined) {
      report(['callers', 'keys', i, 'rateLimit', 'max'], 'missing: rateLimit.max is not set, so this caller\'s limit needs its own max')
    }
    const hash = callerHash(key, i, env, report)
    if (hash !== undefined) {
      const first = hashes.get(hash)
      if (first !== undefined) report(['callers', 'keys', i], `the same key hash as callers.keys[${first}]; expected one key per caller (give each caller its own key)`)
      else hashes.set(hash, i)
    }
  })
}

/** Checks what the schema cannot; reports each problem with its path. */
export function checkOperations (doc: Record<string, unknown>, env: NodeJS.ProcessEnv, report: Reporter): void {
  checkServerOperations(doc.server, report)
  // A caller's own limit needs a max of its own only when rate limiting is on and rateLimit.max is not set.
  const limits = isRecord(doc.rateLimit) ? doc.rateLimit : {}
  checkCallers(doc.callers, env, limits.enabled !== false && limits.max === undefined, report)
}

/**
 * Environment-only mode: the `callers` section from CALLER_KEY_HASHES (`id:sha256hex,id:sha256hex`), or
 * undefined when the variable is not set. Malformed items become values the schema walk reports.
 */
export function callersFromEnv (env: NodeJS.ProcessEnv): Record<string, unknown> | undefined {
  const value = envValue(env, CALLER_KEYS_ENV)
  if (value === undefined) return undefined
  const keys = value.split(',').map((item) => {
    const at = item.indexOf(':')
    // An item without "id:" may be a key pasted by mistake: it is not made an id, which problems would quote.
    return at < 0 ? { sha256: '' } : { id: item.slice(0, at).trim(), sha256: item.slice(at + 1).trim() }
  })
  return { keys }
}

export interface ResolvedOperations {
  metrics: MetricsConfig
  callers: CallersConfig
  loadShedding: LoadSheddingConfig
}

/** Resolves the sections once everything conforms (checkOperations reported no problem). */
export function resolveOperations (file: ConfigFile, env: NodeJS.ProcessEnv): ResolvedOperations {
  const keys = (file.callers?.keys ?? []).map((key) => {
    const hash = key.sha256 ?? envValue(env, key.sha256Env ?? '') ?? ''
    const resolved: CallersConfig['keys'][number] = { id: key.id, sha256: hash.trim().toLowerCase() }
    // Only what the caller sets: the routes fill in the rest from the rateLimit in force (src/http/route-rate-limit.ts),
    // which a reload does not change, so a reload that changes rateLimit cannot move the callers' limits either.
    if (key.rateLimit !== undefined) {
      const { max, windowSeconds } = key.rateLimit
      resolved.rateLimit = { ...(max !== undefined ? { max } : {}), ...(windowSeconds !== undefined ? { windowSeconds } : {}) }
    }
    if (key.revoke === true) resolved.revoke = true
    return resolved
  })
  const shedding = file.loadShedding ?? {}
  return {
    metrics: { enabled: file.metrics?.enabled ?? METRICS_DEFAULTS.enabled },
    callers: {
      keys,
      protectMetrics: file.callers?.protectMetrics ?? CALLERS_DEFAULTS.protectMetrics,
      maxFailuresPerMinute: file.callers?.maxFailuresPerMinute ?? CALLERS_DEFAULTS.maxFailuresPerMinute
    },
    loadShedding: {
      enabled: shedding.enabled ?? LOAD_SHEDDING_DEFAULTS.enabled,
      maxEventLoopDelayMs: shedding.maxEventLoopDelayMs ?? LOAD_SHEDDING_DEFAULTS.maxEventLoopDelayMs,
      maxEventLoopUtilization: shedding.maxEventLoopUtilization ?? LOAD_SHEDDING_DEFAULTS.maxEventLoopUtilization,
      maxHeapUsedBytes: shedding.maxHeapUsedBytes ?? LOAD_SHEDDING_DEFAULTS.maxHeapUsedBytes,
      maxRssBytes: shedding.maxRssBytes ?? LOAD_SHEDDING_DEFAULTS.maxRssBytes,
      sampleIntervalMs: shedding.sampleIntervalMs ?? LOAD_SHEDDING_DEFAULTS.sampleIntervalMs,
      retryAfterSeconds: shedding.retryAfterSeconds ?? LOAD_SHEDDING_DEFAULTS.retryAfterSeconds
    }
  }
}
