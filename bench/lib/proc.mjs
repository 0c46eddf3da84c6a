// What the benchmark reads from Linux: CPU time and RSS of a process tree (/proc/<pid>/stat, status), the
// machine's busy time (/proc/stat), and CPU pinning with taskset. A target may be a wrapper script or a
// multi-process server; summing over the tree measures it whole.
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

const CLK_TCK = (() => {
  try { return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100 } catch { return 100 }
})()

/** The fields after "(comm)" of /proc/<pid>/stat; comm may itself contain spaces or parentheses. */
function statFields (pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return s.slice(s.lastIndexOf(')') + 2).split(' ')
}

/** root and all its descendants, alive now. */
export function processTree (root) {
  const children = new Map()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const ppid = Number(statFields(name)[1])
      let list = children.get(ppid)
      if (list === undefined) children.set(ppid, (list = []))
      list.push(Number(name))
    } catch { /* exited meanwhile */ }
  }
  const tree = [root]
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]) ?? []))
  return tree
}

/** User + system CPU seconds of the tree (fields 14 and 15 of stat). */
export function treeCpuSeconds (root) {
  let ticks = 0
  for (const pid of processTree(root)) {
    try {
      const f = statFields(pid)
      ticks += Number(f[11]) + Number(f[12])
    } catch { /* exited meanwhile */ }
  }
  return ticks / CLK_TCK
}

function statusKb (pid, field) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s*(\\d+)\\s*kB`, 'm'))
  return m ? Number(m[1]) : 0
}

/** Resident memory of the tree, MB; `peak: true` sums each process's high-water mark (VmHWM) instead. */
export function treeRssMB (root, { peak = false } = {}) {
  let kb = 0
  for (const pid of processTree(root)) {
    try { kb += statusKb(pid, peak ? 'VmHWM' : 'VmRSS') } catch { /* exited meanwhile */ }
  }
  return Math.round(kb / 102.4) / 10
}

/** Busy CPU seconds of the whole machine, all CPUs together (user nice system irq softirq steal). */
export function machineBusySeconds () {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CLK_TCK
}

export function allowedCpus () {
  const m = readFileSync('/proc/self/status', 'utf8').match(/^Cpus_allowed_list:\s*(.+)$/m)
  if (!m) return []
  const cpus = []
  for (const part of m[1].trim().split(',')) {
    const [a, b] = part.split('-').map(Number)
    for (let c = a; c <= (b ?? a); c++) cpus.push(c)
  }
  return cpus
}

export function hasTaskset () {
  try { execFileSync('taskset', ['-V'], { stdio: 'ignore' }); return true } catch { return false }
}

/** Moves every thread of a running process to `cpu`. */
export function pinProcess (pid, cpu) {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' })
}
