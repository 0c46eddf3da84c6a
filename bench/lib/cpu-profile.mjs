#!/usr/bin/env node
// Where a process spent its CPU: self time per function and per package from a V8 .cpuprofile (node
// --cpu-prof). Idle time is left out, so the shares are of busy time.
//   node lib/cpu-profile.mjs FILE.cpuprofile [--top 25]
//   node lib/cpu-profile.mjs --diff BASE_DIR DIR [--top 40]
// The second form compares two scenario folders written by bench/profile.mjs (a .cpuprofile and its
// window.json each): self time per function in µs per response during the measured load only, and the
// difference (what DIR spends beyond BASE_DIR, function by function).
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
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

/**
 * Self µs per response of every function during the measured load of a bench/profile.mjs scenario folder
 * (its .cpuprofile and window.json: { fromUs, toUs, responses }).
 */
export function perResponse (dir) {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
  if (file === undefined) throw new Error(`no .cpuprofile in ${dir}`)
  const window = JSON.parse(readFileSync(join(dir, 'window.json'), 'utf8'))
  const s = summarizeProfile(JSON.parse(readFileSync(join(dir, file), 'utf8')), Infinity, window)
  const us = new Map()
  // Function names without line numbers: the same function of two builds compares even if it moved.
  for (const f of s.functions) {
    const name = f.name.replace(/:\d+$/, '')
    us.set(name, (us.get(name) ?? 0) + f.ms * 1000 / window.responses)
  }
  return { us, busyUsPerResponse: s.busyMs * 1000 / window.responses, responses: window.responses }
}

/** The rows of `--diff`: per function, µs per response in each and the difference, largest first. */
export function diffProfiles (baseDir, dir) {
  const a = perResponse(baseDir)
  const b = perResponse(dir)
  const rows = [...new Set([...a.us.keys(), ...b.us.keys()])]
    .map((name) => ({ name, base: a.us.get(name) ?? 0, ours: b.us.get(name) ?? 0 }))
    .map((r) => ({ ...r, diff: r.ours - r.base }))
    .sort((x, y) => Math.abs(y.diff) - Math.abs(x.diff))
  return { rows, base: a, ours: b }
}

export function renderSummary (s, title) {
  const L = [`${title}: ${s.busyMs.toFixed(0)} ms busy`, '', '| self % | function |', '|--:|---|']
  for (const f of s.functions) L.push(`| ${(f.share * 100).toFixed(1)} | \`${f.name}\` |`)
  L.push('', '| self % | package |', '|--:|---|')
  for (const o of s.owners.filter((x) => x.share >= 0.005)) L.push(`| ${(o.share * 100).toFixed(1)} | ${o.name} |`)
  return L.join('\n') + '\n'
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values: o, positionals } = parseArgs({ options: { top: { type: 'string', default: '25' }, diff: { type: 'boolean', default: false } }, allowPositionals: true })
  if (o.diff && positionals.length === 2) {
    const d = diffProfiles(positionals[0], positionals[1])
    const L = [`main-thread busy µs per response during the measured load: ${d.base.busyUsPerResponse.toFixed(1)} (${positionals[0]}, ` +
      `${d.base.responses} responses) and ${d.ours.busyUsPerResponse.toFixed(1)} (${positionals[1]}, ${d.ours.responses} responses)`, '',
    '| Δ µs/resp | base | this | function |', '|--:|--:|--:|---|']
    for (const r of d.rows.slice(0, Number(o.top))) L.push(`| ${r.diff.toFixed(2)} | ${r.base.toFixed(2)} | ${r.ours.toFixed(2)} | \`${r.name}\` |`)
    process.stdout.write(L.join('\n') + '\n')
  } else if (!o.diff && positionals.length === 1) {
    const s = summarizeProfile(JSON.parse(readFileSync(positionals[0], 'utf8')), Number(o.top))
    process.stdout.write(renderSummary(s, positionals[0]))
  } else {
    console.error('usage: node lib/cpu-profile.mjs FILE.cpuprofile [--top 25]\n       node lib/cpu-profile.mjs --diff BASE_DIR DIR [--top 25]  (folders written by bench/profile.mjs)')
    process.exit(2)
  }
}
