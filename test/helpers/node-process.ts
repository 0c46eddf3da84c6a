/**
 * Runs one of the service's entry points (src/server.ts, src/cli.ts) as a real child process: the build of it
 * in dist/ (what the container image runs), without tap's TypeScript loader, which cost each child (and each
 * cluster worker) about 1.6 s of CPU to compile the source again, and with the coverage half of tap's preload
 * only (test/helpers/coverage-preload.mjs: its module loader hook cost each child ~1.4 s more on Node 20).
 * `npm test` builds first; a dist/ older than src/ is an error that says so, never a silent old build.
 * A test helper script (test/helpers/*.ts) still runs from source with the loader and tap's full preload.
 *
 *   const r = await runNode('src/cli.ts', ['check-config', '--config', path])   // waits for exit
 *   const p = startNode('src/server.ts', ['--config', path])                  // long-running
 *   await p.waitForLine(/Server listening at (\S+)/)
 *   p.child.kill('SIGTERM'); const { code } = await p.exited
 *
 * The child gets this process's environment minus every setting the service reads (OIDC_*, HOST, PORT,
 * LOG_LEVEL…), plus `env`. Every wait is bounded; a child still running at teardown is killed.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { addListener as onSpawn } from 'process-on-spawn'

export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

const SERVICE_ENV = /^(OIDC_|HOST$|PORT$|LOG_LEVEL$|DEV_ISSUER_PORT$|NODE_ENV$)/

/** The tests' TypeScript loader (test/helpers/ts-loader.mjs), as a node argument. */
export const TS_LOADER = `--import=${pathToFileURL(join(ROOT, 'test/helpers/ts-loader.mjs')).href}`
/** That loader in a node argument, however written (tap gives it as a relative path, TS_LOADER as a URL). */
const IS_TS_LOADER = /[\\/]test[\\/]helpers[\\/]ts-loader\.mjs$/
/** tap's module mocker's hooks (it mocks nothing in a built child). */
const IS_MOCKER = /@tapjs[\\/]mock[\\/]/
/** tap's preload (@tapjs/processinfo's import.mjs: coverage, process records, its module loader hook). */
const TAP_PRELOAD = /@tapjs[\\/]processinfo[\\/]dist[\\/]esm[\\/]import\.mjs/
/** What a built child gets instead of tap's preload, when this process has it. */
const COVERAGE_PRELOAD = `--import=${pathToFileURL(join(ROOT, 'test/helpers/coverage-preload.mjs')).href}`

// tap's preload puts itself into every child's NODE_OPTIONS as it is spawned (a process-on-spawn listener,
// added before this one). For a child started with the coverage preload it is taken out again: one of the two.
onSpawn((opts) => {
  if (!opts.args.includes(COVERAGE_PRELOAD) || opts.env.NODE_OPTIONS === undefined) return
  const options = opts.env.NODE_OPTIONS.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? []
  opts.env.NODE_OPTIONS = options.filter((o) => !TAP_PRELOAD.test(o)).join(' ')
})

let checkedBuild = false

/** Throws unless every src/**\/*.ts has a dist/**\/*.js at least as new (checked once per test process). */
export function assertBuildCurrent (): void {
  if (checkedBuild) return
  const stale: string[] = []
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (entry.name.endsWith('.ts')) {
        const built = join(ROOT, 'dist', relative(join(ROOT, 'src'), path).replace(/\.ts$/, '.js'))
        let builtAt = -1
        try { builtAt = statSync(built).mtimeMs } catch { /* not built: stale */ }
        if (builtAt < statSync(path).mtimeMs) stale.push(relative(ROOT, path))
      }
    }
  }
  walk(join(ROOT, 'src'))
  if (stale.length > 0) {
    throw new Error(`the process tests run the build in dist/, which is older than ${stale.slice(0, 3).join(', ')}` +
      `${stale.length > 3 ? ` and ${stale.length - 3} more` : ''}: run \`npm run build\` (npm test does it first)`)
  }
  checkedBuild = true
}

