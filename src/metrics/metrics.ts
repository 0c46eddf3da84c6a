/**
 * The service's Prometheus metrics: one Registry per app instance (tests build many apps), the default
 * process metrics in it, and the series below. Every label value comes from configuration (issuer ids,
 * caller ids, route patterns) or from a fixed set (error codes, outcomes); never from a token or a request.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Aggregator } from 'prom-client'
import type { IssuerStatus, VerifierEvents } from '../core/verifier.js'
import { ERROR_CODES, type ErrorCode } from '../errors.js'
import type { RevocationStore } from '../revocation/store.js'
import { HotCounter, HotHistogram } from './hot-metrics.js'
import type { ClusterMetrics } from './cluster-metrics.js'
import { coalesce, RENDER_MIN_INTERVAL_MS, type Coalesced } from './coalesce.js'

/** The label value for "no issuer" (the token matched none) and "no caller" (authentication off or failed). */
export const NONE = 'none'

/**
 * A verified-token cache hit takes a few microseconds to a few tens, a new token tens to hundreds, a JWKS wait
 * up to seconds: buckets from 5 µs resolve a hit (with the lowest at 100 µs every hit fell in it, and
 * histogram_quantile() answered ~50 µs whatever hits really took). A request adds tens of microseconds.
 */
export const VERIFICATION_BUCKETS = [0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]
export const HTTP_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
export const JWKS_FETCH_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** The states of an issuer's keys, each exported as a 0/1 series so that alerts need no regex. */
const KEY_STATES = ['fresh', 'stale', 'expired', 'missing', 'discovering'] as const

/** The coarse outcome of a verification, for the latency histogram (the counter has the exact code). */
export type VerificationOutcome = 'ok' | 'rejected' | 'unavailable' | 'error'

function outcomeOf (result: ErrorCode | 'ok'): VerificationOutcome {
  if (result === 'ok') return 'ok'
  const family = ERROR_CODES[result].family
  if (family === 'unavailable') return 'unavailable'
  if (family === 'internal') return 'error'
  return 'rejected'
}

export interface ServiceMetricsOptions {
  /** The issuers' key status at scrape time (a getter, so that a reloaded Verifier is seen). */
  status: () => IssuerStatus[]
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number
  /** The revocation store, read at scrape time; absent when revocation is disabled. */
  revocations?: RevocationStore
  /**
   * The validity of the certificate each TLS listener serves now (milliseconds since the epoch), read at scrape
   * time; absent when no listener speaks TLS (that is fixed at start), and so are the certificate gauges.
   */
  tlsCertificates?: () => Array<{ listener: 'main' | 'ops', notBefore: number, notAfter: number }>
  /**
   * Whether a caller id is in the configuration in force (a reload may remove one). Read only when a caller's series
   * would be made: a request of a removed caller that was in flight at the reload is then not counted under its id,
   * which would otherwise stay in /metrics until the next reload. Absent: every caller id is.
   */
  callerConfigured?: (id: string) => boolean
  /** The least time between two renders of this process's registry (default RENDER_MIN_INTERVAL_MS; tests). */
  renderMinIntervalMs?: number
}

export class ServiceMetrics {
  readonly registry = new Registry()
  /** Pass these to the Verifier (VerifierOptions.events): they feed the verification and JWKS series. */
  readonly verifierEvents: Required<VerifierEvents>

  // Updated on every request: HotCounter/HotHistogram (src/metrics/hot-metrics.ts), keyed by label values.
  readonly #httpRequests: HotCounter<'route' | 'method' | 'status' | 'caller'>
  readonly #httpDuration: HotHistogram<'route'>
  readonly #rateLimited: Counter<'route' | 'caller'>
  readonly #shed: Counter<'reason'>
  readonly #callerRejected: Counter<'code'>
  readonly #revocationsRecorded: Counter<'source' | 'kind'>
  /** Drops the counted series of issuers not in `keep` (and not "none"), in every metric with an issuer label. */
  readonly #forgetIssuers: (keep: ReadonlySet<string>) => Promise<void>
  readonly #callerConfigured: (id: string) => boolean
  /** A cluster worker's: /metrics answers for every worker of the host (src/metrics/cluster-metrics.ts). */
  #cluster: ClusterMetrics | undefined
  /** registry.metrics(), at most one in progress (it awaits every metric's collect, so scrapes would interleave). */
  readonly #render: Coalesced<string>

