// Renders a run (run.mjs's results.json) as markdown: the side-by-side table with ratios against the
// baseline, the crypto limit, the issue's goals with their verdicts, the memory and flood scenarios.
//   node lib/report.mjs bench/.work/<stamp>/results.json
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'

const THEM = 'oidc-verifier'
const median = (xs) => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b)
  if (v.length === 0) return NaN
  const m = v.length >> 1
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2
}
const fx = (digits) => (x) => (Number.isFinite(x) ? x.toFixed(digits) : '–')
const f0 = fx(0)
const f1 = fx(1)
const f2 = fx(2)

/** One row per alg × scenario × target: medians over rounds of the figures and of the per-round ratios. */
export function summarize ({ meta, blocks }) {
  const rows = []
  const baseline = meta.config.baseline
  for (const alg of meta.config.algs) {
    for (const scenario of ['repeated', 'distinct']) {
      for (const target of meta.config.targets) {
        const bs = blocks.filter((b) => b.alg === alg && b.target === target)
        if (bs.length === 0) continue
        if (bs.every((b) => b.unsupported !== undefined)) { rows.push({ alg, scenario, target, unsupported: true }); continue }
        if (bs.every((b) => b.failed !== undefined)) { rows.push({ alg, scenario, target, failed: true }); continue }
        const runs = bs.filter((b) => b.scenarios[scenario] !== undefined).map((b) => ({ round: b.round, block: b, ...b.scenarios[scenario] }))
        const base = (r) => blocks.find((b) => b.alg === alg && b.target === baseline && b.round === r.round)?.scenarios[scenario]
        const ratio = (f) => median(runs.map((r) => (base(r) ? f(r) / f(base(r)) : NaN)))
        rows.push({
          alg, scenario, target,
          // A script marked "# bench: no-verify" (fastify-noop, fastify-verify-floor): a reference, not a peer.
          reference: bs.some((b) => b.baseline === true),
          rounds: runs.length,
          rps: median(runs.map((r) => r.rps)),
          rpsRatio: ratio((r) => r.rps),
          p50: median(runs.map((r) => r.latencyMs.p50)),
          p99: median(runs.map((r) => r.latencyMs.p99)),
          p99Ratio: ratio((r) => r.latencyMs.p99),
          us: median(runs.map((r) => r.serverUsPerReq)),
          cost: ratio((r) => r.serverUsPerReq),
          jwksScenario: Math.max(...runs.map((r) => r.jwksFetches)),
          jwksBlock: Math.max(...runs.map((r) => r.block.jwksFetchesBlock ?? NaN)),
          rss: Math.max(...runs.map((r) => r.rssAfterMB)),
          gen: Math.max(...runs.map((r) => r.generatorCores)),
          bg: Math.max(...runs.map((r) => r.backgroundCores)),
          n: median(runs.map((r) => r.responses))
        })
      }
    }
  }
  return rows
}

const FLOOR = 'fastify-verify-floor'

/**
 * When the run has the floor target: per algorithm, what HTTP plus one check costs against the goal's
 * formula (baseline + one raw verification measured without HTTP), and where oidc-verifier stands against it.
 */
export function floorComparison (results) {
  const rows = summarize(results)
  const out = []
  for (const alg of results.meta.config.algs) {
    const at = (target) => rows.find((r) => r.alg === alg && r.scenario === 'distinct' && r.target === target)
    const floor = at(FLOOR)
    const ours = at(THEM)
    const base = at(results.meta.config.baseline)
    const verifyUs = results.cryptoLimit?.results?.[alg]?.usPerVerify
    if (!Number.isFinite(floor?.us) || !Number.isFinite(ours?.us) || !Number.isFinite(base?.us) || !Number.isFinite(verifyUs)) continue
    out.push({ alg, floorUs: floor.us, floorOverFormula: floor.us / (base.us + verifyUs), ourUs: ours.us, ourOverFloor: ours.us / floor.us })
  }
  return out
}

