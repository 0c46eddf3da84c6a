/**
 * Counters and histograms that are updated on every request, without prom-client's per-call work: its
 * inc()/observe() hash and validate the label object each time, which measured several microseconds per
 * request on the verify path (docs/benchmarks.md). Here each label set becomes a series object once, found
 * afterwards by the label values themselves, one Map level per label; prom-client's Registry reads the
 * series when Prometheus scrapes, through the same get() contract its own metrics implement, so the text
 * exposition (escaping, HELP/TYPE lines, OpenMetrics) is still prom-client's.
 *
 * Label values must come from configuration or fixed sets (never from a request), as everywhere in
 * src/metrics/: the number of series is bounded by that, not by traffic.
 */
import type { Metric, Registry } from 'prom-client'

type Labels<L extends string> = Readonly<Record<L, string>>

interface ExportedValue {
  labels: Record<string, string | number>
  value: number
  metricName?: string
}

interface ExportedMetric {
  name: string
  help: string
  type: 'counter' | 'histogram'
  aggregator: 'sum'
  values: ExportedValue[]
}

/** A label value as the caller has it: a string, or a number written as its decimal text (a status code). */
export type LabelValue = string | number

interface Series<L extends string, S> {
  labels: Labels<L>
  /** The label values as the caller gave them (status codes as numbers): the keys of the lookup tree. */
  values: readonly LabelValue[]
  data: S
}

/** One level of the lookup tree: label value → the next level, or the series at the last label. */
type Level = Map<LabelValue, unknown>

abstract class HotMetric<L extends string, S> {
  readonly aggregator = 'sum' as const
  protected series: Array<Series<L, S>> = []
  /**
   * Series by label values, one Map level per label in `labelNames` order. Looking up values the caller
   * already holds (strings from configuration, whose hash V8 keeps, and small integers) costs no string
   * building and no hashing of a new key: about 60 ns for four labels in a tight loop, against ~350 ns for a
   * key joined from the same four values.
   */
  #tree: Level = new Map()
  /** Whether a new series may be made for these labels (admitOnly); read only when one would be, never when counting. */
  #admit: ((labels: Labels<L>) => boolean) | undefined

  constructor (readonly name: string, readonly help: string, readonly labelNames: readonly L[], registry: Registry) {
    // The Registry only calls get() (and reset()) on what it holds; its TypeScript type lists its own classes.
    registry.registerMetric(this as unknown as Metric)
  }

  /**
   * The series of these label values, one per label of `labelNames` and in that order (the compiler cannot
   * count them: a metric with N labels is always called with N values). Created on first use.
   */
  protected find (v1: LabelValue, v2?: LabelValue, v3?: LabelValue, v4?: LabelValue): S {
    let level = this.#tree
    let last = v1
    if (v2 !== undefined) {
      level = branch(level, last)
      last = v2
      if (v3 !== undefined) {
        level = branch(level, last)
        last = v3
        if (v4 !== undefined) {
          level = branch(level, last)
          last = v4
        }
      }
    }
    let entry = level.get(last) as Series<L, S> | undefined
    if (entry === undefined) {
      const values = [v1, v2, v3, v4].filter((v) => v !== undefined)
      const labels = this.#labelsOf(values)
      // Refused: counted in a series of its own that is never kept nor exported.
      if (this.#admit !== undefined && !this.#admit(labels)) return this.empty()
      entry = { labels, values, data: this.empty() }
      level.set(last, entry)
      this.series.push(entry)
    }
    return entry.data
  }

  /**
   * New series only for labels `admit` accepts: a label value that has left the configuration (a caller a reload
   * removed, whose request was in flight then) would otherwise make a series again after forget() dropped it.
   */
  admitOnly (admit: (labels: Labels<L>) => boolean): void {
    this.#admit = admit
  }

  /** Drops the series whose `label` has a value `keep` refuses (an issuer a reload removed); rare, so it rebuilds. */
  forget (label: L, keep: (value: string) => boolean): void {
    const kept = this.series.filter((s) => keep(s.labels[label]))
    if (kept.length === this.series.length) return
    this.reset()
    for (const s of kept) {
      let level = this.#tree
      s.values.slice(0, -1).forEach((value) => { level = branch(level, value) })
      level.set(s.values[s.values.length - 1] as LabelValue, s)
      this.series.push(s)
    }
  }

  #labelsOf (given: readonly LabelValue[]): Labels<L> {
    if (given.length !== this.labelNames.length) throw new Error(`${this.name}: ${this.labelNames.length} label values expected, got ${given.length}`)
    return Object.fromEntries(this.labelNames.map((name, i) => [name, String(given[i])])) as Labels<L>
  }

  protected abstract empty (): S

  reset (): void {
    this.series = []
    this.#tree = new Map()
  }
}

function branch (level: Level, value: LabelValue): Level {
  let next = level.get(value) as Level | undefined
  if (next === undefined) {
    next = new Map()
    level.set(value, next)
  }
  return next
}

export interface CounterSeries { value: number }

export class HotCounter<L extends string> extends HotMetric<L, CounterSeries> {
  readonly type = 'counter' as const

  /** Adds one to the series of these label values (in `labelNames` order). */
  inc (v1: LabelValue, v2?: LabelValue, v3?: LabelValue, v4?: LabelValue): void {
    this.find(v1, v2, v3, v4).value++
  }

  protected empty (): CounterSeries {
    return { value: 0 }
  }

  async get (): Promise<ExportedMetric> {
    const values: ExportedValue[] = []
    for (const { labels, data } of this.series) values.push({ labels: { ...labels }, value: data.value })
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}

export interface HistogramSeries {
  /** Per bucket, observations that fell into it (not cumulative); the last slot is above every bound. */
  counts: Float64Array
  sum: number
  count: number
}

export class HotHistogram<L extends string> extends HotMetric<L, HistogramSeries> {
  readonly type = 'histogram' as const
  readonly #bounds: readonly number[]

  constructor (name: string, help: string, labelNames: readonly L[], bounds: readonly number[], registry: Registry) {
    super(name, help, labelNames, registry)
    this.#bounds = [...bounds].sort((a, b) => a - b)
  }

  /** Counts `value` in the series of these label values (in `labelNames` order). */
  observe (value: number, v1: LabelValue, v2?: LabelValue, v3?: LabelValue, v4?: LabelValue): void {
    const s = this.find(v1, v2, v3, v4)
    const bounds = this.#bounds
    let i = 0
    while (i < bounds.length && value > (bounds[i] as number)) i++
    s.counts[i] = (s.counts[i] as number) + 1
    s.sum += value
    s.count++
  }

  protected empty (): HistogramSeries {
    return { counts: new Float64Array(this.#bounds.length + 1), sum: 0, count: 0 }
  }

  async get (): Promise<ExportedMetric> {
    const values: ExportedValue[] = []
    const bucket = `${this.name}_bucket`
    for (const { labels, data } of this.series) {
      // `le` first, as prom-client writes it.
      let cumulative = 0
      this.#bounds.forEach((le, i) => {
        cumulative += data.counts[i] as number
        values.push({ labels: { le, ...labels }, value: cumulative, metricName: bucket })
      })
      values.push({ labels: { le: '+Inf', ...labels }, value: data.count, metricName: bucket })
      values.push({ labels: { ...labels }, value: data.sum, metricName: `${this.name}_sum` })
      values.push({ labels: { ...labels }, value: data.count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}
