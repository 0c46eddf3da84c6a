/**
 * Module hooks of the tests' TypeScript loader (registered by test/helpers/ts-loader.mjs; they run on Node's
 * hooks thread). A .ts module is transpiled by SWC to an ES module with an inline source map (the sources
 * included), so stack traces and tap's coverage point at the TypeScript lines. The settings are those of
 * tsconfig.json that matter to a transpiler: ES2022 output, class fields defined (ES2022 semantics), imports
 * used only as types removed.
 *
 * Each transpiled module is kept in node_modules/.cache/oidc-verifier-tests/ts/ (test/helpers/test-cache.mjs),
 * named by a hash of SWC's version, the settings, the file's path and its text: the suite's ~170 test
 * processes each import most of src/, and transpiling it again in every one of them cost ~40 s of CPU per
 * run (measured with --cpu-prof). A file that changes gets a new name; a cache that cannot be read or written
 * is only slower.
 *
 * An import of `./x.js` from a .ts module means `./x.ts` when only that exists (NodeNext's convention: the
 * sources import the names their build will have). An import of typebox, jose or one of tap's libraries gets
 * the package's bundle (test/helpers/package-bundles.mjs): a few modules instead of hundreds, each a round
 * trip to this thread.
 *
 * A module of node_modules is loaded here too, as Node's own loader would (an ES module's text; a CommonJS
 * one left to the CommonJS loader; JSON, whose import attributes Node checks, goes the usual way), instead
 * of passing through the hooks registered before these: tap's (@tapjs/processinfo), which sends each
 * module's text to the main thread to record the file and the lengths of its lines. Coverage leaves
 * node_modules out; on Node 20 that round trip cost each test process 0.3–0.5 s of CPU.
 */
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { URL, fileURLToPath } from 'node:url'
import { bundledUrl } from './package-bundles.mjs'
import { TEST_CACHE, readCached, writeCached } from './test-cache.mjs'

const require = createRequire(import.meta.url)
const { transformSync, version: swcVersion } = require('@swc/core')

const TYPESCRIPT = /\.m?ts$/
const SWC_OPTIONS = {
  swcrc: false,
  configFile: false,
  sourceMaps: 'inline',
  inlineSourcesContent: true,
  jsc: {
    parser: { syntax: 'typescript' },
    target: 'es2022',
    keepClassNames: true,
    transform: { useDefineForClassFields: true }
  },
  module: { type: 'es6' }
}
const CACHE_DIR = join(TEST_CACHE, 'ts')
const CACHE_SALT = JSON.stringify({ swcVersion, SWC_OPTIONS })

export async function resolve (specifier, context, next) {
  const parent = context.parentURL
  if (parent !== undefined && parent.startsWith('file:') && TYPESCRIPT.test(new URL(parent).pathname) &&
      /^\.{1,2}\/.*\.js$/.test(specifier)) {
    const asWritten = new URL(specifier, parent)
    const source = new URL(asWritten.href.replace(/\.js$/, '.ts'))
    if (!existsSync(asWritten) && existsSync(source)) return next(source.href, context)
  }
  const resolved = await next(specifier, context)
  const bundled = bundledUrl(resolved.url)
  return bundled === undefined ? resolved : { ...resolved, url: bundled, format: 'module' }
}

export async function load (url, context, next) {
  if (!url.startsWith('file:')) return next(url, context)
  const filename = fileURLToPath(url)
  if (TYPESCRIPT.test(filename)) return { format: 'module', source: transpiled(filename), shortCircuit: true }
  if (filename.includes('/node_modules/')) {
    // What Node's default load gives for these formats (the resolver has set the format).
    if (context.format === 'commonjs') return { format: 'commonjs', source: null, shortCircuit: true }
    if (context.format === 'module') return { format: 'module', source: readFileSync(filename), shortCircuit: true }
  }
  return next(url, context)
}

function transpiled (filename) {
  const text = readFileSync(filename, 'utf8')
  const cached = join(CACHE_DIR, `${createHash('sha256').update(CACHE_SALT).update('\0').update(filename).update('\0').update(text).digest('hex')}.js`)
  const kept = readCached(cached)
  if (kept !== undefined) return kept
  const { code } = transformSync(text, { ...SWC_OPTIONS, filename })
  writeCached(cached, code)
  return code
}