/** The issue's figures, per algorithm: [{ goal, alg, value, bound, met }] */
export function goals (results) {
  const rows = summarize(results)
  const find = (alg, scenario, target) => rows.find((r) => r.alg === alg && r.scenario === scenario && r.target === target && !r.unsupported && !r.failed)
  const out = []
  for (const alg of results.meta.config.algs) {
    const hit = find(alg, 'repeated', THEM)
    const cold = find(alg, 'distinct', THEM)
    const baseCold = find(alg, 'distinct', results.meta.config.baseline)
    const verifyUs = results.cryptoLimit?.results?.[alg]?.usPerVerify
    if (hit) {
      out.push({ alg, goal: 'cache hit: cost× ≤ 1.3', value: `${f2(hit.cost)}×`, met: hit.cost <= 1.3 })
      out.push({ alg, goal: 'cache hit: p99 ≤ 2 × baseline p99', value: `${f2(hit.p99)} ms = ${f2(hit.p99Ratio)}×`, met: hit.p99Ratio <= 2 })
    }
    if (cold && baseCold && Number.isFinite(verifyUs)) {
      const bound = 1.25 * (baseCold.us + verifyUs)
      out.push({
        alg,
        goal: 'distinct: µs/req ≤ 1.25 × (baseline + 1 verify)',
        value: `${f1(cold.us)} µs vs ≤ ${f1(bound)} (= 1.25 × (${f1(baseCold.us)} + ${f1(verifyUs)})): ${f2(cold.us / (baseCold.us + verifyUs))}×`,
        met: cold.us <= bound
      })
    }
    if (cold) {
      const peers = rows.filter((r) => r.alg === alg && r.scenario === 'distinct' && r.target !== THEM &&
        r.target !== results.meta.config.baseline && !r.reference && Number.isFinite(r.us))
      const best = peers.sort((a, b) => a.us - b.us)[0]
      if (best) {
        out.push({ alg, goal: 'distinct: ahead of the best peer', value: `${f1(cold.us)} vs ${best.target} ${f1(best.us)} µs/req (${f2(best.us / cold.us)}× ours)`, met: cold.us < best.us })
      }
    }
    const blocks = results.blocks.filter((b) => b.alg === alg && b.target === THEM && b.jwksFetchesBlock !== undefined)
    if (blocks.length > 0) {
      const counts = blocks.map((b) => b.jwksFetchesBlock)
      out.push({ alg, goal: 'one JWKS fetch per issuer for the whole block', value: counts.join(' / '), met: counts.every((c) => c === 1) })
    }
  }
  const m = results.memory
  const tc = results.meta.tokenCache
  if (m && tc && tc.enabled !== false) {
    // The cache's byte bound is its own estimate of what it holds; RSS also swings with V8's collections,
    // so the level RSS settled at over the last quarter of the run is compared, and the peak shown.
    const growth = m.rssSteadyMB - m.rssStartMB
    const allowed = tc.maxBytes / 1048576
    out.push({
      alg: m.alg,
      goal: `memory: RSS after ${m.responses / (m.sentEach ?? 1)} distinct tokens${(m.sentEach ?? 1) > 1 ? ` (each sent ${m.sentEach} times, so cached)` : ''} − RSS at start ≤ the cache's byte bound`,
      value: `${f1(m.rssStartMB)} → ${f1(m.rssSteadyMB)} MB (median of the last quarter): +${f1(growth)} MB, bound ${f0(allowed)} MiB; peak ${f1(m.rssPeakMB)} MB`,
      met: growth <= allowed
    })
  }
  const kid = results.meta.unknownKid
  for (const f of results.flood.filter((x) => x.target === THEM)) {
    if (!kid) continue
    const allowed = kid.refreshesPerMinute * Math.max(1, Math.ceil(f.seconds / 60 - 0.01))
    out.push({
      alg: f.alg,
      goal: `random-kid flood: ≤ ${kid.refreshesPerMinute} JWKS fetches a minute (configured budget)`,
      value: `${f.jwksFetches} in ${f1(f.seconds)} s (${f.requests} requests${f.unexpected > 0 ? `, ${f.unexpected} not 401` : ''})`,
      // Every forged token refused, too: a flood that got 200s (or 503s) proves nothing about the fetches.
      met: f.jwksFetches <= allowed && f.unexpected === 0
    })
  }
  return out
}

