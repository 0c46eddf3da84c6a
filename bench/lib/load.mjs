#!/usr/bin/env node
// The load generator, in its own process (pinned away from the target): autocannon POSTing JSON bodies to
// <url>/verify. Modes:
//   rotate  cycle through the bodies file for --duration seconds (one line = the same token over and over);
//   once    send every line exactly once, stopping early at --duration seconds if set (cold path: no token
//           is ever sent twice, so a verified-token cache cannot hit);
//   flood   for --duration seconds, the token of the first line with a new random kid on every request
//           (signature left as it is: an attacker has no key, and the kid lookup comes first).
// Prints one JSON object: responses, status codes, rate over the time responses were arriving, latency
// percentiles over every response (float ms), and its own CPU use. With BENCH_API_KEY in the environment,
// every request carries it as X-Api-Key (a target with caller keys checks it; the others ignore the header).
//
//   node lib/load.mjs --url URL --bodies FILE [--mode rotate|once|flood] [--connections 32] [--duration 10]
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'

const { values: o } = parseArgs({
  options: {
    url: { type: 'string' },
    bodies: { type: 'string' },
    mode: { type: 'string', default: 'rotate' },
    connections: { type: 'string', default: '32' },
    duration: { type: 'string', default: '10' }
  }
})
if (!o.url || !o.bodies || !['rotate', 'once', 'flood'].includes(o.mode)) {
  console.error('usage: node lib/load.mjs --url URL --bodies FILE [--mode rotate|once|flood] [--connections N] [--duration S]')
  process.exit(2)
}
const connections = Number(o.connections)
const durationS = Number(o.duration)

// Lines of the file as Buffer slices: no copy, no per-request string.
const file = readFileSync(o.bodies)
const bodies = []
for (let start = 0; start < file.length;) {
  let end = file.indexOf(10, start)
  if (end === -1) end = file.length
  if (end > start) bodies.push(file.subarray(start, end))
  start = end + 1
}
if (bodies.length === 0) {
  console.error(`load: no request bodies in ${o.bodies}`)
  process.exit(2)
}

let next = 0
let setupRequest
if (o.mode === 'flood') {
  const token = JSON.parse(bodies[0].toString()).token
  const header = JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString())
  const rest = token.slice(token.indexOf('.'))
  const prefix = randomBytes(6).toString('base64url')
  setupRequest = (req) => {
    const kid = `${prefix}${(next++).toString(36)}`
    const h = Buffer.from(JSON.stringify({ ...header, kid })).toString('base64url')
    req.body = `{"token":"${h}${rest}"}`
    return req
  }
} else {
  setupRequest = (req) => {
    req.body = bodies[next++ % bodies.length]
    return req
  }
}

let latencies = new Float64Array(1 << 16)
let n = 0
let firstAt = 0
let lastAt = 0

const headers = { 'content-type': 'application/json' }
if (process.env.BENCH_API_KEY) headers['x-api-key'] = process.env.BENCH_API_KEY
const options = {
  url: o.url,
  connections,
  requests: [{ method: 'POST', path: '/verify', headers, setupRequest }]
}
if (o.mode === 'once') {
  if (bodies.length < connections) {
    console.error(`load: mode "once" needs at least as many bodies (${bodies.length}) as connections (${connections})`)
    process.exit(2)
  }
  options.amount = bodies.length
} else {
  options.duration = durationS
}

const instance = autocannon(options, (err, result) => {
  clearTimeout(stopTimer)
  if (err) {
    console.error(err)
    process.exit(1)
  }
  // The whole process's CPU since it started (node's start-up, autocannon's import, reading the token file
  // included): what the orchestrator subtracts from the machine's busy time is then all of the generator's, so
  // its start-up does not pass for other processes' noise (bg).
  const cpu = process.cpuUsage()
  const wallS = process.uptime()
  const sorted = latencies.subarray(0, n).sort()
  const pct = (p) => (n ? round3(sorted[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))]) : null)
  let sum = 0
  for (let i = 0; i < n; i++) sum += sorted[i]
  const activeS = n > 1 ? (lastAt - firstAt) / 1000 : 0
  const statusCodes = Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, v]) => [code, v.count]))
  process.stdout.write(JSON.stringify({
    mode: o.mode,
    bodies: bodies.length,
    connections,
    responses: n,
    sent: next,
    statusCodes,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    activeS,
    rps: activeS > 0 ? n / activeS : null,
    latencyMs: { mean: n ? round3(sum / n) : null, p50: pct(50), p90: pct(90), p99: pct(99), p99_9: pct(99.9), max: n ? round3(sorted[n - 1]) : null },
    generator: { cpuS: (cpu.user + cpu.system) / 1e6, cores: (cpu.user + cpu.system) / 1e6 / wallS }
  }) + '\n')
})

// "once" stops by itself after the last body; the duration then only caps a slow target.
const stopTimer = o.mode === 'once' && durationS > 0 ? setTimeout(() => instance.stop(), durationS * 1000) : undefined

instance.on('response', (_client, _status, _bytes, responseTime) => {
  const now = performance.now()
  if (n === 0) firstAt = now
  lastAt = now
  if (n === latencies.length) {
    const grown = new Float64Array(latencies.length * 2)
    grown.set(latencies)
    latencies = grown
  }
  latencies[n++] = responseTime
})

function round3 (x) { return Math.round(x * 1000) / 1000 }
