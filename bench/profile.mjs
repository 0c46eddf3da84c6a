#!/usr/bin/env node
// Where a target's CPU per request goes: runs it under load with `node --cpu-prof`, once for the cache-hit
// path (one token repeated) and once for the cold path (every token new), and prints the top self-time
// functions and the share of each package, counting only the samples taken during the measured load.
// Same pinning and IdP as run.mjs.
//   node bench/profile.mjs      (after npm run build and npm --prefix bench ci)
// Settings (environment): TARGET=oidc-verifier (or a peer: its bench/peers/<name>.mjs is run directly)
//   ALG=ES256  DURATION=8  CONNECTIONS=32  TOKENS=60000  TOP=25  PIN=auto|0  INTERVAL=<µs between samples>
//   OIDC_VERIFIER_NODE_ARGS=<more node flags for oidc-verifier> (e.g. --max-semi-space-size=16)
// Each scenario folder keeps its window (window.json); compare two runs function by function, in µs per
// response: node bench/lib/cpu-profile.mjs --diff .work/profile-A/repeated .work/profile-B/repeated
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { renderSummary, summarizeProfile } from './lib/cpu-profile.mjs'
import { startIdp } from './lib/idp.mjs'
import { generateKeySet } from './lib/keys.mjs'
import { measureScenario } from './lib/measure.mjs'
import { mintBodiesFile } from './lib/mint.mjs'
import { allowedCpus, hasTaskset, pinProcess } from './lib/proc.mjs'
import { freePort, spawnLogged, stopAll, stopProcess, tail, waitListening } from './lib/target-process.mjs'

const BENCH = dirname(fileURLToPath(import.meta.url))
const env = process.env
const target = env.TARGET ?? 'oidc-verifier'
const alg = env.ALG ?? 'ES256'
const durationS = Number(env.DURATION ?? 8)
const connections = Number(env.CONNECTIONS ?? 32)
const tokens = Number(env.TOKENS ?? 60000)
const top = Number(env.TOP ?? 25)
// The profiler's sampling interval in µs (node's default: 1000); finer shows small functions more exactly, at more overhead.
const intervalUs = env.INTERVAL === undefined ? undefined : Number(env.INTERVAL)
const profFlags = (dir) => ['--cpu-prof', `--cpu-prof-dir=${dir}`, ...(intervalUs === undefined ? [] : [`--cpu-prof-interval=${intervalUs}`])]
const audience = 'bench-client'
const cpus = allowedCpus()
const pinning = env.PIN !== '0' && cpus.length >= 2 && hasTaskset() ? { target: cpus[cpus.length - 1], generator: cpus[0] } : undefined
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-')
const work = join(BENCH, '.work', `profile-${stamp}`)
mkdirSync(work, { recursive: true })
// targets/oidc-verifier.sh's generated config files: this run's, removed when it ends (however it ends).
const targetConfig = join(work, 'target-config')
process.on('exit', () => { rmSync(targetConfig, { recursive: true, force: true }) })
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, async () => { await stopAll(); process.exit(130) })

const keySet = generateKeySet()
const idp = await startIdp(keySet)
const files = { warm: join(work, 'warm.jsonl'), repeated: join(work, 'repeated.jsonl'), distinct: join(work, 'distinct.jsonl') }
await mintBodiesFile(keySet, { alg, issuer: idp.issuer, audience, count: 2000, start: 1, file: files.warm })
await mintBodiesFile(keySet, { alg, issuer: idp.issuer, audience, count: 1, start: 0, file: files.repeated })
await mintBodiesFile(keySet, { alg, issuer: idp.issuer, audience, count: tokens, start: 10000, file: files.distinct })
if (pinning) pinProcess(process.pid, pinning.generator)

const out = []
for (const [scenario, mode] of [['repeated', 'rotate'], ['distinct', 'once']]) {
  const dir = join(work, scenario)
  mkdirSync(dir)
  const port = await freePort()
  const log = join(work, `${scenario}.target.log`)
  const args = [String(port), idp.issuer, idp.jwksUri, audience, alg]
  const child = target === 'oidc-verifier'
    ? spawnLogged('bash', [join(BENCH, 'targets', 'oidc-verifier.sh'), ...args], {
      log, cpu: pinning?.target, env: { ...env, OIDC_VERIFIER_NODE_ARGS: [env.OIDC_VERIFIER_NODE_ARGS, ...profFlags(dir)].filter(Boolean).join(' '), OIDC_VERIFIER_CONF_DIR: targetConfig }
    })
    : spawnLogged('node', [...profFlags(dir), join(BENCH, 'peers', `${target}.mjs`), ...args], {
      log, cpu: pinning?.target, env: { ...env, NODE_ENV: 'production' }
    })
  const up = await waitListening(child, port, 30000)
  if (!up.ok) {
    console.error(`${target} did not start: ${JSON.stringify(up)}\n${tail(log)}`)
    process.exit(1)
  }
  const url = `http://127.0.0.1:${port}`
  const load = { pid: child.pid, idp, url, connections, cpu: pinning?.generator, log: join(work, `${scenario}.load.log`) }
  await measureScenario(BENCH, { ...load, bodies: files.warm, mode: 'rotate', durationS: 2 })
  const fromUs = Number(process.hrtime.bigint() / 1000n)
  const m = await measureScenario(BENCH, { ...load, bodies: files[scenario], mode, durationS })
  const toUs = Number(process.hrtime.bigint() / 1000n)
  await stopProcess(child, 15000)
  const profileFile = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(dir, f))[0]
  if (profileFile === undefined) {
    console.error(`no .cpuprofile written in ${dir}\n${tail(log)}`)
    process.exit(1)
  }
  // The measured window beside the profile: lib/cpu-profile.mjs --diff compares two scenarios with it.
  writeFileSync(join(dir, 'window.json'), JSON.stringify({ fromUs, toUs, responses: m.responses, serverUsPerReq: m.serverUsPerReq }) + '\n')
  const s = summarizeProfile(JSON.parse(readFileSync(profileFile, 'utf8')), top, { fromUs, toUs })
  const title = `${target} ${alg} ${scenario}: ${m.responses} responses, ${m.rps?.toFixed(0)} req/s, ${m.serverUsPerReq?.toFixed(1)} µs/req ` +
    'with the profiler on (samples of the measured load only)'
  out.push(renderSummary(s, title))
  console.log(`${scenario}: profile ${relative(process.cwd(), profileFile)}`)
}
await idp.close()
for (const f of Object.values(files)) rmSync(f)
writeFileSync(join(work, 'summary.md'), out.join('\n'))
console.log(`\n${out.join('\n')}`)