export function renderMarkdown (results) {
  const { meta } = results
  const c = meta.config
  const L = []
  L.push(`# oidc-verifier benchmark ${meta.stamp}`)
  L.push('')
  L.push(`${meta.project}; node ${meta.node}; ${meta.cpuModel}, nproc ${meta.nproc}, CPUs allowed ${meta.cpusAllowed.join(',')}; ` +
    (meta.pinning ? `target pinned to cpu${meta.pinning.target}, load generator + IdP to cpu${meta.pinning.generator}` : 'no CPU pinning') +
    `; ${c.rounds} round(s); ${c.durationS} s per scenario after ${c.warmupS} s warm-up; autocannon, ${c.connections} connections; ` +
    `distinct = up to ${c.tokens} tokens, each sent once (the scenario ends when they run out or after ${c.durationS} s); ` +
    `load average ${meta.loadavgStart.map(f2).join(' ')} → ${meta.loadavgEnd?.map(f2).join(' ') ?? '?'}.`)
  L.push('')
  L.push('req/s: responses ÷ the seconds they took; ×base: ÷ the baseline\'s req/s; latency in ms over every response; ' +
    'p99×: ÷ the baseline\'s p99; srv µs/req: CPU time (user+system) of the target\'s process tree ÷ responses; ' +
    `cost×: ÷ the baseline's srv µs/req (baseline: ${c.baseline}, same round, algorithm and scenario); ` +
    'JWKS: fetches during the scenario / during the whole block (start-up, smoke checks, warm-up, both scenarios); ' +
    'RSS: the target after the scenario; gen: load generator cores (≥ 0.9: that req/s may be generator-bound); ' +
    `bg: cores used by anything else on the machine meanwhile (noise; above MAX_BG=${c.maxBg ?? 0.3} the scenario was repeated and the quietest attempt kept).`)
  L.push('')
  L.push('| alg | scenario | target | req/s | ×base | p50 | p99 | p99× | srv µs/req | cost× | JWKS | RSS MB | gen | bg |')
  L.push('|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|')
  for (const r of summarize(results)) {
    if (r.unsupported || r.failed) {
      L.push(`| ${r.alg} | ${r.scenario} | ${r.target} | ${r.unsupported ? 'unsupported' : 'FAILED'} | | | | | | | | | | |`)
      continue
    }
    const name = r.target === THEM ? `**${r.target}**` : r.target
    L.push(`| ${r.alg} | ${r.scenario} | ${name} | ${f0(r.rps)} | ${f2(r.rpsRatio)} | ${f2(r.p50)} | ${f2(r.p99)} | ${f2(r.p99Ratio)} | ` +
      `${f1(r.us)} | ${f2(r.cost)} | ${r.jwksScenario}/${Number.isFinite(r.jwksBlock) ? r.jwksBlock : '–'} | ${f1(r.rss)} | ${f2(r.gen)} | ${f2(r.bg)} |`)
  }
  const cl = results.cryptoLimit
  if (cl) {
    L.push('')
    L.push('Raw crypto limit (node:crypto.verify on a pre-imported KeyObject, signature pre-decoded (ES256 as DER), one thread on the target\'s core):')
    L.push('')
    L.push('| alg | verify ops/s | µs per verify | token bytes |')
    L.push('|---|--:|--:|--:|')
    for (const [alg, r] of Object.entries(cl.results)) L.push(`| ${alg} | ${r.opsPerCpuS} | ${f1(r.usPerVerify)} | ${r.tokenBytes} |`)
  }
  const g = goals(results)
  if (g.length > 0) {
    L.push('')
    L.push('Goals of issue 6 measured in this run:')
    L.push('')
    L.push('| alg | goal | measured | met |')
    L.push('|---|---|---|---|')
    for (const x of g) L.push(`| ${x.alg} | ${x.goal} | ${x.value} | ${x.met ? 'yes' : '**no**'} |`)
  }
  const floors = floorComparison(results)
  if (floors.length > 0) {
    L.push('')
    L.push(`Against ${FLOOR} (the baseline plus one raw signature check per request over HTTP, nothing else), distinct tokens:`)
    L.push('')
    L.push('| alg | floor µs/req | floor ÷ (baseline + 1 verify) | oidc-verifier µs/req | oidc-verifier ÷ floor |')
    L.push('|---|--:|--:|--:|--:|')
    for (const x of floors) L.push(`| ${x.alg} | ${f1(x.floorUs)} | ${f2(x.floorOverFormula)}× | ${f1(x.ourUs)} | ${f2(x.ourOverFloor)}× |`)
  }
  const m = results.memory
  if (m) {
    const tc = meta.tokenCache
    const bound = tc ? `token cache ${tc.enabled === false ? 'disabled' : `bounded to ${tc.maxEntries} entries and ${f0(tc.maxBytes / 1048576)} MiB (estimated), entries living ≤ ${tc.maxTtlSeconds} s`}` : 'token cache bound unknown'
    L.push('')
    L.push(`Memory: ${m.responses / (m.sentEach ?? 1)} distinct ${m.alg} tokens (of ${m.tokens}), each sent ${(m.sentEach ?? 1) > 1 ? `${m.sentEach} times in a row (the second verification caches it)` : 'once'}, through oidc-verifier (${bound}): ` +
      `RSS ${f1(m.rssStartMB)} MB at start, highest ${f1(m.rssMaxFirstHalfMB)} MB in the first half of the run and ${f1(m.rssMaxSecondHalfMB)} MB in the second, ` +
      `${f1(m.rssSteadyMB)} MB over the last quarter (median), ${f1(m.rssAfterMB)} MB at the end, peak ${f1(m.rssPeakMB)} MB; ` +
      (Number.isFinite(m.heapUsedSteadyMB) ? `V8 heap used ${f1(m.heapUsedSteadyMB)} MB over the last quarter (median), at most ${f1(m.heapUsedMaxMB)} MB; ` : '') +
      `${f0(m.rps)} req/s, ${f1(m.serverUsPerReq)} µs/req, bg ${f2(m.backgroundCores)}; JWKS fetches ${m.jwksFetches}.`)
  }
  if (results.flood.length > 0) {
    L.push('')
    L.push('Random-kid flood (a new unknown kid on every request, as fast as the target answers):')
    L.push('')
    L.push('| target | seconds | requests | req/s | srv µs/req | statuses | JWKS fetches (start-up) | during the flood | per minute | bg |')
    L.push('|---|--:|--:|--:|--:|---|--:|--:|--:|--:|')
    for (const f of results.flood) {
      L.push(`| ${f.target} | ${f1(f.seconds)} | ${f.requests} | ${f0(f.rps)} | ${f1(f.serverUsPerReq)} | ${Object.entries(f.statusCodes).map(([k, v]) => `${k}: ${v}`).join(', ')} | ` +
        `${f.startupFetches} | ${f.jwksFetches} | ${f1(f.fetchesPerMinute)} | ${f2(f.backgroundCores)} |`)
    }
  }
  if (results.failures.length > 0) {
    L.push('')
    L.push(`FAILURES: ${results.failures.length}`)
    for (const f of results.failures) L.push(`- ${f.split('\n')[0]}`)
  }
  L.push('')
  return L.join('\n')
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (!process.argv[2]) {
    console.error('usage: node lib/report.mjs bench/.work/<stamp>/results.json')
    process.exit(2)
  }
  process.stdout.write(renderMarkdown(JSON.parse(readFileSync(process.argv[2], 'utf8'))))
}
