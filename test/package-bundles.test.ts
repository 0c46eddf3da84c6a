/**
 * The tests' loader hands out typebox, jose and tap's libraries from their bundles (test/helpers/package-bundles.mjs): the
 * speed-up is in force, the bundles export what the packages export, and nothing else is redirected.
 */
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import process from 'node:process'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import { bundledUrl } from './helpers/package-bundles.mjs'

const ROOT = join(import.meta.dirname, '..')
const moduleUrl = (path: string): string => pathToFileURL(join(ROOT, 'node_modules', path)).href

/** The export names of `specifier` in a process without the tests' loader: the package as it is. */
function exportsWithoutLoader (specifier: string): string[] {
  const script = `const m = await import(${JSON.stringify(specifier)}); console.log(JSON.stringify(Object.keys(m).sort()))`
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8' })
  return JSON.parse(out) as string[]
}

for (const [specifier, entry] of [['typebox', 'typebox/build/index.mjs'], ['typebox/value', 'typebox/build/value/index.mjs'], ['jose', 'jose/dist/webapi/index.js'], ['tap-parser', 'tap-parser/dist/esm/index.js']] as const) {
  t.test(`${specifier} comes from its bundle, with the package's exports`, async (t) => {
    const resolved = import.meta.resolve(specifier)
    t.match(resolved, /\/node_modules\/\.cache\/oidc-verifier-tests\/bundles\/[^/]+\/[^/]+\.mjs$/, 'the loader resolves it to the bundle')
    t.equal(bundledUrl(moduleUrl(entry)), resolved, 'the package entry maps to the same file')
    const bundled = await import(specifier) as Record<string, unknown>
    t.same(Object.keys(bundled).sort(), exportsWithoutLoader(specifier), 'the same export names as the package')
  })
}

t.test('entries of one package share one copy of its modules', async (t) => {
  const { Type } = await import('typebox')
  const { default: Value } = await import('typebox/value')
  t.equal(Value.Check(Type.Object({ a: Type.Integer() }), { a: 1 }), true)
  t.equal(Value.Check(Type.Object({ a: Type.Integer() }), { a: 1.5 }), false)
})

t.test('anything but a bundled package\'s exported entry resolves as usual', async (t) => {
  t.equal(bundledUrl(moduleUrl('typebox/build/type/types/object.mjs')), undefined, 'a module inside the package')
  t.equal(bundledUrl(moduleUrl('oidc-provider/node_modules/jose/dist/webapi/index.js')), undefined, 'a copy nested under another package')
  t.equal(bundledUrl(moduleUrl('lru-cache/dist/esm/index.js')), undefined, 'a package not bundled')
  t.equal(bundledUrl(pathToFileURL(join(ROOT, 'src/app.ts')).href), undefined, 'a project file')
  t.equal(bundledUrl('node:crypto'), undefined, 'a built-in')
})