  constructor (options: ServiceMetricsOptions) {
    this.#render = coalesce(async () => await this.registry.metrics(), { minIntervalMs: options.renderMinIntervalMs ?? RENDER_MIN_INTERVAL_MS })
    const registers = [this.registry]
    const now = options.now ?? Date.now
    collectDefaultMetrics({ register: this.registry })

    const verifications = new HotCounter('oidc_verifier_verifications_total',
      'Verifications by configured issuer id ("none": the token matched no issuer) and result (ok or an error code).', ['issuer', 'result'], this.registry)
    const verificationDuration = new HotHistogram('oidc_verifier_verification_duration_seconds',
      'Time to verify a token, by issuer and outcome (ok, rejected, unavailable, error).', ['issuer', 'outcome'], VERIFICATION_BUCKETS, this.registry)
    const jwksFetches = new Counter({
      name: 'oidc_verifier_jwks_fetches_total',
      help: 'JWKS fetches by issuer, outcome (success, error) and reason (warm, background, expired, unknown_kid).',
      labelNames: ['issuer', 'outcome', 'reason'] as const,
      registers
    })
    const jwksDuration = new Histogram({
      name: 'oidc_verifier_jwks_fetch_duration_seconds',
      help: 'Duration of JWKS fetches by issuer and outcome.',
      labelNames: ['issuer', 'outcome'] as const,
      buckets: JWKS_FETCH_BUCKETS,
      registers
    })
    const stale = new Counter({
      name: 'oidc_verifier_stale_keys_served_total',
      help: 'Verifications that used a key set past its freshness: the identity provider could not be reached, or a refresh was still pending.',
      labelNames: ['issuer'] as const,
      registers
    })
    // The verified-token cache: a hit skipped the signature check.
    const cacheHits = new HotCounter('oidc_verifier_token_cache_hits_total',
      'Verifications answered from the verified-token cache with an identity (a refused hit counts as neither), by issuer.', ['issuer'], this.registry)
    const cacheMisses = new HotCounter('oidc_verifier_token_cache_misses_total',
      'Verifications that were not in the verified-token cache and were verified fully (cached from a token\'s second verification on), by issuer.', ['issuer'], this.registry)

    this.#forgetIssuers = async (keep) => {
      const kept = (issuer: string): boolean => issuer === NONE || keep.has(issuer)
      for (const hot of [verifications, verificationDuration, cacheHits, cacheMisses]) hot.forget('issuer', kept)
      for (const metric of [jwksFetches, jwksDuration, stale] as Array<Counter<string> | Histogram<string>>) {
        // A histogram's values repeat its labels per bucket (with le): the _count line has them once.
        for (const { labels, metricName } of (await metric.get()).values as Array<{ labels: Record<string, string | number>, metricName?: string }>) {
          if (metricName !== undefined && !metricName.endsWith('_count')) continue
          if (!kept(String(labels.issuer))) metric.remove(labels as Record<string, string>)
        }
      }
    }

    this.verifierEvents = {
      verification: (e) => {
        const issuer = e.issuer ?? NONE
        verifications.inc(issuer, e.result)
        verificationDuration.observe(e.durationSeconds, issuer, outcomeOf(e.result))
      },
      jwksFetch: (e) => {
        jwksFetches.inc({ issuer: e.issuer, outcome: e.outcome, reason: e.reason })
        jwksDuration.observe({ issuer: e.issuer, outcome: e.outcome }, e.durationSeconds)
      },
      staleKeysServed: (e) => { stale.inc({ issuer: e.issuer }) },
      tokenCache: (e) => {
        ;(e.hit ? cacheHits : cacheMisses).inc(e.issuer)
      }
    }

