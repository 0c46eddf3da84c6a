/**
 * Packages the tests load from a bundle (used by test/helpers/ts-hooks.mjs, on Node's hooks thread).
 *
 * On Node 20 the loader's hooks run off-thread, so every ES module a test process imports costs a round trip
 * to the hooks thread for its resolution and another for its text. typebox is 373 small modules (its `Type`
 * builder alone is 372) and jose 46: importing typebox took ~1.0 s of wall time and ~1.3 s of CPU under the
 * hooks against ~0.4 s without them, in every test process that builds the app or reads a configuration.
 * tap's own libraries without state of their own (diff, rimraf, tcompare, tap-parser, mkdirp, tap-yaml: 76
 * modules in every test process) are bundled too; tap's @tapjs packages are not (they hold the run's state).
 * esbuild bundles each package's exported entry points once (code splitting on, so the entries share one copy
 * of the package's modules), into the tests' cache (test-cache.mjs), named by the package's version, esbuild's
 * and the entry list; the hooks then hand out a bundle's file wherever the package's entry would have been
 * loaded. The same code, a few modules instead of hundreds.
 *
 * Only the project's own copy of a package is bundled (node_modules/<name>/, not a copy nested under another
 * package), and only its exported entry points without wildcards: anything else resolves as usual. A bundle
 * that cannot be built or written (esbuild missing, a read-only tree) leaves the package to load module by
 * module: slower, never different. Test instrumentation only: the service itself loads its dependencies as
 * they are.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join, sep } from 'node:path'
import process from 'node:process'
import { URL, fileURLToPath, pathToFileURL } from 'node:url'
import { TEST_CACHE } from './test-cache.mjs'

const BUNDLED = ['typebox', 'jose', 'diff', 'rimraf', 'tcompare', 'tap-parser', 'mkdirp', 'tap-yaml']
const NODE_MODULES = fileURLToPath(new URL('../../node_modules/', import.meta.url))
const BUNDLE_DIR = join(TEST_CACHE, 'bundles')
const require = createRequire(import.meta.url)

/** Per package: its entry files (absolute paths) → the bundle's file URL; null when it is not bundled. */
const built = new Map()

/**
 * The file URL of the bundle standing for `url` (a resolved module), or undefined when `url` is not the entry
 * point of a bundled package.
 */
export function bundledUrl (url) {
  if (!url.startsWith('file:') || !url.includes('/node_modules/')) return undefined
  const filename = fileURLToPath(url)
  const name = BUNDLED.find((candidate) => filename.startsWith(join(NODE_MODULES, candidate) + sep))
  if (name === undefined) return undefined
  if (!built.has(name)) built.set(name, bundle(name))
  return built.get(name)?.get(filename)
}

/** The package's exported entry points: a name for each (for its bundle file) and the file it names. */
function entryPoints (root, manifest) {
  const exportsField = typeof manifest.exports === 'string' || manifest.exports === undefined
    ? { '.': manifest.exports ?? manifest.main ?? './index.js' }
    : manifest.exports
  const target = (value) => typeof value === 'string'
    ? value
    : value !== null && typeof value === 'object' ? target(value.import ?? value.default) : undefined
  return Object.entries(exportsField)
    .filter(([subpath]) => subpath.startsWith('.') && !subpath.includes('*'))
    .map(([subpath, value]) => [subpath, target(value)])
    .filter(([, file]) => typeof file === 'string' && /\.m?js$/.test(file))
    .map(([subpath, file]) => ({
      out: subpath === '.' ? 'index' : subpath.slice(2).replaceAll('/', '_'),
      in: join(root, file)
    }))
}

function bundle (name) {
  try {
    const root = join(NODE_MODULES, name)
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
    const entries = entryPoints(root, manifest)
    if (entries.length === 0) return null
    const esbuild = require('esbuild')
    const key = createHash('sha256').update(JSON.stringify({ esbuild: esbuild.version, entries })).digest('hex').slice(0, 16)
    const dir = join(BUNDLE_DIR, `${name}@${manifest.version}-${key}`)
    if (!existsSync(dir)) build(esbuild, entries, dir)
    return new Map(entries.map((entry) => [entry.in, pathToFileURL(join(dir, `${entry.out}.mjs`)).href]))
  } catch {
    return null
  }
}

/** Builds into a folder of this process's own, then renames it into place: a reader sees all of it or none. */
function build (esbuild, entries, dir) {
  const partial = `${dir}.${process.pid}.tmp`
  mkdirSync(BUNDLE_DIR, { recursive: true })
  esbuild.buildSync({
    entryPoints: entries,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    packages: 'external',
    outdir: partial,
    outExtension: { '.js': '.mjs' },
    logLevel: 'silent'
  })
  try {
    renameSync(partial, dir)
  } catch (error) {
    rmSync(partial, { recursive: true, force: true })
    if (!existsSync(dir)) throw error   // not another process's build that got there first
  }
}
