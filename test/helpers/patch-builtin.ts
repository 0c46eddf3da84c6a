/**
 * Replaces one export of a Node built-in module (node:crypto, node:fs/promises…) for the rest of a test, and
 * puts it back at the test's teardown. Modules that imported it by name (`import { open } from
 * 'node:fs/promises'`) see the replacement too: `syncBuiltinESMExports` (node:module) updates the named
 * exports they are bound to from the module's CommonJS object.
 *
 * The suite does this rather than load tap's module mocker (@tapjs/mock), whose loader hooks cost every test
 * process about 0.4 s of CPU for the two tests that need one replaced function.
 *
 *   const fs = builtin('node:fs/promises')
 *   patchBuiltin(t, fs, 'open', async () => await new Promise(() => {}))
 */
import { createRequire, syncBuiltinESMExports } from 'node:module'

const require = createRequire(import.meta.url)

/** The CommonJS object of a built-in module: the one whose properties its named ESM exports follow. */
export function builtin<T extends object = Record<string, unknown>> (specifier: `node:${string}`): T {
  return require(specifier) as T
}

export function patchBuiltin<T extends object, K extends keyof T> (t: { teardown: (fn: () => void) => void }, module: T, name: K, replacement: T[K]): void {
  const original = module[name]
  module[name] = replacement
  syncBuiltinESMExports()
  t.teardown(() => {
    module[name] = original
    syncBuiltinESMExports()
  })
}
