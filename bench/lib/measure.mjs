// One measured scenario: run the load generator (lib/load.mjs, its own process) against a started target
// and account for what the target spent meanwhile: CPU time of its process tree per response, RSS after,
// JWKS fetches seen by the IdP, and the CPU that anything else on the machine used (noise).
import { spawn } from 'node:child_process'
import { openSync, closeSync } from 'node:fs'
import { join } from 'node:path'
import { machineBusySeconds, treeCpuSeconds, treeRssMB } from './proc.mjs'

/** Runs lib/load.mjs and resolves to its JSON result. */
export function runLoad (benchDir, { url, bodies, mode, connections, durationS, cpu, log }) {
  const args = [join(benchDir, 'lib', 'load.mjs'), '--url', url, '--bodies', bodies, '--mode', mode,
    '--connections', String(connections), '--duration', String(durationS)]
  const [cmd, argv] = cpu === undefined ? ['node', args] : ['taskset', ['-c', String(cpu), 'node', ...args]]
  const fd = openSync(log, 'a')
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', fd] })
  closeSync(fd)
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (chunk) => { out += chunk })
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code) => {
      if (code !== 0) return reject(new Error(`load generator exited with ${code} (see ${log})`))
      try { resolve(JSON.parse(out)) } catch (err) { reject(new Error(`load generator output is not JSON: ${err.message}`)) }
    })
  })
}

/**
 * Measures one scenario against the target process `pid`. `expect` is the status every response must have;
 * anything else is reported in `unexpected` (the caller decides whether that fails the block).
 * onSample(rssMB) is called about once a second while the load runs.
 */
export async function measureScenario (benchDir, { pid, idp, expect = 200, onSample, ...load }) {
  const jwks0 = idp.counts().jwks
  const cpu0 = treeCpuSeconds(pid)
  const busy0 = machineBusySeconds()
  const self0 = process.cpuUsage()
  const t0 = performance.now()
  const sampler = onSample === undefined ? undefined : setInterval(() => onSample(treeRssMB(pid)), 1000)
  let r
  try {
    r = await runLoad(benchDir, load)
  } finally {
    if (sampler !== undefined) clearInterval(sampler)
  }
  const wallS = (performance.now() - t0) / 1000
  const serverCpuS = treeCpuSeconds(pid) - cpu0
  const selfCpu = process.cpuUsage(self0)
  const busyS = machineBusySeconds() - busy0
  const expected = r.statusCodes[String(expect)] ?? 0
  return {
    mode: load.mode,
    responses: r.responses,
    statusCodes: r.statusCodes,
    unexpected: r.responses - expected + r.errors + r.timeouts,
    rps: r.rps,
    activeS: r.activeS,
    latencyMs: r.latencyMs,
    serverCpuS,
    serverUsPerReq: r.responses > 0 ? (serverCpuS * 1e6) / r.responses : null,
    serverCores: r.activeS > 0 ? serverCpuS / r.activeS : null,
    generatorCores: r.generator.cores,
    // Everything but the target, the load generator and this process (the IdP lives here): other tenants.
    backgroundCores: Math.max(0, busyS - serverCpuS - r.generator.cpuS - (selfCpu.user + selfCpu.system) / 1e6) / wallS,
    jwksFetches: idp.counts().jwks - jwks0,
    rssAfterMB: treeRssMB(pid)
  }
}
