/**
 * Counters and histograms that are updated on every request, without prom-client's per-call work: its
 * inc()/observe() hash and validate the label object each time, which measured several microseconds per
 * request on the verify path (docs/benchmarks.md). Here each label set becomes a series object once, found
 * afterwards by a string key the caller builds from the same values; prom-client's Registry reads the
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

abstract class HotMetric<L extends string, S> {
  readonly aggregator = 'sum' as const
  protected series = new Map<string, { labels: Labels<L>, data: S }>()

  constructor (readonly name: string, readonly help: string, registry: Registry) {
    // The Registry only calls get() (and reset()) on what it holds; its TypeScript type lists its own classes.
    registry.registerMetric(this as unknown as Metric)
  }

  /** The series of a label set; `labels` is read only the first time a key is seen. */
  protected find (key: string, labels: () => Labels<L>): S {
    let entry = this.series.get(key)
    if (entry === undefined) {
      entry = { labels: labels(), data: this.empty() }
      this.series.set(key, entry)
    }
    return entry.data
  }

  protected abstract empty (): S

  reset (): void {
    this.series = new Map()
  }
}

export interface CounterSeries { value: number }

export class HotCounter<L extends string> extends HotMetric<L, CounterSeries> {
  readonly type = 'counter' as const

  /** Adds one to the series of `key` (created with `labels()` on first use). */
  inc (key: string, labels: () => Labels<L>): void {
    this.find(key, labels).value++
  }

  protected empty (): CounterSeries {
    return { value: 0 }
  }

  async get (): Promise<ExportedMetric> {
    const values: ExportedValue[] = []
    for (const { labels, data } of this.series.values()) values.push({ labels: { ...labels }, value: data.value })
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

  constructor (name: string, help: string, bounds: readonly number[], registry: Registry) {
    super(name, help, registry)
    this.#bounds = [...bounds].sort((a, b) => a - b)
  }

  observe (key: string, labels: () => Labels<L>, value: number): void {
    const s = this.find(key, labels)
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
    for (const { labels, data } of this.series.values()) {
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
