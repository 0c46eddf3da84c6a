/**
 * Module hooks of the tests' TypeScript loader (registered by test/helpers/ts-loader.mjs; they run on Node's
 * hooks thread). A .ts module is transpiled by SWC to an ES module with an inline source map (the sources
 * included), so stack traces and tap's coverage point at the TypeScript lines. The settings are those of
 * tsconfig.json that matter to a transpiler: ES2022 output, class fields defined (ES2022 semantics), imports
 * used only as types removed.
 *
 * An import of `./x.js` from a .ts module means `./x.ts` when only that exists (NodeNext's convention: the
 * sources import the names their build will have).
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { URL, fileURLToPath } from 'node:url'

const { transform } = createRequire(import.meta.url)('@swc/core')

const TYPESCRIPT = /\.m?ts$/

export async function resolve (specifier, context, next) {
  const parent = context.parentURL
  if (parent !== undefined && parent.startsWith('file:') && TYPESCRIPT.test(new URL(parent).pathname) &&
      /^\.{1,2}\/.*\.js$/.test(specifier)) {
    const asWritten = new URL(specifier, parent)
    const source = new URL(asWritten.href.replace(/\.js$/, '.ts'))
    if (!existsSync(asWritten) && existsSync(source)) return next(source.href, context)
  }
  return next(specifier, context)
}

export async function load (url, context, next) {
  if (!url.startsWith('file:') || !TYPESCRIPT.test(new URL(url).pathname)) return next(url, context)
  const filename = fileURLToPath(url)
  const { code } = await transform(await readFile(filename, 'utf8'), {
    filename,
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
  })
  return { format: 'module', source: code, shortCircuit: true }
}