/** `src/x.ts` → `dist/x.js`; any other script as given. */
export function builtScript (script: string): string {
  const m = /^src\/(.+)\.ts$/.exec(script)
  if (m === null) return script
  assertBuildCurrent()
  return `dist/${m[1]}.js`
}

/**
 * This process's execArgv for a built child: without tap's source-only hooks, and tap's preload (if this process
 * runs under tap) replaced by the coverage preload; source maps stay.
 */
export function builtNodeArgs (): string[] {
  return process.execArgv.filter((a) => !IS_TS_LOADER.test(a) && !IS_MOCKER.test(a)).map((a) => TAP_PRELOAD.test(a) ? COVERAGE_PRELOAD : a)
}

/** A script under src/ runs built; any other (a test helper in TypeScript) with tap's hooks and loader as before. */
function nodeArgs (script: string, args: string[]): string[] {
  if (script.startsWith('src/')) return [...builtNodeArgs(), builtScript(script), ...args]
  const loader = process.execArgv.some((a) => IS_TS_LOADER.test(a)) ? [] : [TS_LOADER]
  return [...process.execArgv, ...loader, script, ...args]
}

function childEnv (env: Record<string, string>): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !SERVICE_ENV.test(name)))
  return { ...base, ...env }
}

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export interface RunOptions {
  env?: Record<string, string>
  /** Written to standard input, which is then closed. */
  input?: string
  /** The child is killed after this long (default 60 s); the result then has signal SIGKILL. */
  timeoutMs?: number
}

export async function runNode (script: string, args: string[] = [], opts: RunOptions = {}): Promise<RunResult> {
  const child = spawn(process.execPath, nodeArgs(script, args), { cwd: ROOT, env: childEnv(opts.env ?? {}), stdio: ['pipe', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
  child.stdin.on('error', () => {}) // the child may exit without reading its input
  child.stdin.end(opts.input ?? '')
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.on('close', (c, s) => resolve([c, s]))
  })
  clearTimeout(timer)
  return { code, signal, stdout, stderr }
}

export interface StartedProcess {
  child: ChildProcess
  /** Standard output and standard error so far. */
  output: () => string
  /** Resolves with the first match of `pattern` in the output after `from` (an output length); rejects after the time is up or on exit. */
  waitForLine: (pattern: RegExp, opts?: { from?: number, timeoutMs?: number }) => Promise<RegExpMatchArray>
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** Kills the process if it still runs (for teardown). */
  kill: () => void
}

export function startNode (script: string, args: string[] = [], opts: { env?: Record<string, string> } = {}): StartedProcess {
  const child = spawn(process.execPath, nodeArgs(script, args), { cwd: ROOT, env: childEnv(opts.env ?? {}), stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const listeners = new Set<() => void>()
  const onData = (d: string): void => {
    output += d
    for (const l of [...listeners]) l()
  }
  child.stdout?.setEncoding('utf8').on('data', onData)
  child.stderr?.setEncoding('utf8').on('data', onData)
  let done = false
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      done = true
      for (const l of [...listeners]) l()
      resolve({ code, signal })
    })
  })

  const waitForLine = async (pattern: RegExp, { from = 0, timeoutMs = 30_000 } = {}): Promise<RegExpMatchArray> => {
    return await new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = (): void => {
        const match = output.slice(from).match(pattern)
        if (match !== null) finish(() => resolve(match))
        else if (done) finish(() => reject(new Error(`process exited before printing ${String(pattern)}; output:\n${output}`)))
      }
      const timer = setTimeout(() => finish(() => reject(new Error(`no ${String(pattern)} within ${timeoutMs} ms; output:\n${output}`))), timeoutMs)
      const finish = (settle: () => void): void => {
        clearTimeout(timer)
        listeners.delete(check)
        settle()
      }
      listeners.add(check)
      check()
    })
  }

  return {
    child,
    output: () => output,
    waitForLine,
    exited,
    kill: () => { if (!done) child.kill('SIGKILL') }
  }
}
