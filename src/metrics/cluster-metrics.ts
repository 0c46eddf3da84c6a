/**
 * /metrics for the workers of one host (WORKERS=N, src/cluster-primary.ts). Each worker has its own registry,
 * and a scrape lands on whichever worker takes the connection: alone, it would show that worker's share of the
 * traffic, and counters would jump between workers. So the worker that takes the scrape asks the primary, the
 * primary asks every live worker for its `registry.getMetricsAsJSON()` and passes the answers back, and the
 * worker merges them with prom-client's own AggregatorRegistry.aggregate(): each metric by the `aggregator`
 * set where it is defined (src/metrics/metrics.ts; counters and histograms sum).
 *
 * A worker that does not answer within CLUSTER_METRICS_TIMEOUT_MS (stopped, stuck, still starting) is left
 * out, and the answer says so: oidc_verifier_metrics_workers{state="answered"|"missing"}. A worker that exits
 * leaves its counters and histograms behind: the primary keeps each worker's last answer, and when it exits adds
 * its counters and histograms (not its gauges) to the host's retired series, which every result carries and the
 * scrape adds in. Without them the host's counters would go down when a worker dies, which Prometheus takes
 * for a counter reset: rate() and increase() would jump by the whole total of the workers that remain. Retired
 * series are added only where their issuer and caller (when they have those labels) are still in some worker's
 * answer: the series of an issuer or caller a reload removed do not come back. A scrape costs every
 * worker an answer, so collections are coalesced (as src/metrics/coalesce.ts): at most one in progress, and the
 * asks that arrive meanwhile share the next, which starts when it ends. Never the one in progress: a worker may
 * have answered it before the scrape came, and the scrape must count everything counted before it. However many
 * scrapes, each worker answers at most one collection at a time, and one more waits. Without WORKERS, none of
 * this runs.
 */