    // Key state is read when Prometheus scrapes, from the same status /readyz shows.
    const fetchedAt = (s: IssuerStatus): number | undefined => s.fetchedAt === null ? undefined : Date.parse(s.fetchedAt)
    // `aggregator`: how the workers of one host (WORKERS=N) are merged into one answer (src/metrics/cluster-metrics.ts).
    // Counters and histograms sum; each gauge says its own, with the reason.
    const scrapeGauge = (name: string, help: string, aggregator: Aggregator, fill: (gauge: Gauge<'issuer'>, s: IssuerStatus) => void): void => {
      new Gauge({
        name,
        help,
        labelNames: ['issuer'] as const,
        registers,
        aggregator,
        collect () {
          this.reset() // an issuer removed by a reload disappears
          for (const s of options.status()) fill(this, s)
        }
      })
    }
    // min: the host is ready for the issuer only when every worker is (a worker without keys fails what it takes), as /readyz.
    scrapeGauge('oidc_verifier_issuer_ready', 'Whether the issuer has usable keys (1) or not (0), as in /readyz.', 'min',
      (g, s) => { g.set({ issuer: s.id }, s.ready ? 1 : 0) })
    // Expired keys (the provider unreachable past staleIfErrorSeconds) are kept in /readyz's keyCount but verify nothing.
    // min: the worst worker's (each worker fetches its own keys; summed, two workers would show twice the keys).
    scrapeGauge('oidc_verifier_keys', 'Usable signature keys of the issuer (0 once its last key set has expired).', 'min',
      (g, s) => { g.set({ issuer: s.id }, s.state === 'fresh' || s.state === 'stale' ? s.keyCount : 0) })
    // max: the oldest key set of any worker, the one a staleness alert is about.
    scrapeGauge('oidc_verifier_keys_age_seconds', 'Seconds since the issuer\'s keys were last fetched successfully (absent for inline keys).', 'max',
      (g, s) => {
        const at = fetchedAt(s)
        if (at !== undefined) g.set({ issuer: s.id }, Math.max(0, (now() - at) / 1000))
      })
    // min: the earliest, the worker whose keys are oldest (as keys_age_seconds' max): `time() - this` alerts on the worst worker.
    scrapeGauge('oidc_verifier_keys_last_refresh_timestamp_seconds', 'Time of the last successful JWKS fetch of the issuer, in seconds since the epoch (absent for inline keys).', 'min',
      (g, s) => {
        const at = fetchedAt(s)
        if (at !== undefined) g.set({ issuer: s.id }, at / 1000)
      })
    new Gauge({
      name: 'oidc_verifier_keys_state',
      help: 'The state of the issuer\'s keys: 1 for the current state (fresh, stale, expired, missing, discovering), 0 for the others.',
      labelNames: ['issuer', 'state'] as const,
      registers,
      // max: 1 when any worker is in that state (an alert on expired or missing fires when one worker is); values stay 0/1.
      aggregator: 'max',
      collect () {
        this.reset()
        for (const s of options.status()) {
          for (const state of KEY_STATES) this.set({ issuer: s.id, state }, s.state === state ? 1 : 0)
        }
      }
    })

