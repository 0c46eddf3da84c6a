#!/usr/bin/env node
// Where a process spent its CPU: self time per function and per package from a V8 .cpuprofile (node
// --cpu-prof). Idle time is left out, so the shares are of busy time.
//   node lib/cpu-profile.mjs FILE.cpuprofile [--top 25]
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { pathToFileURL } from 'node:url'

/** Which package a frame belongs to: a node_modules package, the service, node itself, or V8's pseudo-frames. */
function ownerOf (url, functionName) {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)'
  const m = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/)
  if (m) return m[1]
  if (url.startsWith('node:')) return 'node (JS internals)'
  if (/\/dist\//.test(url)) return 'oidc-verifier'
  return url
}

/**
 * `window` ({ fromUs, toUs } on the monotonic clock, as process.hrtime.bigint() / 1000n gives it, which is
 * the profile's clock too) keeps only the samples taken meanwhile: the measured load, not start-up.
 */
export function summarizeProfile (profile, top = 25, window = undefined) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const selfUs = new Map()
  let at = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0
    at += dt
    if (window !== undefined && (at < window.fromUs || at > window.toUs)) continue
    const id = profile.samples[i]
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt)
  }
  const byFunction = new Map()
  const byOwner = new Map()
  let busy = 0
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = nodes.get(id).callFrame
    if (functionName === '(idle)') continue
    busy += us
    const short = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, 'dist/')
    const key = `${functionName || '(anonymous)'} ${short ? `${short}:${lineNumber + 1}` : ''}`.trim()
    byFunction.set(key, (byFunction.get(key) ?? 0) + us)
    const owner = ownerOf(url, functionName)
    byOwner.set(owner, (byOwner.get(owner) ?? 0) + us)
  }
  const rank = (map) => [...map].sort((a, b) => b[1] - a[1]).map(([name, us]) => ({ name, ms: us / 1000, share: us / busy }))
  return { busyMs: busy / 1000, functions: rank(byFunction).slice(0, top), owners: rank(byOwner) }
}

export function renderSummary (s, title) {
  const L = [`${title}: ${s.busyMs.toFixed(0)} ms busy`, '', '| self % | function |', '|--:|---|']
  for (const f of s.functions) L.push(`| ${(f.share * 100).toFixed(1)} | \`${f.name}\` |`)
  L.push('', '| self % | package |', '|--:|---|')
  for (const o of s.owners.filter((x) => x.share >= 0.005)) L.push(`| ${(o.share * 100).toFixed(1)} | ${o.name} |`)
  return L.join('\n') + '\n'
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values: o, positionals } = parseArgs({ options: { top: { type: 'string', default: '25' } }, allowPositionals: true })
  if (positionals.length !== 1) {
    console.error('usage: node lib/cpu-profile.mjs FILE.cpuprofile [--top 25]')
    process.exit(2)
  }
  const s = summarizeProfile(JSON.parse(readFileSync(positionals[0], 'utf8')), Number(o.top))
  process.stdout.write(renderSummary(s, positionals[0]))
}