import cluster, { type Worker } from 'node:cluster'
import { AggregatorRegistry, Gauge, type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client'
import { liveWorkers, type PrimaryChannel } from '../cluster-primary.js'
import { coalesce, RENDER_MIN_INTERVAL_MS } from './coalesce.js'

/** worker → primary: this worker answers COLLECT (it has started, with metrics on). */
const READY = 'oidc-verifier:metrics-ready'
/** worker → primary: a scrape; `ask` is the worker's number for it. */
const ASK = 'oidc-verifier:metrics-ask'
/** primary → worker: send your metrics; `round` is echoed. */
const COLLECT = 'oidc-verifier:metrics-collect'
/** worker → primary: the metrics of a round (`metrics`: getMetricsAsJSON(); absent when it failed). */
const ANSWER = 'oidc-verifier:metrics-answer'
/** primary → worker: the answers of every worker, for the asks listed. */
const RESULT = 'oidc-verifier:metrics-result'

/** How long the primary waits for the workers' answers; one that is later is left out (and counted missing). */
export const CLUSTER_METRICS_TIMEOUT_MS = 1_500
/**
 * How much longer the worker that took the scrape waits for the primary, before answering with its own metrics
 * alone. An ask that reaches the primary during a collection waits for that one too: when a worker is stuck (both
 * collections then last the timeout), such an ask ends here first, with this worker's metrics and the others
 * counted missing. Prometheus' scrape timeout (10 s by default) stays well above what a scrape can wait.
 */
const ASKER_MARGIN_MS = 1_000

type Metrics = Array<MetricObjectWithValues<MetricValue<string>>>
/**
 * The primary's result: every answering worker's metrics, how many workers it left out, and the counters and
 * histograms of the workers that have exited (a few answers' worth, each already added up; [] before any has).
 */
interface HostMetrics { metrics: unknown[], missing: number, retired: unknown[] }

function typed (message: unknown): { type?: unknown } & Record<string, unknown> | undefined {
  return typeof message === 'object' && message !== null ? message as Record<string, unknown> : undefined
}

/**
 * The primary's RESULT as host metrics, or undefined when it is not one (metrics not a list of lists, missing not a
 * count): that is no answer, as when the primary is silent. A NaN or negative count exported would hide the
 * workers left out (an alert on missing > 0 is false on NaN), and would stay in the last count known.
 */
function hostMetrics (m: Record<string, unknown>): HostMetrics | undefined {
  const { metrics, missing, retired } = m
  return Array.isArray(metrics) && metrics.every((answer) => Array.isArray(answer)) && Number.isSafeInteger(missing) && (missing as number) >= 0 &&
    (retired === undefined || (Array.isArray(retired) && retired.every((part) => Array.isArray(part))))
    ? { metrics, missing: missing as number, retired: retired ?? [] }
    : undefined
}

/** Parts of the retired series kept before they are added up into one. */
const RETIRED_PARTS = 4

/** Metric types whose values only grow: a worker that exits must not take what it counted away. */
const ACCUMULATING = new Set(['counter', 'histogram'])

/** The counters and histograms of a worker's answer (an answer not in getMetricsAsJSON()'s shape has none). */
function accumulating (answer: unknown): Metrics {
  if (!Array.isArray(answer)) return []
  return answer.filter((metric): metric is Metrics[number] => typeof metric === 'object' && metric !== null && ACCUMULATING.has((metric as { type?: unknown }).type as string))
}

/** Labels that name something a reload can remove: a retired series of one no worker has any more is left out. */
const REMOVABLE_LABELS = ['issuer', 'caller'] as const

/** The retired parts without the series whose issuer or caller no answer has (see the module comment). */
function stillKnown (retired: Metrics[], answers: Metrics[]): Metrics[] {
  const known = new Set<string>()
  for (const answer of answers) {
    for (const metric of answer) {
      for (const value of metric.values) {
        for (const label of REMOVABLE_LABELS) {
          const v = value.labels[label]
          if (v !== undefined) known.add(`${label}\0${String(v)}`)
        }
      }
    }
  }
  const kept = (value: Metrics[number]['values'][number]): boolean =>
    REMOVABLE_LABELS.every((label) => value.labels[label] === undefined || known.has(`${label}\0${String(value.labels[label])}`))
  return retired.map((part) => part.map((metric) => ({ ...metric, values: metric.values.filter(kept) })))
}

/**
 * Sends to a worker; one that has just died is no error (it is counted missing). Nor is a message that cannot be
 * sent at all (serialized, longer than a string may be): the primary must not fall over a scrape; the worker that
 * asked answers with its own series when no result comes.
 */
function sendTo (worker: Worker, message: object): void {
  try {
    if (worker.isConnected()) worker.send(message, undefined, {}, () => {})
  } catch {
    // Left out: the asking worker's wait ends it.
  }
}

type Ask = { worker: Worker, ask: unknown }

/**
 * The primary's side: answers a worker's ASK with every live worker's metrics. One collection at a time; the asks
 * that arrive during one wait for the next (`waiting`), which starts as it ends.
 */
export function serveClusterMetrics (timeoutMs = CLUSTER_METRICS_TIMEOUT_MS): void {
  const ready = new Set<number>()
  let rounds = 0
  // answers: by worker id; one that exits before the round ends is taken out (its counters are retired).
  let round: { id: number, pending: Set<number>, answers: Map<number, unknown>, missing: number, asks: Ask[], timer: NodeJS.Timeout } | undefined
  let waiting: Ask[] = []
  // Each live worker's last answer, and the counters and histograms of those that have exited: one part per
  // worker, put in at once (a result sent in the same turn must have it), added up into one now and then.
  const lastAnswers = new Map<number, unknown>()
  let retired: Metrics[] = []
  let compacting = false
  const compact = async (): Promise<void> => {
    if (compacting || retired.length <= RETIRED_PARTS) return
    compacting = true
    const parts = retired.length
    try {
      const merged = await AggregatorRegistry.aggregate(retired.slice(0, parts)).getMetricsAsJSON()
      retired = [merged, ...retired.slice(parts)]
    } catch {
      // Series that cannot be added up (not in getMetricsAsJSON()'s shape): the parts stay as they are.
    } finally {
      compacting = false
    }
  }
  const retire = (answer: unknown): void => {
    const counted = accumulating(answer)
    if (counted.length === 0) return
    retired.push(counted)
    void compact()
  }

  const finish = (): void => {
    const r = round
    if (r === undefined) return
    round = undefined
    clearTimeout(r.timer)
    const missing = r.missing + r.pending.size
    const metrics = [...r.answers.values()]
    for (const { worker, ask } of r.asks) sendTo(worker, { type: RESULT, ask, metrics, missing, retired })
    if (waiting.length > 0) start()
  }
  const settled = (): void => { if (round !== undefined && round.pending.size === 0) finish() }
  /** A collection for the asks waiting, every one of which came before it starts. */
  const start = (): void => {
    const id = ++rounds
    const workers = liveWorkers()
    // A worker still starting cannot answer yet: it is counted missing at once rather than waited for.
    const asked = workers.filter((w) => ready.has(w.id) && w.isConnected())
    round = { id, pending: new Set(asked.map((w) => w.id)), answers: new Map(), missing: workers.length - asked.length, asks: waiting, timer: setTimeout(finish, timeoutMs) }
    waiting = []
    round.timer.unref()
    for (const w of asked) sendTo(w, { type: COLLECT, round: id })
    settled()
  }

  cluster.on('message', (worker, message: unknown) => {
    const m = typed(message)
    if (m?.type === READY) {
      ready.add(worker.id)
    } else if (m?.type === ASK) {
      waiting.push({ worker, ask: m.ask })
      if (round === undefined) start()
    } else if (m?.type === ANSWER && round !== undefined && m.round === round.id && round.pending.delete(worker.id)) {
      if (Array.isArray(m.metrics)) {
        round.answers.set(worker.id, m.metrics)
        lastAnswers.set(worker.id, m.metrics)
      } else {
        round.missing++
      }
      settled()
    }
  })
  cluster.on('exit', (worker) => {
    ready.delete(worker.id)
    const last = lastAnswers.get(worker.id)
    lastAnswers.delete(worker.id)
    if (last !== undefined) retire(last)
    // Its answer to the round under way is now in the retired series: counted once.
    round?.answers.delete(worker.id)
    // Its asks waiting for the next collection have nobody to answer to.
    waiting = waiting.filter((a) => a.worker !== worker)
    if (round?.pending.delete(worker.id) === true) {
      round.missing++
      settled()
    }
  })
}

/** A worker's side: answers the primary's COLLECT with `registry`'s metrics, and asks for the host's on a scrape. */
export class ClusterMetrics {
  readonly #registry: Registry
  readonly #port: PrimaryChannel
  readonly #listener: (message: unknown) => void
  /** The ask waiting for the primary's result (one at a time: scrapes share it); a result for another is late. */
  #pending: { ask: number, resolve: (result: HostMetrics | undefined) => void } | undefined
  #asked = 0
  /** Workers of the host in the primary's last answer (answered and missing); undefined before one. */
  #lastTotal: number | undefined
  /** #ask(), coalesced: one ask at a time, the scrapes that arrive during one share the next, asks 50 ms apart. */
  readonly #coalesced = coalesce(async () => await this.#ask(), { minIntervalMs: RENDER_MIN_INTERVAL_MS })

  constructor (registry: Registry, port: PrimaryChannel = process) {
    this.#registry = registry
    this.#port = port
    this.#listener = (message) => {
      const m = typed(message)
      if (m?.type === COLLECT) {
        this.#registry.getMetricsAsJSON().then(
          (metrics) => { port.send?.({ type: ANSWER, round: m.round, metrics }, () => {}) },
          () => { port.send?.({ type: ANSWER, round: m.round }, () => {}) })
      } else if (m?.type === RESULT && m.ask === this.#pending?.ask) {
        this.#settle(hostMetrics(m))
      }
    }
    port.on('message', this.#listener)
    port.send?.({ type: READY }, () => {})
  }

  /**
   * The host's metrics, aggregated, in the Prometheus text format (as the registry's own). Scrapes share asks
   * (src/metrics/coalesce.ts): one ask in progress, one result from the primary (the series of every worker, which
   * it would otherwise copy once per scrape) and one aggregation, however many scrapes there are; a scrape that
   * comes while an ask is in progress waits for the next, which sees what it counted.
   */
  async text (): Promise<string> {
    return await this.#coalesced()
  }

  async #ask (): Promise<string> {
    const ask = ++this.#asked
    let timer: NodeJS.Timeout | undefined
    const result = await new Promise<HostMetrics | undefined>((resolve) => {
      this.#pending = { ask, resolve }
      timer = setTimeout(() => { this.#settle(undefined) }, CLUSTER_METRICS_TIMEOUT_MS + ASKER_MARGIN_MS)
      this.#port.send?.({ type: ASK, ask }, (err) => { if (err !== null) this.#settle(undefined) })
    })
    clearTimeout(timer)
    if (result !== undefined) {
      try {
        const text = await this.#text(result.metrics as Metrics[], result.missing, result.retired as Metrics[])
        this.#lastTotal = result.metrics.length + result.missing
        return text
      } catch {
        // Series that cannot be added up or written out (not in getMetricsAsJSON()'s shape): no answer either.
      }
    }
    // No word from the primary: this worker's own metrics, and the others counted missing by the last count known,
    // at least one (WORKERS > 1): a number, so that an alert on `missing > 0` fires (any comparison with NaN is false).
    return await this.#text([await this.#registry.getMetricsAsJSON()], Math.max(1, (this.#lastTotal ?? 0) - 1))
  }

  /**
   * The text of `answers` added up, with the retired series of the workers that have exited and
   * oidc_verifier_metrics_workers; throws on series that cannot be.
   */
  async #text (answers: Metrics[], missing: number, retired: Metrics[] = []): Promise<string> {
    const aggregated = AggregatorRegistry.aggregate(retired.length === 0 ? answers : [...answers, ...stillKnown(retired, answers)])
    const workers = new Gauge({
      name: 'oidc_verifier_metrics_workers',
      help: `Workers of the host (WORKERS) whose metrics this answer adds up (answered), and those left out (missing: no answer within ${CLUSTER_METRICS_TIMEOUT_MS / 1000} s, or still starting; when the primary did not answer, the others by the last count known).`,
      labelNames: ['state'] as const,
      registers: [aggregated]
    })
    workers.set({ state: 'answered' }, answers.length)
    workers.set({ state: 'missing' }, missing)
    return await aggregated.metrics()
  }

  /** Ends the pending ask with the primary's result, or without one (undefined). */
  #settle (result: HostMetrics | undefined): void {
    const pending = this.#pending
    this.#pending = undefined
    pending?.resolve(result)
  }

  close (): void {
    this.#port.off('message', this.#listener)
    this.#settle(undefined)
  }
}