    this.#httpRequests = new HotCounter('oidc_verifier_http_requests_total',
      'HTTP requests by route pattern ("none": no route matched), method, status and caller id ("none": no caller key).', ['route', 'method', 'status', 'caller'], this.registry)
    const callerConfigured = options.callerConfigured ?? (() => true)
    this.#callerConfigured = (caller) => caller === NONE || callerConfigured(caller)
    this.#httpRequests.admitOnly((labels) => this.#callerConfigured(labels.caller))
    this.#httpDuration = new HotHistogram('oidc_verifier_http_request_duration_seconds',
      'Time from request to response, by route pattern.', ['route'], HTTP_BUCKETS, this.registry)
    this.#rateLimited = new Counter({
      name: 'oidc_verifier_rate_limited_total',
      help: 'Requests refused with 429 rate_limited, by route pattern and caller id.',
      labelNames: ['route', 'caller'] as const,
      registers
    })
    this.#shed = new Counter({
      name: 'oidc_verifier_shed_requests_total',
      help: 'Requests refused with 503 overloaded by load shedding, by the threshold passed (eventLoopDelay, eventLoopUtilization, heapUsedBytes, rssBytes, healthCheck).',
      labelNames: ['reason'] as const,
      registers
    })
    this.#revocationsRecorded = new Counter({
      name: 'oidc_verifier_revocations_recorded_total',
      help: 'Revocations recorded through this process, by source (backchannel-logout, api) and kind (sid, sub, jti, issuer).',
      labelNames: ['source', 'kind'] as const,
      registers
    })
    const store = options.revocations
    if (store !== undefined) {
      new Gauge({
        name: 'oidc_verifier_revocations',
        help: 'Revocations held by this process (within revocation.maxEntries), by issuer.',
        labelNames: ['issuer'] as const,
        registers,
        // max: every worker holds a copy of the same revocations (relayed, or from the shared Redis); summed, each would count N times.
        aggregator: 'max',
        collect () {
          this.reset()
          for (const [issuer, count] of store.list.countByIssuer()) this.set({ issuer }, count)
        }
      })
      new Gauge({
        name: 'oidc_verifier_revocation_store_current',
        help: 'Whether this process\'s copy of the revocations is known to be current (1); at 0 verifications fail with 503 revocations_unavailable.',
        labelNames: ['store'] as const,
        registers,
        // min: 0 when any worker's copy is not current (that worker answers 503 revocations_unavailable).
        aggregator: 'min',
        collect () {
          const status = store.status()
          this.set({ store: status.kind }, status.current ? 1 : 0)
        }
      })
    }
    const certificates = options.tlsCertificates
    if (certificates !== undefined) {
      const certificateGauge = (name: string, help: string, aggregator: Aggregator, value: (c: { notBefore: number, notAfter: number }) => number): void => {
        new Gauge({
          name,
          help,
          labelNames: ['listener'] as const,
          registers,
          aggregator,
          collect () {
            this.reset()
            for (const c of certificates()) this.set({ listener: c.listener }, value(c) / 1000)
          }
        })
      }
      // Every worker serves the same files, but each picks a renewal up at its own look: the worst worker's certificate.
      // min: the earliest end any worker serves, so that `… - time() < …` fires while one worker still serves the old one.
      certificateGauge('oidc_verifier_tls_certificate_expiry_timestamp_seconds',
        'End of validity (notAfter) of the certificate the listener (main, ops) serves, in seconds since the epoch.', 'min', (c) => c.notAfter)
      // max: the latest start any worker serves, so that `… > time()` fires while one worker serves a certificate not yet valid.
      certificateGauge('oidc_verifier_tls_certificate_not_before_timestamp_seconds',
        'Start of validity (notBefore) of the certificate the listener (main, ops) serves, in seconds since the epoch.', 'max', (c) => c.notBefore)
    }
    this.#callerRejected = new Counter({
      name: 'oidc_verifier_caller_rejections_total',
      help: 'Requests refused by caller authentication, by code (caller_key_missing, caller_key_invalid; rate_limited: too many failed checks from the address).',
      labelNames: ['code'] as const,
      registers
    })
  }

  /** One per response. `route` is the route pattern, never the requested URL. */
  requestCompleted (routeOrNone: string | undefined, anyMethod: string, status: number, callerOrNone: string | undefined, code: ErrorCode | undefined, durationSeconds: number): void {
    const route = routeOrNone ?? NONE
    const caller = callerOrNone ?? NONE
    // Methods outside this set would be caller-chosen label values.
    const method = KNOWN_METHODS.has(anyMethod) ? anyMethod : 'other'
    this.#httpRequests.inc(route, method, status, caller)
    this.#httpDuration.observe(durationSeconds, route)
    // Rare (a 429): the check runs on every one.
    if (code === 'rate_limited' && this.#callerConfigured(caller)) this.#rateLimited.inc({ route, caller })
  }

  /**
   * After a reload has retired the Verifier it replaced: the series of issuers and callers the configuration no
   * longer has are dropped, so that /metrics does not grow with every id ever configured.
   */
  async forgetRemoved (keep: { issuers: ReadonlySet<string>, callers: ReadonlySet<string> }): Promise<void> {
    await this.#forgetIssuers(keep.issuers)
    const kept = (caller: string): boolean => caller === NONE || keep.callers.has(caller)
    this.#httpRequests.forget('caller', kept)
    for (const { labels } of (await this.#rateLimited.get()).values) {
      if (!kept(String(labels.caller))) this.#rateLimited.remove(labels as Record<string, string>)
    }
  }

  shed (reason: string): void {
    this.#shed.inc({ reason })
  }

  callerRejected (code: 'caller_key_missing' | 'caller_key_invalid' | 'rate_limited'): void {
    this.#callerRejected.inc({ code })
  }

  revocationRecorded (source: string, kind: string): void {
    this.#revocationsRecorded.inc({ source, kind })
  }

  get contentType (): string {
    return this.registry.contentType
  }

  /**
   * In a cluster worker (WORKERS=N, src/start.ts): from now on, text() answers for every worker of the host
   * (src/metrics/cluster-metrics.ts, built on this.registry).
   */
  joinCluster (cluster: ClusterMetrics): void {
    this.#cluster = cluster
  }

  /**
   * The exposition /metrics answers: this registry's, or with WORKERS the host's. Renders are coalesced
   * (src/metrics/coalesce.ts): concurrent scrapes share one render that started after they came, and renders
   * start at least RENDER_MIN_INTERVAL_MS apart.
   */
  async text (): Promise<string> {
    if (this.#cluster !== undefined) return await this.#cluster.text()
    return await this.#render()
  }
}

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'])
